"""``BatchStepLauncher``: runs a Dagster step as an AWS Batch job and streams its events back.

For each step it stages Dagster's own step run reference on S3 (a pickle Dagster writes and
the worker reads; the step's data never goes in it, that crosses through the analytics store
as arrays), submits a Batch job whose command is that S3 URI, polls the job with backoff and,
while it runs, forwards the events the worker writes (``events.py``) into this run's event
log, so logs, materializations and check results show up live.

Outcomes:

- the job succeeds and the worker reported the step's end: the step is done;
- a Spot reclaim (status reason ``Host EC2 ...``): logged as an interruption and resubmitted
  as a new attempt (its own events folder), up to ``max_attempts`` jobs in all;
- any other failure: a ``dagster.Failure`` with the Batch status reason, the step's error and
  the CloudWatch log stream, and no retry (code errors do not heal by rerunning);
- the Dagster run is terminated (interrupt, or the step's generator is closed): the Batch job
  is terminated too, so no container keeps running for a run nobody waits for.

The launcher owns retries: it submits with one Batch attempt, so Batch's own retry cannot
rerun a container under the same attempt number.
"""

from __future__ import annotations

import hashlib
import pickle
import re
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError
from dagster import (
    AssetKey,
    ConfigurableResource,
    DagsterEvent,
    DagsterEventType,
    DagsterExecutionInterruptedError,
    EventLogEntry,
    Failure,
    MetadataValue,
    StepExecutionContext,
    StepLauncher,
    StepRunRef,
    raise_execution_interrupts,
    step_context_to_step_run_ref,
)
from pydantic import Field, PrivateAttr

from cocktail_assets.batch.events import (
    ATTEMPT_ENV,
    DIGEST_OPTION,
    JOB_TAGS,
    PLACEMENT_ENV,
    RUN_ID_ENV,
    STEP_KEY_ENV,
    EventStream,
    attempt_dir,
    highest_attempt,
    ref_key,
    step_dir,
    user_error,
)
from cocktail_assets.dagster_private import (
    LOG_RECORD_EVENT_ATTR,
    LOG_RECORD_METADATA_ATTR,
    FileCodePointer,
    ReconstructableJob,
    construct_log_record_message,
    construct_log_record_metadata,
    core_dagster_event_sequence_for_step,
)

SPOT_RECLAIM_PREFIX = "Host EC2"
DONE_STATUSES = {"SUCCEEDED", "FAILED"}
# Events that end a step; a remote STEP_FAILURE is held back and folded into our Failure.
_STEP_ENDS = {
    DagsterEventType.STEP_SUCCESS.value,
    DagsterEventType.STEP_UP_FOR_RETRY.value,
    DagsterEventType.STEP_SKIPPED.value,
}
_SECRET_NAME = re.compile(
    r"PASSWORD|PASSWD|SECRET|TOKEN|CREDENTIAL|PRIVATE|ACCESS_KEY|DATABASE_URL|PG_URL|DSN", re.I
)
_THROTTLED = {"TooManyRequestsException", "ThrottlingException", "Throttling"}
_DENIED = {"AccessDeniedException", "AccessDenied", "UnauthorizedOperation"}


@dataclass
class _Watch:
    """What one attempt's job and event stream have told us so far."""

    job_id: str
    job_name: str
    attempt: int
    job: dict[str, Any] = field(default_factory=dict)
    step_end: str | None = None
    remote_failure: EventLogEntry | None = None
    result: dict[str, Any] | None = None
    incomplete: str | None = None

    @property
    def status(self) -> str:
        return self.job.get("status", "SUBMITTED")

    @property
    def reason(self) -> str:
        return self.job.get("statusReason") or ""

    @property
    def log_stream(self) -> str | None:
        container = self.job.get("container") or {}
        if container.get("logStreamName"):
            return container["logStreamName"]
        attempts = self.job.get("attempts") or []
        return ((attempts[-1].get("container") or {}).get("logStreamName")) if attempts else None

    @property
    def spot_reclaimed(self) -> bool:
        return self.status == "FAILED" and self.reason.startswith(SPOT_RECLAIM_PREFIX)


