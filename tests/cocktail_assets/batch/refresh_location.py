"""The real code location, rebuilt from this process's environment on every call.

The target of ``reconstructable`` for tests that send the real refresh's heavy steps to the
test Batch host: the host process (Batch settings set) and the worker subprocess (none) each
build it with ``build_defs`` from their own environment, as production does, with the
launcher polling faster so the test does not wait on production's poll intervals.
"""

from __future__ import annotations

import dagster as dg

from cocktail_assets.definitions import build_defs
from cocktail_assets.environments import read_settings, step_launcher_resource
from cocktail_assets.refresh.jobs import JOB_NAME


def refresh_job() -> dg.JobDefinition:
    settings = read_settings()
    launcher = step_launcher_resource(settings)
    if settings.batch_job_queue:
        launcher = launcher.model_copy(update={
            "poll_interval_seconds": 0.2, "max_poll_interval_seconds": 0.5,
            "drain_timeout_seconds": 10,
        })
    return build_defs(settings, resources={"step_launcher": launcher}).resolve_job_def(JOB_NAME)
