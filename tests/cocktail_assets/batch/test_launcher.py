"""The Batch step launcher end to end: a real Dagster instance runs a reconstructable job
whose heavy asset goes through moto's Batch API to a test host that runs the worker command
against moto S3 and the test PostgreSQL."""

from __future__ import annotations

import hashlib
import io
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
from botocore.exceptions import ClientError
from dagster import DagsterEventType, DagsterExecutionInterruptedError

from cocktail_assets.batch.events import (
    EventStream,
    attempt_dir_of_ref,
    existing_chunks,
    list_keys,
    parse_s3_uri,
    result_key,
)
from cocktail_assets.batch.launcher import BatchStepLauncher
from cocktail_assets.dagster_private import ReconstructableJob
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
    # Dagster caches the last reconstructed job process-wide; each test has its own resources.
    ReconstructableJob.get_definition.cache_clear()
    ReconstructableJob.get_repository_definition.cache_clear()
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
    instance: dg.DagsterInstance, batch_host: BatchHost, batch_setup: dict, tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
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
    staged = boto3.client("s3").get_object(
        Bucket=bucket, Key=f"{step_folder}/step_run_ref.pkl"
    )["Body"].read()
    assert job["container"]["command"] == [
        f"s3://{bucket}/{step_folder}/step_run_ref.pkl", "--sha256",
        hashlib.sha256(staged).hexdigest(),
    ]
    assert job.get("tags") == {"Project": "cocktail-assets"}  # what TerminateJob requires
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
    # the run's console logger shows the Batch step's events too, not only the event log
    console = capfd.readouterr().err
    assert f"{STEP_KEY} - {STARTED} (attempt 1)" in console
    assert f"{STEP_KEY} - STEP_SUCCESS" in console


def test_a_second_run_of_the_same_attempt(batch_host: BatchHost, batch_setup: dict) -> None:
    """A duplicate container for a finished attempt does nothing; for an unfinished one it
    runs the step again and numbers its chunks after the ones already there."""
    with dg.instance_for_test() as instance:
        assert run_job(instance).success
    (job,) = describe(batch_host.jobs)
    command = [*worker_command(), *job["container"]["command"]]
    env = {
        **base_env(batch_setup["endpoint"]),
        **{e["name"]: e["value"] for e in job["container"]["environment"]},
        "DATABASE_URL": batch_setup["db_url"],
    }
    bucket, ref = parse_s3_uri(job["container"]["command"][0])
    folder = attempt_dir_of_ref(ref, 1)
    s3 = boto3.client("s3")
    chunks = existing_chunks(s3, bucket, folder)

    again = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert again.returncode == 0, again.stderr
    assert "already finished" in again.stderr
    assert existing_chunks(s3, bucket, folder) == chunks

    s3.delete_object(Bucket=bucket, Key=result_key(folder))  # as if the first run died
    again = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert again.returncode == 0, again.stderr
    after = existing_chunks(s3, bucket, folder)
    assert after[: len(chunks)] == chunks and len(after) > len(chunks)
    stream = EventStream(s3, bucket, folder)
    events = stream.poll()
    assert stream.restarts == 1
    starts = [e for e in events if e.is_dagster_event and e.dagster_event.is_step_start]
    assert len(starts) == 2


def step_failure(instance: dg.DagsterInstance, run_id: str) -> Any:
    (failure,) = events_of(instance, run_id, DagsterEventType.STEP_FAILURE)
    return failure.dagster_event.step_failure_data


def test_spot_reclaim_is_retried_as_a_new_attempt(
    instance: dg.DagsterInstance, batch_host: BatchHost, batch_setup: dict, tmp_path: Path
) -> None:
    never = str(tmp_path / "never")
    batch_host.plays = [Play("reclaim", env={"STEP_TEST_GATE": never}, after=STARTED), Play()]

    result = run_job(instance)

    assert result.success, [batch_host.output(j) for j in batch_host.jobs]
    first, second = describe(batch_host.jobs)
    assert (first["status"], first["statusReason"]) == ("FAILED", SPOT_REASON)
    assert second["status"] == "SUCCEEDED"
    attempts = [
        {e["name"]: e["value"] for e in job["container"]["environment"]}["COCKTAIL_STEP_ATTEMPT"]
        for job in (first, second)
    ]
    assert attempts == ["1", "2"]
    (mat,) = instance.fetch_materializations(TOTAL, limit=10).records
    assert mat.asset_materialization.metadata["attempt"].value == "2"
    assert events_of(instance, result.run_id, DagsterEventType.STEP_FAILURE) == []
    assert len(events_of(instance, result.run_id, DagsterEventType.STEP_SUCCESS)) == 1
    logs = messages(instance, result.run_id)
    assert any("interrupted by a Spot reclaim" in m and "not a failure" in m for m in logs)
    # attempt 1's log line streamed in before the reclaim, then attempt 2's: no replay
    assert [m for m in logs if STARTED in m] == [f"{STARTED} (attempt 1)", f"{STARTED} (attempt 2)"]