class BatchStepLauncher(ConfigurableResource, StepLauncher):
    """Runs the steps that require it as AWS Batch jobs (bound as ``step_launcher`` in
    production; a none-resource elsewhere runs the same steps in-process)."""

    job_queue: str = Field(description="Batch job queue, name or ARN (BATCH_JOB_QUEUE).")
    job_definition: str = Field(description="Job definition, name[:revision] or ARN.")
    staging_bucket: str = Field(description="Bucket for step run references and events.")
    staging_prefix: str = Field(default="dagster-steps", description="Key prefix in it.")
    region: str | None = Field(default=None, description="AWS region of queue and bucket.")
    endpoint_url: str | None = Field(default=None, description="AWS endpoint (tests).")
    log_group: str | None = Field(default=None, description="CloudWatch group of job logs.")
    max_attempts: int = Field(default=3, ge=1, description="Jobs per step incl. Spot retries.")
    size_asset: str | None = Field(
        default=None,
        description="Asset whose latest dagster/row_count sizes the work (catalog/recipe_volumes).",
    )
    min_rows: int = Field(
        default=0, ge=0,
        description="Below this many rows of size_asset a step runs in-process on the host "
        "(BATCH_MIN_RECIPES): Batch's start-up would cost more than the work.",
    )
    environment: dict[str, str] = Field(
        default_factory=dict,
        description="Extra non-secret environment for the container (never secrets: anyone "
        "who can describe the job sees it; secrets come from the job definition).",
    )
    poll_interval_seconds: float = Field(default=2.0, gt=0, description="First poll delay.")
    max_poll_interval_seconds: float = Field(default=20.0, gt=0, description="Backoff cap.")
    drain_timeout_seconds: float = Field(
        default=60.0, ge=0, description="How long to wait for late events once a job ended."
    )

    _batch_client: Any = PrivateAttr(default=None)
    _placements: dict[str, str] = PrivateAttr(default_factory=dict)
    _s3_client: Any = PrivateAttr(default=None)

    # -- clients ---------------------------------------------------------------------------
    def _batch(self) -> Any:
        if self._batch_client is None:
            import boto3

            self._batch_client = boto3.client(
                "batch", region_name=self.region, endpoint_url=self.endpoint_url
            )
        return self._batch_client

    def _s3(self) -> Any:
        if self._s3_client is None:
            import boto3

            self._s3_client = boto3.client(
                "s3", region_name=self.region, endpoint_url=self.endpoint_url
            )
        return self._s3_client

    # -- the StepLauncher API --------------------------------------------------------------
    def placement(self, step_context: StepExecutionContext) -> tuple[bool, str]:
        """Whether the step goes to Batch, and why (for its log and metadata)."""
        if not self.size_asset or self.min_rows <= 0:
            return True, "BATCH_MIN_RECIPES is 0: every heavy step goes to AWS Batch"
        event = step_context.instance.get_latest_materialization_event(
            AssetKey.from_user_string(self.size_asset)
        )
        meta = event.asset_materialization.metadata if event and event.asset_materialization \
            else {}
        value = meta.get("dagster/row_count")
        rows = getattr(value, "value", value)
        if rows is None:
            return True, f"size unknown ({self.size_asset} has no row count yet): AWS Batch"
        if int(rows) < self.min_rows:
            return False, (
                f"{int(rows):,} recipes < BATCH_MIN_RECIPES {self.min_rows:,}: in-process on the "
                "Dagster host (Batch's scale-up and container start would cost more than the work)"
            )
        return True, f"{int(rows):,} recipes >= BATCH_MIN_RECIPES {self.min_rows:,}: AWS Batch"

    def launch_step(self, step_context: StepExecutionContext) -> Iterator[DagsterEvent]:
        on_batch, why = self.placement(step_context)
        self._placements[step_context.step.key] = why
        step_context.log.info(f"placement of {step_context.step.key}: {why}")
        if not on_batch:
            yield from core_dagster_event_sequence_for_step(step_context)
            return
        ref = self._step_run_ref(step_context)
        batch, s3 = self._batch(), self._s3()
        self._check_queue(batch)
        folder = step_dir(self.staging_prefix, ref.run_id, ref.step_key)
        uri = f"s3://{self.staging_bucket}/{ref_key(folder)}"
        body = pickle.dumps(ref)
        s3.put_object(Bucket=self.staging_bucket, Key=ref_key(folder), Body=body)
        # The worker unpickles the reference only if it hashes to this: the job role may write
        # under the staging prefix, so a step must not be able to plant code for a later one.
        digest = hashlib.sha256(body).hexdigest()
        # A Dagster retry of this step in the same run numbers its attempts after earlier ones.
        first = highest_attempt(s3, self.staging_bucket, folder) + 1
        environment = self._container_environment(step_context)

        for number in range(self.max_attempts):
            attempt = first + number
            watch = self._submit(batch, step_context, uri, digest, attempt, environment)
            yield from self._watch(step_context, batch, s3, attempt_dir(folder, attempt), watch)
            if watch.step_end is not None and watch.remote_failure is None:
                if watch.status != "SUCCEEDED":
                    step_context.log.warning(
                        f"Batch job {watch.job_id} ended {watch.status} ({watch.reason}) after "
                        "the step had finished; keeping the step's result"
                    )
                return
            if watch.spot_reclaimed:
                left = self.max_attempts - number - 1
                step_context.log.warning(
                    f"Batch job {watch.job_name} ({watch.job_id}) was interrupted by a Spot "
                    f"reclaim: {watch.reason}. This is not a failure of the step's code; "
                    + (f"resubmitting ({left} attempt(s) left)." if left else "no attempts left.")
                )
                if left:
                    continue
                raise self._failure(
                    watch,
                    f"Step interrupted: all {self.max_attempts} Batch attempts were lost to Spot "
                    "reclaims",
                )
            raise self._failure(watch, self._failure_headline(watch))

    # -- launching -------------------------------------------------------------------------
    def _step_run_ref(self, step_context: StepExecutionContext) -> StepRunRef:
        job = step_context.job
        if not isinstance(job, ReconstructableJob):
            raise Failure(
                description=(
                    f"Step {step_context.step.key} needs a reconstructable job to run on AWS "
                    "Batch: launch it from the UI, a sensor or schedule (the daemon), `dagster "
                    "job execute` or execute_job(reconstructable(...)). materialize() and "
                    "execute_in_process() keep the job in memory, where the Batch worker "
                    "cannot rebuild it; bind no step launcher to run it in-process."
                )
            )
        if isinstance(job.repository.pointer, FileCodePointer):
            step_context.log.warning(
                f"The code location is a file ({job.repository.pointer.python_file}); the Batch "
                "image must have it at the same path. A python_module location avoids that."
            )
        return step_context_to_step_run_ref(step_context)

    def _check_queue(self, batch: Any) -> None:
        """Fail fast, naming the queue, before anything is staged or submitted."""
        try:
            queues = batch.describe_job_queues(jobQueues=[self.job_queue]).get("jobQueues", [])
        except ClientError as error:
            if _code(error) in _DENIED:
                return  # the host role may lack DescribeJobQueues; SubmitJob will tell
            raise
        region = batch.meta.region_name
        if not queues:
            raise Failure(
                description=f"AWS Batch job queue {self.job_queue!r} (BATCH_JOB_QUEUE) does not "
                f"exist in region {region}",
                metadata={"job_queue": self.job_queue, "region": region},
            )
        queue = queues[0]
        if queue.get("state") != "ENABLED" or queue.get("status") == "INVALID":
            raise Failure(
                description=f"AWS Batch job queue {self.job_queue!r} is {queue.get('state')}/"
                f"{queue.get('status')}: {queue.get('statusReason') or 'no reason given'}",
                metadata={"job_queue": self.job_queue, "region": region},
            )

    def _container_environment(self, step_context: StepExecutionContext) -> dict[str, str]:
        """What the step needs in the container, and nothing secret."""
        env: dict[str, str] = {
            RUN_ID_ENV: step_context.dagster_run.run_id,
            STEP_KEY_ENV: step_context.step.key,
            PLACEMENT_ENV: self._placements.get(step_context.step.key, "AWS Batch"),
        }
        if self.region:
            env["AWS_REGION"] = self.region
        # The worker must read and write the same store as this process's IO manager.
        store = getattr(step_context.resources, "store", None)
        if getattr(store, "bucket", None):
            env["ANALYTICS_BUCKET"] = str(store.bucket)  # type: ignore[union-attr]
            env["ANALYTICS_PREFIX"] = str(store.prefix)  # type: ignore[union-attr]
        env.update(self.environment)
        refuse_secrets(env)
        return env

    def _submit(
        self, batch: Any, step_context: StepExecutionContext, uri: str, digest: str,
        attempt: int, environment: Mapping[str, str],
    ) -> _Watch:
        run_id = step_context.dagster_run.run_id
        step_key = step_context.step.key
        name = re.sub(r"[^A-Za-z0-9_-]", "-", f"{step_context.dagster_run.job_name}-{step_key}")
        name = f"{name[:100]}-{run_id[:8]}-a{attempt}"
        env = [{"name": k, "value": v} for k, v in {**environment, ATTEMPT_ENV: str(attempt)}
               .items()]
        try:
            response = batch.submit_job(
                jobName=name,
                jobQueue=self.job_queue,
                jobDefinition=self.job_definition,
                # The image's ENTRYPOINT is cocktail-assets-step; its arguments are the URI and
                # the reference's digest, which only this launcher (SubmitJob) can set.
                containerOverrides={
                    "command": [uri, DIGEST_OPTION, digest], "environment": env,
                },
                # One Batch attempt: this launcher resubmits after a Spot reclaim, with a new
                # attempt number. SubmitJob's strategy replaces the definition's, rules included.
                retryStrategy={
                    "attempts": 1,
                    "evaluateOnExit": [
                        {"onStatusReason": SPOT_RECLAIM_PREFIX + "*", "action": "RETRY"},
                        {"onReason": "*", "action": "EXIT"},
                    ],
                },
                # The host policy lets TerminateJob act only on jobs carrying this tag (and
                # TagResource only add it, on SubmitJob).
                tags=dict(JOB_TAGS),
                propagateTags=True,
            )
        except ClientError as error:
            message = error.response.get("Error", {}).get("Message", str(error))
            raise Failure(
                description=f"AWS Batch refused the job for queue {self.job_queue!r} and "
                f"definition {self.job_definition!r}: {_code(error)}: {message}",
                metadata={"job_queue": self.job_queue, "job_definition": self.job_definition},
            ) from None
        step_context.log.info(
            f"Submitted Batch job {name} ({response['jobId']}) to queue {self.job_queue}, "
            f"attempt {attempt} ({uri})"
        )
        return _Watch(job_id=response["jobId"], job_name=name, attempt=attempt)

    # -- watching --------------------------------------------------------------------------
    def _watch(
        self, step_context: StepExecutionContext, batch: Any, s3: Any, folder: str,
        watch: _Watch,
    ) -> Iterator[DagsterEvent]:
        """Poll the job and forward its events until it ends and its events are all in."""
        stream = EventStream(s3, self.staging_bucket, folder)
        delay = self.poll_interval_seconds
        announced: set[str] = set()
        try:
            while True:
                with raise_execution_interrupts():
                    before = watch.status
                    job = self._describe(batch, watch.job_id)
                    if job is not None:
                        watch.job = job
                    entries = stream.poll()
                yield from self._forward(step_context, entries, watch, stream)
                if watch.status != before or (watch.log_stream and "log" not in announced):
                    self._announce(step_context, watch, announced)
                if watch.status in DONE_STATUSES:
                    break
                with raise_execution_interrupts():
                    time.sleep(delay)
                changed = bool(entries) or watch.status != before
                delay = (self.poll_interval_seconds if changed
                         else min(delay * 1.5, self.max_poll_interval_seconds))
            yield from self._drain(step_context, stream, watch)
        except BaseException as error:
            if watch.status not in DONE_STATUSES:
                self._terminate(step_context, batch, watch, error)
            raise

    def _describe(self, batch: Any, job_id: str) -> dict[str, Any] | None:
        try:
            jobs = batch.describe_jobs(jobs=[job_id]).get("jobs", [])
        except ClientError as error:
            if _code(error) in _THROTTLED:
                return None  # keep the last known state; the backoff slows us down
            raise
        return jobs[0] if jobs else None

    def _announce(self, context: StepExecutionContext, watch: _Watch, seen: set[str]) -> None:
        if watch.status not in seen:
            seen.add(watch.status)
            context.log.debug(f"Batch job {watch.job_id}: {watch.status}")
        if watch.log_stream and "log" not in seen:
            seen.add("log")
            context.log.info(
                f"Batch job {watch.job_id} logs: CloudWatch log group "
                f"{self.log_group or '(job definition default)'}, stream {watch.log_stream}"
            )

    def _forward(
        self, step_context: StepExecutionContext, entries: list[EventLogEntry], watch: _Watch,
        stream: EventStream,
    ) -> Iterator[DagsterEvent]:
        """Store the worker's events in this instance and hand Dagster events to the plan."""
        if stream.restarts:
            step_context.log.warning(
                f"The worker of attempt {watch.attempt} was started again on the Batch host; "
                "the step's events from its new start follow"
            )
            stream.restarts = 0
        for entry in entries:
            event = entry.dagster_event if entry.is_dagster_event else None
            if event is not None and event.is_step_failure:
                # Held back: a Spot reclaim is retried, and a real failure is reported with
                # the Batch reason and log stream as one Failure.
                watch.remote_failure = entry
                continue
            step_context.instance.handle_new_event(entry)
            _echo_to_run_loggers(step_context, entry)
            if event is not None:
                if event.event_type_value in _STEP_ENDS:
                    watch.step_end = event.event_type_value
                yield event

    def _drain(
        self, step_context: StepExecutionContext, stream: EventStream, watch: _Watch
    ) -> Iterator[DagsterEvent]:
        """After the job ended: read the chunks still to come, tolerating late ones.

        A worker that finished writes result.json with its chunk count, so we wait (up to
        ``drain_timeout_seconds``) until we have them all. A job that failed without it (a
        killed container) gets one more poll.
        """
        deadline = time.monotonic() + self.drain_timeout_seconds
        while True:
            with raise_execution_interrupts():
                entries = stream.poll()
                watch.result = stream.result() or watch.result
            yield from self._forward(step_context, entries, watch, stream)
            if watch.result is not None and stream.chunks_read >= watch.result["chunks"]:
                return
            if watch.result is None and watch.status == "FAILED" and not entries:
                return
            if time.monotonic() >= deadline:
                expected = watch.result["chunks"] if watch.result else "?"
                watch.incomplete = (
                    f"read {stream.chunks_read} of {expected} event chunks from "
                    f"s3://{stream.bucket}/{stream.folder}/ within "
                    f"{self.drain_timeout_seconds:g} s"
                    + (f" ({stream.last_problem})" if stream.last_problem else "")
                )
                step_context.log.warning(f"Batch job {watch.job_id}: {watch.incomplete}")
                return
            with raise_execution_interrupts():
                time.sleep(min(self.poll_interval_seconds, 1.0))

    def _terminate(
        self, step_context: StepExecutionContext, batch: Any, watch: _Watch, error: BaseException
    ) -> None:
        interrupted = isinstance(
            error, DagsterExecutionInterruptedError | KeyboardInterrupt | GeneratorExit
        )
        reason = (
            f"Dagster run {step_context.dagster_run.run_id} was terminated"
            if interrupted else f"Dagster step launcher error: {type(error).__name__}"
        )
        try:
            batch.terminate_job(jobId=watch.job_id, reason=reason[:250])
            step_context.log.warning(f"Terminated Batch job {watch.job_id}: {reason}")
        except Exception as terminate_error:  # the interrupt matters more; say what is left
            step_context.log.error(
                f"Could not terminate Batch job {watch.job_id} ({terminate_error}); "
                "terminate it yourself"
            )

    # -- failures --------------------------------------------------------------------------
    def _failure_headline(self, watch: _Watch) -> str:
        if watch.status == "SUCCEEDED":
            return (f"Batch job succeeded but the step's events are incomplete: "
                    f"{watch.incomplete or 'the worker reported no end of the step'}")
        return f"Step failed on AWS Batch: {watch.reason or 'no status reason'}"

    def _failure(self, watch: _Watch, headline: str) -> Failure:
        container = watch.job.get("container") or {}
        lines = [headline]
        if watch.reason and watch.reason not in headline:
            lines.append(f"Batch status reason: {watch.reason}")
        step_error = None
        if watch.remote_failure is not None:
            remote = watch.remote_failure.get_dagster_event().step_failure_data
            step_error = user_error(remote.error)
        if step_error is not None:
            lines.append(f"The step raised {step_error.message.strip()}")
        elif watch.result and watch.result.get("error"):
            lines.append(f"The worker reported: {watch.result['error']}")
        if container.get("reason"):
            lines.append(f"Container: {container['reason']}")
        lines.append(
            f"Batch job {watch.job_name} ({watch.job_id}), attempt {watch.attempt}; CloudWatch "
            f"log stream {watch.log_stream or '(none: the container never started)'}"
            + (f" in log group {self.log_group}" if self.log_group else "")
        )
        metadata: dict[str, Any] = {
            "batch_job_id": watch.job_id,
            "batch_job_name": watch.job_name,
            "batch_status": watch.status,
            "status_reason": watch.reason,
            "log_stream": watch.log_stream,
            "log_group": self.log_group,
            "exit_code": container.get("exitCode"),
            "attempt": watch.attempt,
        }
        if step_error is not None:
            metadata["step_error"] = MetadataValue.text(step_error.to_string())
        return Failure(
            description="\n".join(lines),
            metadata={k: v for k, v in metadata.items() if v is not None and v != ""},
        )


