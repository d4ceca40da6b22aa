"""The S3 layout the launcher and the worker share, and the event chunks they exchange.

::

    s3://<bucket>/<staging prefix>/<run id>/<step key>/step_run_ref.pkl
    s3://<bucket>/<staging prefix>/<run id>/<step key>/attempt-<n>/events-00001.json
                                                                  /events-00002.json ...
                                                                  /result.json

Why chunks and not one growing ``events.pkl``: S3 has no append, so one object rewritten
with all events costs O(n²) bytes and a reader may see any older version. Numbered chunks
are written once each (``If-None-Match: *``), read in order, and a reader that finds a chunk
missing (not written yet) or unreadable (a truncated body) simply retries it on its next poll.
Each attempt gets its own folder, so a retried job never replays an older attempt's events.

Chunks hold Dagster's own serdes JSON of ``EventLogEntry`` objects, not pickles: the Dagster
host never unpickles anything a Batch container wrote. ``result.json`` is written last and
says how many chunks the attempt produced, so the host knows when it has them all.
"""

from __future__ import annotations

import base64
import hashlib
import json
import posixpath
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError
from dagster import EventLogEntry, deserialize_value, serialize_value

from cocktail_assets.dagster_private import SerializableErrorInfo

ATTEMPT_ENV = "COCKTAIL_STEP_ATTEMPT"  # the attempt number, set per submission
RUN_ID_ENV = "COCKTAIL_STEP_RUN_ID"  # the run and step the job is for, set per submission
STEP_KEY_ENV = "COCKTAIL_STEP_KEY"
# Why the step went to Batch (BATCH_MIN_RECIPES), for the step's metadata in the container.
PLACEMENT_ENV = "COCKTAIL_STEP_PLACEMENT"


def step_placement(launcher: object, step_key: str, environ: dict[str, str] | None = None) -> str:
    """Where a heavy step runs and why, for its materialization's metadata: the host's
    launcher knows (in-process below the threshold); in a Batch container the launcher
    passed it in the job's environment; without Batch settings there is no launcher."""
    import os

    decided = getattr(launcher, "_placements", None)
    if isinstance(decided, dict) and step_key in decided:
        return decided[step_key]
    passed = (environ if environ is not None else os.environ).get(PLACEMENT_ENV)
    if passed:
        return passed
    return "in-process (no AWS Batch settings)"
DIGEST_OPTION = "--sha256"  # the job command: <ref uri> --sha256 <hex digest of the ref>
# Tags of every submitted job; deploy/cloudformation.yaml's host policy conditions
# TerminateJob on them.
JOB_TAGS = (("Project", "cocktail-assets"),)
REF_NAME = "step_run_ref.pkl"
RESULT_NAME = "result.json"
CHUNK_FORMAT = 1
_CHUNK_RE = re.compile(r"events-(\d{5,})\.json$")
_ATTEMPT_RE = re.compile(r"attempt-(\d+)/")
_MISSING = {"NoSuchKey", "404", "NotFound"}


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/key`` -> (bucket, key); a ValueError names anything else."""
    if not uri.startswith("s3://") or "/" not in uri[5:]:
        raise ValueError(f"not an S3 object URI: {uri!r}")
    bucket, _, key = uri[5:].partition("/")
    if not bucket or not key:
        raise ValueError(f"not an S3 object URI: {uri!r}")
    return bucket, key


def step_dir(staging_prefix: str, run_id: str, step_key: str) -> str:
    return "/".join(p for p in (staging_prefix.strip("/"), run_id, step_key) if p)


def ref_key(step_folder: str) -> str:
    return f"{step_folder}/{REF_NAME}"


def attempt_dir(step_folder: str, attempt: int) -> str:
    return f"{step_folder}/attempt-{attempt}"


def attempt_dir_of_ref(ref_object_key: str, attempt: int) -> str:
    """Where the worker of ``attempt`` writes, derived from the ref's key."""
    return attempt_dir(posixpath.dirname(ref_object_key), attempt)


def chunk_key(attempt_folder: str, seq: int) -> str:
    return f"{attempt_folder}/events-{seq:05d}.json"


def result_key(attempt_folder: str) -> str:
    return f"{attempt_folder}/{RESULT_NAME}"


def is_missing(error: ClientError) -> bool:
    return str(error.response.get("Error", {}).get("Code")) in _MISSING


def list_keys(s3: Any, bucket: str, prefix: str) -> list[str]:
    keys: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys.extend(item["Key"] for item in page.get("Contents", []))
    return keys


