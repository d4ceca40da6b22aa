"""The Batch step launcher end to end: a real Dagster instance runs a reconstructable job
whose heavy asset goes through moto's Batch API to a test host that runs the worker command
against moto S3 and the test PostgreSQL."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import dagster as dg
import pytest
from dagster import DagsterEventType

from cocktail_assets.batch.events import list_keys
from cocktail_assets.batch.launcher import BatchStepLauncher
from tests.cocktail_assets.batch.batch_host import (
    EXIT_REASON,
    ROOT,
    SPOT_REASON,
    BatchHost,
    Play,
    base_env,
    worker_command,
)
from tests.cocktail_assets.batch.conftest import STAGING_PREFIX
from tests.cocktail_assets.batch.step_job import STARTED, TOTAL, step_job_def

STEP_KEY = "batch_test__total"


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as instance:
        yield instance


def run_job(instance: dg.DagsterInstance) -> dg.ExecuteJobResult:
    return dg.execute_job(
        dg.reconstructable(step_job_def), instance=instance, raise_on_error=False
    )


def events_of(instance: dg.DagsterInstance, run_id: str, kind: DagsterEventType) -> list[Any]:
    return [
        e for e in instance.all_logs(run_id)
        if e.is_dagster_event and e.dagster_event.event_type_value == kind.value
        and e.dagster_event.step_key == STEP_KEY
    ]


def messages(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    return [e.user_message for e in instance.all_logs(run_id)]


def describe(job_ids: list[str]) -> list[dict[str, Any]]:
    jobs = boto3.client("batch").describe_jobs(jobs=job_ids)["jobs"]
    return sorted(jobs, key=lambda j: job_ids.index(j["jobId"]))


def when(condition: Callable[[], bool], then: Callable[[], None], timeout: float = 60) -> dict:
    """Run ``then`` on a thread once ``condition`` holds; the dict records whether it did."""
    seen: dict[str, Any] = {"done": False}

    def watch() -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if condition():
                    seen["done"] = True
                    then()
                    return
            except Exception as error:  # reported by the assertion on seen
                seen["error"] = error
            time.sleep(0.05)

    threading.Thread(target=watch, daemon=True).start()
    return seen


def step_started_while_running(instance: dg.DagsterInstance, host: BatchHost) -> Callable:
    """True once the step's first log line is in the host instance while its job runs."""

    def check() -> bool:
        runs = instance.get_runs(limit=1)
        if not runs or not host.jobs:
            return False
        logged = any(STARTED in m for m in messages(instance, runs[0].run_id))
        return logged and describe(host.jobs[-1:])[0]["status"] == "RUNNING"

    return check


def test_round_trip_streams_events_live(
    instance: dg.DagsterInstance, batch_host: BatchHost, batch_setup: dict, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    batch_host.plays = [Play(env={"STEP_TEST_GATE": str(gate)})]
    live = when(step_started_while_running(instance, batch_host), gate.touch)

    result = run_job(instance)

    assert result.success, batch_host.output(batch_host.jobs[0]) if batch_host.jobs else ""
    assert live["done"], live  # the log line arrived while the Batch job was still running
    (job,) = describe(batch_host.jobs)
    bucket = batch_setup["bucket"]
    step_folder = f"{STAGING_PREFIX}/{result.run_id}/{STEP_KEY}"
    assert job["jobQueue"] == batch_setup["queue_arn"]
    assert job["jobDefinition"].startswith(batch_setup["definition_arn"].rsplit(":", 1)[0])
    assert job["status"] == "SUCCEEDED"
    assert job["container"]["command"] == [f"s3://{bucket}/{step_folder}/step_run_ref.pkl"]
    env = {e["name"]: e["value"] for e in job["container"]["environment"]}
    assert env["COCKTAIL_STEP_ATTEMPT"] == "1"
    assert env["ANALYTICS_BUCKET"] == bucket  # the override beats the definition's
    assert env["ANALYTICS_PREFIX"] == "analytics"
    assert env["AWS_REGION"] == "us-east-1"
    assert env["COCKTAIL_STEP_RUN_ID"] == result.run_id
    assert not {"DATABASE_URL", "AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID"} & set(env)
    assert batch_setup["db_url"] not in str(job)  # no secret anywhere in the job

    s3 = boto3.client("s3")
    keys = list_keys(s3, bucket, step_folder + "/")
    assert f"{step_folder}/step_run_ref.pkl" in keys
    assert f"{step_folder}/attempt-1/events-00001.json" in keys
    assert f"{step_folder}/attempt-1/result.json" in keys
    assert "Contents" in s3.list_objects_v2(
        Bucket=bucket, Prefix="analytics/v1/work/batch_test/total.npz"
    )

    (mat,) = instance.fetch_materializations(TOTAL, limit=10).records
    metadata = mat.asset_materialization.metadata
    assert metadata["total"].value == 6.5
    assert metadata["ingredients"].value == 2  # read from PostgreSQL on the Batch host
    assert metadata["attempt"].value == "1"
    assert metadata["work_uri"].value == f"s3://{bucket}/analytics/v1/work/batch_test/total.npz"
    checks = events_of(instance, result.run_id, DagsterEventType.ASSET_CHECK_EVALUATION)
    assert [c.dagster_event.event_specific_data.passed for c in checks] == [True]
    assert len(events_of(instance, result.run_id, DagsterEventType.STEP_START)) == 1
    assert len(events_of(instance, result.run_id, DagsterEventType.STEP_SUCCESS)) == 1

    # The same attempt run a second time (a duplicate container) does not run the step again.
    before = list_keys(s3, bucket, step_folder + "/attempt-1/")
    again = subprocess.run(
        [*worker_command(), *job["container"]["command"]],
        env={**base_env(batch_setup["endpoint"]), **env, "DATABASE_URL": batch_setup["db_url"]},
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )
    assert again.returncode == 0, again.stderr
    assert "already finished" in again.stderr
    assert list_keys(s3, bucket, step_folder + "/attempt-1/") == before