def _echo_to_run_loggers(step_context: StepExecutionContext, entry: EventLogEntry) -> None:
    """Show a forwarded event on the run's own loggers too (console, the CLI's progress
    lines), as if logged here. Storing it is ``handle_new_event``'s job, so the instance's
    handlers are skipped. Best effort: it leans on Dagster internals and must never fail a step.
    """
    try:
        handler = step_context.log._dagster_handler
        loggers = handler._loggers
        if not loggers:
            return
        event = entry.dagster_event if entry.is_dagster_event else None
        meta = construct_log_record_metadata(handler.metadata, entry.user_message, event, None)
        message = construct_log_record_message(meta)
        for logger in loggers:
            logger.log(
                entry.level, message,
                extra={LOG_RECORD_METADATA_ATTR: meta, LOG_RECORD_EVENT_ATTR: event},
            )
    except Exception:
        return


def refuse_secrets(environment: Mapping[str, str]) -> None:
    """A job's environment is readable by anyone who may describe the job: no secrets in it."""
    secret = sorted(name for name in environment if _SECRET_NAME.search(name))
    if secret:
        raise Failure(
            description=f"Refusing to pass {', '.join(secret)} in a Batch job's environment, "
            "where anyone who can describe the job reads it; give it to the job definition "
            "as a Secrets Manager secret instead."
        )


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))
