"""A small job whose second asset runs through the Batch step launcher.

Importable by the worker subprocess (``tests.cocktail_assets.batch.step_job``), which
rebuilds the job from it exactly as the Batch container rebuilds the real code location.
Resources come from the environment, so the host (the test process) and the worker each get
theirs: the worker has no BATCH_JOB_QUEUE, so its step launcher is a none-resource.

The heavy asset's behaviour is steered by the test's Batch host per attempt:
``STEP_TEST_GATE`` (a file to wait for before finishing) and ``STEP_TEST_FAIL``.
"""

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
from dagster import AssetExecutionContext

from cocktail_assets.batch.launcher import BatchStepLauncher
from cocktail_assets.resources.database import CocktailDatabase
from cocktail_assets.resources.io_manager import ArtifactIOManager
from cocktail_assets.resources.store import AnalyticsStore

JOB_NAME = "batch_step_test"
TOTAL = dg.AssetKey(["batch_test", "total"])
STARTED = "summing numbers on the Batch host"


@dataclass(frozen=True)
class Numbers:
    values: np.ndarray


@dg.asset(key=["batch_test", "numbers"], group_name="batch_test")
def numbers() -> Numbers:
    return Numbers(values=np.array([1.0, 2.0, 3.5]))


@dg.asset(
    key=TOTAL,
    group_name="batch_test",
    required_resource_keys={"step_launcher", "store", "database"},
    check_specs=[dg.AssetCheckSpec("total_positive", asset=TOTAL)],
)
def total(context: AssetExecutionContext, numbers: Numbers) -> Any:
    attempt = os.environ.get("COCKTAIL_STEP_ATTEMPT", "in-process")
    context.log.info(f"{STARTED} (attempt {attempt})")
    with context.resources.database.connect() as conn:
        ingredients = conn.execute("SELECT count(*) FROM ingredients").fetchone()[0]
    gate = os.environ.get("STEP_TEST_GATE")
    if gate:
        deadline = time.monotonic() + 60
        while not Path(gate).exists() and time.monotonic() < deadline:
            time.sleep(0.05)
    if os.environ.get("STEP_TEST_FAIL"):
        raise ValueError("the numbers do not add up")
    value = float(numbers.values.sum())
    yield dg.Output(
        Numbers(values=np.array([value])),
        metadata={"total": value, "ingredients": ingredients, "attempt": attempt},
    )
    yield dg.AssetCheckResult(check_name="total_positive", passed=value > 0)


def _resources() -> dict[str, Any]:
    env = os.environ
    store = AnalyticsStore(
        bucket=env["ANALYTICS_BUCKET"], prefix=env.get("ANALYTICS_PREFIX", "analytics"),
        endpoint_url=env.get("AWS_ENDPOINT_URL"),
    )
    launcher: Any = dg.ResourceDefinition.none_resource()
    if env.get("BATCH_JOB_QUEUE"):
        launcher = BatchStepLauncher(
            job_queue=env["BATCH_JOB_QUEUE"],
            job_definition=env["BATCH_JOB_DEFINITION"],
            staging_bucket=env["ANALYTICS_BUCKET"],
            staging_prefix=env.get("BATCH_STAGING_PREFIX", "dagster-steps"),
            region=env.get("AWS_REGION"),
            endpoint_url=env.get("AWS_ENDPOINT_URL"),
            log_group="/aws/batch/test",
            max_attempts=int(env.get("BATCH_MAX_ATTEMPTS", "3")),
            poll_interval_seconds=0.2,
            max_poll_interval_seconds=0.5,
            drain_timeout_seconds=10,
        )
    return {
        "store": store,
        "io_manager": ArtifactIOManager(store=store),
        "database": CocktailDatabase(url=env["DATABASE_URL"]),
        "step_launcher": launcher,
    }


def step_job_def() -> dg.JobDefinition:
    """The job with this process's resources (the target of ``reconstructable``)."""
    defs = dg.Definitions(
        assets=[numbers, total],
        jobs=[dg.define_asset_job(JOB_NAME, executor_def=dg.in_process_executor)],
        resources=_resources(),
    )
    return defs.resolve_job_def(JOB_NAME)