def test_spot_reclaims_use_up_the_attempts(
    instance: dg.DagsterInstance, batch_host: BatchHost, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BATCH_MAX_ATTEMPTS", "2")
    never = {"STEP_TEST_GATE": str(tmp_path / "never")}
    reclaim = Play("reclaim", env=never, after=STARTED)
    batch_host.plays = [reclaim, reclaim, Play()]

    result = run_job(instance)

    assert not result.success
    assert len(batch_host.jobs) == 2
    data = step_failure(instance, result.run_id)
    description = data.user_failure_data.description
    assert "interrupted" in description and "Spot reclaims" in description
    assert SPOT_REASON in description
    assert instance.fetch_materializations(TOTAL, limit=10).records == []


def test_code_failure_carries_reason_and_log_stream(
    instance: dg.DagsterInstance, batch_host: BatchHost
) -> None:
    batch_host.plays = [Play(env={"STEP_TEST_FAIL": "1"})]

    result = run_job(instance)

    assert not result.success
    (job,) = describe(batch_host.jobs)  # a code error is not retried
    assert (job["status"], job["statusReason"]) == ("FAILED", EXIT_REASON)
    stream = job["container"]["logStreamName"]
    data = step_failure(instance, result.run_id)  # exactly one failure event for the step
    description = data.user_failure_data.description
    assert EXIT_REASON in description
    assert stream in description
    assert "The step raised ValueError: the numbers do not add up" in description
    metadata = data.user_failure_data.metadata
    assert metadata["log_stream"].value == stream
    assert metadata["status_reason"].value == EXIT_REASON
    assert metadata["batch_job_id"].value == job["jobId"]
    assert "ValueError" in metadata["step_error"].value  # the remote traceback
    assert instance.fetch_materializations(TOTAL, limit=10).records == []


def test_terminating_the_run_terminates_the_batch_job(
    instance: dg.DagsterInstance, batch_host: BatchHost, tmp_path: Path
) -> None:
    batch_host.plays = [Play(env={"STEP_TEST_GATE": str(tmp_path / "never")})]
    # What the run worker gets when the run is terminated from the UI: SIGINT.
    sent = when(
        step_started_while_running(instance, batch_host),
        lambda: os.kill(os.getpid(), signal.SIGINT),
    )

    try:
        result = run_job(instance)
        success = result.success
    except DagsterExecutionInterruptedError:
        success = False

    assert sent["done"] and not success
    batch_host.settle()
    (job,) = describe(batch_host.jobs)
    assert batch_host.terminated == [job["jobId"]]
    assert job["status"] == "FAILED"
    assert job["statusReason"].startswith("Dagster run ") and "terminated" in job["statusReason"]
    assert batch_host.processes[job["jobId"]].poll() is not None  # the container stopped
    run = instance.get_runs(limit=1)[0]
    assert any(f"Terminated Batch job {job['jobId']}" in m for m in messages(instance, run.run_id))


def test_wrong_job_queue_fails_fast_naming_it(
    instance: dg.DagsterInstance, batch_host: BatchHost, batch_setup: dict,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BATCH_JOB_QUEUE", "no-such-queue")
    started = time.monotonic()

    result = run_job(instance)

    assert not result.success
    assert time.monotonic() - started < 20
    assert batch_host.jobs == []
    description = step_failure(instance, result.run_id).user_failure_data.description
    assert "'no-such-queue'" in description and "BATCH_JOB_QUEUE" in description
    staged = list_keys(boto3.client("s3"), batch_setup["bucket"], STAGING_PREFIX + "/")
    assert staged == []  # nothing staged for a job that cannot be submitted


class _LateAndTruncated:
    """An S3 client whose readers see chunk 1 late, then truncated, and result.json late,
    as a slow or half-finished upload would look; storage itself is moto's."""

    def __init__(self) -> None:
        self.real = boto3.client("s3")
        self.reads: dict[str, int] = {}
        self.served: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def get_object(self, **kwargs: Any) -> Any:
        response = self.real.get_object(**kwargs)  # really missing: raises NoSuchKey
        key = kwargs["Key"]
        if not key.endswith(("/events-00001.json", "/result.json")):
            return response
        seen = self.reads[key] = self.reads.get(key, 0) + 1
        if seen <= 2:
            self.served.append("missing")
            raise ClientError({"Error": {"Code": "NoSuchKey", "Message": "late"}}, "GetObject")
        if seen <= 4 and "events" in key:
            self.served.append("truncated")
            body = response["Body"].read()
            return {**response, "Body": io.BytesIO(body[: len(body) // 2])}
        return response


def test_late_and_partially_written_event_objects(
    instance: dg.DagsterInstance, batch_host: BatchHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    flaky = _LateAndTruncated()
    monkeypatch.setattr(BatchStepLauncher, "_s3", lambda self: flaky)
    batch_host.plays = [Play()]

    result = run_job(instance)

    assert result.success, [batch_host.output(j) for j in batch_host.jobs]
    assert flaky.served.count("missing") == 4 and flaky.served.count("truncated") == 2
    assert len(events_of(instance, result.run_id, DagsterEventType.STEP_START)) == 1
    assert len(events_of(instance, result.run_id, DagsterEventType.STEP_SUCCESS)) == 1
    assert len(instance.fetch_materializations(TOTAL, limit=10).records) == 1
    assert [m for m in messages(instance, result.run_id) if STARTED in m] == [
        f"{STARTED} (attempt 1)"
    ]


def test_a_job_in_memory_is_refused_with_a_hint(
    instance: dg.DagsterInstance, batch_setup: dict
) -> None:
    from tests.cocktail_assets.batch import step_job

    result = dg.materialize(
        [step_job.numbers, step_job.total], resources=step_job._resources(),
        instance=instance, raise_on_error=False,
    )

    assert not result.success
    description = step_failure(instance, result.run_id).user_failure_data.description
    assert "reconstructable" in description
