"""Heavy steps on AWS Batch: the step launcher (Dagster host side) and the step worker
(container side), talking only through S3.

The host writes the step's run reference to S3 and submits a Batch job; the worker runs the
step and writes its Dagster events back to S3 as numbered, immutable chunks, one folder per
attempt; the host streams them into the run's event log while it polls the job. The step's
data never crosses here: it goes through the analytics store as arrays (see ``io_manager``).
"""
