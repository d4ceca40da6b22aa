"""Event chunks on S3 (moto): order, late and truncated objects, immutability; the worker's
command line; what the launcher refuses to put in a job; how production binds it."""

from __future__ import annotations

import boto3
import pytest
from dagster import EventLogEntry, Failure

from cocktail_assets.batch.events import (
    ChunkUnreadable,
    EventStream,
    chunk_key,
    decode_chunk,
    encode_chunk,
    existing_chunks,
    highest_attempt,
    parse_s3_uri,
)
from cocktail_assets.batch.launcher import BatchStepLauncher, refuse_secrets
from cocktail_assets.batch.worker import ChunkWriter, _parse_args, main
from cocktail_assets.environments import read_settings, step_launcher_resource

FOLDER = "dagster-steps/run-1/spaces__em_fit/attempt-1"


def entry(message: str) -> EventLogEntry:
    return EventLogEntry(
        error_info=None, level=20, user_message=message, run_id="run-1", timestamp=1.0,
        step_key="spaces__em_fit", job_name="analytics_refresh", dagster_event=None,
    )


def put(s3: object, bucket: str, seq: int, body: bytes) -> None:
    s3.put_object(Bucket=bucket, Key=chunk_key(FOLDER, seq), Body=body)  # type: ignore[attr-defined]


def test_chunks_are_read_in_order_once_tolerating_late_and_truncated(s3_bucket: str) -> None:
    s3 = boto3.client("s3")
    stream = EventStream(s3, s3_bucket, FOLDER)
    assert stream.poll() == []

    put(s3, s3_bucket, 2, encode_chunk(2, [entry("c"), entry("d")]))  # chunk 1 is late
    assert stream.poll() == []
    whole = encode_chunk(1, [entry("a"), entry("b")])
    put(s3, s3_bucket, 1, whole[: len(whole) // 2])  # a partially written chunk 1
    assert stream.poll() == []
    assert "unreadable" in (stream.last_problem or "")
    put(s3, s3_bucket, 1, whole)

    assert [e.user_message for e in stream.poll()] == ["a", "b", "c", "d"]
    assert stream.poll() == [] and stream.chunks_read == 2 and stream.last_problem is None


def test_a_chunk_must_be_the_one_asked_for() -> None:
    body = encode_chunk(3, [entry("x")])
    assert decode_chunk(body, 3).events[0].user_message == "x"
    with pytest.raises(ChunkUnreadable):
        decode_chunk(body, 4)
    with pytest.raises(ChunkUnreadable):
        decode_chunk(b'{"format": 1, "seq": 3, "count": 2, "events": "[]"}', 3)


def test_writer_flushes_immutable_numbered_chunks(s3_bucket: str) -> None:
    s3 = boto3.client("s3")
    put(s3, s3_bucket, 1, encode_chunk(1, [entry("someone else's")]))
    writer = ChunkWriter(s3, s3_bucket, FOLDER, interval=0.05).start()
    for name in "abc":
        writer.add(entry(name))
    last = writer.close()

    assert existing_chunks(s3, s3_bucket, FOLDER) == list(range(1, last + 1))
    stream = EventStream(s3, s3_bucket, FOLDER)
    messages = [e.user_message for e in stream.poll()]
    assert messages == ["someone else's", "a", "b", "c"]  # chunk 1 was not overwritten


def test_attempts_of_a_relaunched_step_are_numbered_after_earlier_ones(s3_bucket: str) -> None:
    s3 = boto3.client("s3")
    step = FOLDER.rsplit("/", 1)[0]
    assert highest_attempt(s3, s3_bucket, step) == 0
    s3.put_object(Bucket=s3_bucket, Key=f"{step}/attempt-2/result.json", Body=b"{}")
    s3.put_object(Bucket=s3_bucket, Key=f"{step}/attempt-10/events-00001.json", Body=b"{}")
    assert highest_attempt(s3, s3_bucket, step) == 10


def test_worker_command_line(capsys: pytest.CaptureFixture[str]) -> None:
    uri = "s3://bucket/dagster-steps/r/s/step_run_ref.pkl"
    digest = "ab" * 32
    assert _parse_args([uri, "--sha256", digest]) == (uri, digest)
    # ENTRYPOINT repeated in command
    assert _parse_args(["cocktail-assets-step", uri, "--sha256", digest]) == (uri, digest)
    assert main([]) == 2
    assert main(["not-a-uri", "--sha256", digest]) == 2
    assert main([uri]) == 2  # no digest: refused
    assert main([uri, "--sha256", "xyz"]) == 2
    assert "s3://" in capsys.readouterr().err
    assert parse_s3_uri(uri) == ("bucket", "dagster-steps/r/s/step_run_ref.pkl")


def test_the_worker_loads_only_its_own_reference_with_the_launchers_digest() -> None:
    """A step that could write the staging prefix cannot make a later step unpickle its file:
    the worker checks place and digest before ``pickle.loads``."""
    import hashlib

    from cocktail_assets.batch.worker import check_own_reference

    body = b"the staged reference"
    digest = hashlib.sha256(body).hexdigest()
    key = "dagster-steps/run-1/spaces__em_fit/step_run_ref.pkl"
    env = {"COCKTAIL_STEP_RUN_ID": "run-1", "COCKTAIL_STEP_KEY": "spaces__em_fit"}
    check_own_reference(key, body, digest, env)
    with pytest.raises(ValueError, match="does not match the digest its launcher recorded"):
        check_own_reference(key, body + b" and a planted payload", digest, env)
    with pytest.raises(ValueError, match="is not the staged reference of run run-1, step "
                       "spaces__em_fit"):
        check_own_reference("dagster-steps/run-0/other/step_run_ref.pkl", body, digest, env)


def test_no_secrets_in_a_jobs_environment() -> None:
    refuse_secrets({"ANALYTICS_BUCKET": "b", "COCKTAIL_STEP_ATTEMPT": "1"})
    for name in ("DATABASE_URL", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "PGPASSWORD"):
        with pytest.raises(Failure, match=name):
            refuse_secrets({name: "x"})


def test_production_binds_the_launcher_from_settings() -> None:
    settings = read_settings({
        "COCKTAIL_ENV": "production",
        "DATABASE_URL": "postgresql://site@db.internal/cocktails",
        "ANALYTICS_BUCKET": "cocktail-analytics",
        "AWS_REGION": "eu-west-1",
        "BATCH_JOB_QUEUE": "cocktail-assets-steps",
        "BATCH_JOB_DEFINITION": "cocktail-assets-step",
        "BATCH_LOG_GROUP": "/aws/batch/cocktail-assets",
        "BATCH_MAX_ATTEMPTS": "4",
    })
    launcher = step_launcher_resource(settings)
    assert isinstance(launcher, BatchStepLauncher)
    assert (launcher.job_queue, launcher.job_definition) == (
        "cocktail-assets-steps", "cocktail-assets-step"
    )
    assert (launcher.staging_bucket, launcher.staging_prefix) == (
        "cocktail-analytics", "dagster-steps"
    )
    assert (launcher.region, launcher.max_attempts) == ("eu-west-1", 4)
    assert launcher.log_group == "/aws/batch/cocktail-assets"
    assert "DATABASE_URL" not in str(launcher)