def highest_attempt(s3: Any, bucket: str, step_folder: str) -> int:
    """The largest attempt number with anything under it (0 if none): a new launch of the same
    step in the same run (a Dagster retry) numbers its attempts after it."""
    numbers = [
        int(m.group(1))
        for key in list_keys(s3, bucket, step_folder + "/attempt-")
        if (m := _ATTEMPT_RE.search(key[len(step_folder) :]))
    ]
    return max(numbers, default=0)


def existing_chunks(s3: Any, bucket: str, attempt_folder: str) -> list[int]:
    return sorted(
        int(m.group(1))
        for key in list_keys(s3, bucket, attempt_folder + "/events-")
        if (m := _CHUNK_RE.search(key))
    )


def content_md5(body: bytes) -> str:
    return base64.b64encode(hashlib.md5(body).digest()).decode("ascii")


class ChunkUnreadable(Exception):
    """A chunk exists but cannot be decoded yet (truncated, or another's)."""


@dataclass(frozen=True)
class Chunk:
    seq: int
    events: list[EventLogEntry]
    restart: bool  # the first chunk written by a second run of the same attempt


def encode_chunk(seq: int, events: Sequence[EventLogEntry], restart: bool = False) -> bytes:
    body = {
        "format": CHUNK_FORMAT,
        "seq": seq,
        "count": len(events),
        "restart": restart,
        "events": serialize_value(list(events)),
    }
    return json.dumps(body).encode("utf-8")


def decode_chunk(body: bytes, seq: int) -> Chunk:
    """Decode and check a chunk; ChunkUnreadable when it is truncated or not chunk ``seq``."""
    try:
        data = json.loads(body.decode("utf-8"))
        events = deserialize_value(data["events"], as_type=list)
    except Exception as error:  # truncated JSON, bad UTF-8, serdes mismatch
        raise ChunkUnreadable(f"chunk {seq} is unreadable ({type(error).__name__})") from None
    if data.get("format") != CHUNK_FORMAT or data.get("seq") != seq:
        raise ChunkUnreadable(f"chunk {seq} has format/seq {data.get('format')}/{data.get('seq')}")
    if data.get("count") != len(events) or not all(isinstance(e, EventLogEntry) for e in events):
        raise ChunkUnreadable(f"chunk {seq} holds {len(events)} of {data.get('count')} events")
    return Chunk(seq=seq, events=events, restart=bool(data.get("restart")))


class EventStream:
    """Reads one attempt's chunks in order, each exactly once, across polls.

    A missing chunk ends the poll (it is not written yet, or not yet visible); an unreadable one
    also ends it and is retried next poll, so events are never skipped nor repeated.
    """

    def __init__(self, s3: Any, bucket: str, attempt_folder: str) -> None:
        self.s3 = s3
        self.bucket = bucket
        self.folder = attempt_folder
        self.next_seq = 1
        self.last_problem: str | None = None
        self.restarts = 0

    def poll(self) -> list[EventLogEntry]:
        """The events of every chunk that became readable since the last poll, in order."""
        events: list[EventLogEntry] = []
        while True:
            try:
                response = self.s3.get_object(
                    Bucket=self.bucket, Key=chunk_key(self.folder, self.next_seq)
                )
                body = response["Body"].read()
            except ClientError as error:
                if is_missing(error):
                    return events
                raise
            try:
                chunk = decode_chunk(body, self.next_seq)
            except ChunkUnreadable as problem:
                self.last_problem = str(problem)
                return events
            self.last_problem = None
            self.restarts += chunk.restart
            events.extend(chunk.events)
            self.next_seq += 1

    @property
    def chunks_read(self) -> int:
        return self.next_seq - 1

    def result(self) -> dict[str, Any] | None:
        """The attempt's ``result.json`` (status, chunks), or None while it is not there."""
        try:
            body = self.s3.get_object(Bucket=self.bucket, Key=result_key(self.folder))
            data = json.loads(body["Body"].read().decode("utf-8"))
        except ClientError as error:
            if is_missing(error):
                return None
            raise
        except ValueError:
            return None
        return data if isinstance(data, dict) and isinstance(data.get("chunks"), int) else None


def user_error(error: SerializableErrorInfo | None) -> SerializableErrorInfo | None:
    """The user's exception inside Dagster's step-execution wrapper, if there is one."""
    while error is not None and error.cls_name == "DagsterExecutionStepExecutionError" and (
        error.cause is not None
    ):
        error = error.cause
    return error
