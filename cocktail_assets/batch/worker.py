"""``cocktail-assets-step <s3-uri>``: run one Dagster step inside a Batch container.

It downloads the step run reference the launcher staged, rebuilds the step from the code
location it names, runs it on an ephemeral instance and ships every event the step produces
back to S3 as numbered chunks (a background thread flushes about every second and once more
at the end), then writes ``result.json``. Exit status: 0 the step succeeded, 1 it failed,
2 the command line is wrong.

The attempt number comes from ``COCKTAIL_STEP_ATTEMPT`` (set by the launcher per submission),
so each attempt writes to its own folder. Run twice for the same attempt (a duplicate
container), the second run does not repeat a finished step: it exits with the recorded
status; after an unfinished one it re-runs the step and continues the chunk numbering, so the
launcher never sees a chunk replaced under it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import pickle
import queue
import re
import signal
import sys
import threading
import time
import traceback
from collections.abc import Sequence
from typing import Any

from botocore.exceptions import ClientError

from cocktail_assets.batch.events import (
    ATTEMPT_ENV,
    DIGEST_OPTION,
    REF_NAME,
    RUN_ID_ENV,
    STEP_KEY_ENV,
    attempt_dir_of_ref,
    chunk_key,
    content_md5,
    encode_chunk,
    existing_chunks,
    is_missing,
    parse_s3_uri,
    result_key,
    user_error,
)
from cocktail_assets.compiled import Compiles, recording_compiles
from cocktail_assets.db import run_lock

log = logging.getLogger("cocktail_assets.batch.worker")

ENTRYPOINT = "cocktail-assets-step"
_STOP = object()


class ChunkWriter:
    """Collects events from the step (any thread) and writes them as immutable chunks.

    Writing happens on a background thread so a slow S3 never stalls the step; a chunk that
    fails to upload stays buffered and is retried, so events are delayed, never lost.
    """

    def __init__(
        self, s3: Any, bucket: str, folder: str, first_seq: int = 1, restart: bool = False,
        interval: float = 1.0, max_events: int = 500,
    ) -> None:
        self.s3 = s3
        self.bucket = bucket
        self.folder = folder
        self.seq = first_seq - 1  # last chunk written
        self.restart = restart
        self.interval = interval
        self.max_events = max_events
        self._queue: queue.Queue[Any] = queue.Queue()
        self._pending: list[Any] = []
        self._thread = threading.Thread(target=self._run, name="step-events", daemon=True)
        self._error: BaseException | None = None
        self._first_event_at: float | None = None

    def start(self) -> ChunkWriter:
        self._thread.start()
        return self

    def add(self, entry: Any) -> None:
        if self._first_event_at is None:
            self._first_event_at = time.time()
        self._queue.put(entry)

    def startup_s(self) -> float | None:
        """Seconds from this process's start to the step's first event (None: no event)."""
        if self._first_event_at is None:
            return None
        import psutil  # a Dagster dependency

        return round(self._first_event_at - psutil.Process().create_time(), 3)

    def close(self, timeout: float = 120.0) -> int:
        """Flush everything; returns the number of the last chunk written."""
        self._queue.put(_STOP)
        self._thread.join(timeout)
        if self._pending or self._thread.is_alive():
            raise RuntimeError(
                f"could not write {len(self._pending)} step events to "
                f"s3://{self.bucket}/{self.folder}/: {self._error!r}"
            )
        return self.seq

    def _run(self) -> None:
        last_flush = time.monotonic()
        stopping = False
        while not stopping:
            try:
                item = self._queue.get(timeout=0.2)
                if item is _STOP:
                    stopping = True
                else:
                    self._pending.append(item)
            except queue.Empty:
                pass
            due = time.monotonic() - last_flush >= self.interval
            if self._pending and (stopping or due or len(self._pending) >= self.max_events):
                self._flush(final=stopping)
                last_flush = time.monotonic()

    def _flush(self, final: bool) -> None:
        tries = 6 if final else 2
        for attempt in range(tries):
            try:
                self._put(self._pending)
                self._pending = []
                return
            except Exception as error:  # network, throttling: keep the events, retry
                self._error = error
                log.warning("writing step events failed (%s); retrying", error)
                time.sleep(min(0.5 * 2**attempt, 8.0))

    def _put(self, events: list[Any]) -> None:
        while True:
            seq = self.seq + 1
            body = encode_chunk(seq, events, restart=self.restart)
            try:
                self.s3.put_object(
                    Bucket=self.bucket, Key=chunk_key(self.folder, seq), Body=body,
                    ContentMD5=content_md5(body), ContentType="application/json",
                    IfNoneMatch="*",
                )
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") == "PreconditionFailed":
                    # another run of this attempt wrote that number: chunks are immutable
                    self.seq = seq
                    continue
                raise
            self.seq = seq
            self.restart = False
            return


def _read_result(s3: Any, bucket: str, folder: str) -> dict[str, Any] | None:
    try:
        body = s3.get_object(Bucket=bucket, Key=result_key(folder))["Body"].read()
    except ClientError as error:
        if is_missing(error):
            return None
        raise
    return json.loads(body)


def _write_result(s3: Any, bucket: str, folder: str, result: dict[str, Any]) -> None:
    body = json.dumps(result).encode("utf-8")
    s3.put_object(
        Bucket=bucket, Key=result_key(folder), Body=body, ContentMD5=content_md5(body),
        ContentType="application/json",
    )


_USAGE = f"usage: {ENTRYPOINT} s3://<bucket>/<key of step_run_ref.pkl> {DIGEST_OPTION} <hex>"


def _parse_args(argv: Sequence[str]) -> tuple[str, str]:
    """(ref URI, its sha256 hex digest) from the job's command."""
    args = list(argv)
    # The image's ENTRYPOINT already is this command; tolerate it repeated in the job command.
    if args and os.path.basename(args[0]) == ENTRYPOINT:
        args = args[1:]
    if len(args) != 3 or args[1] != DIGEST_OPTION or not re.fullmatch(r"[0-9a-f]{64}", args[2]):
        raise ValueError(_USAGE)
    parse_s3_uri(args[0])
    return args[0], args[2]


def preload(ref: Any) -> None:
    """Import, before the step starts, what the step's asset needs that compiles at import.

    umap-learn declares a few small kernels with explicit signatures and without
    ``cache=True``; numba compiles those when ``umap`` is imported and cannot cache them. A
    UMAP step (asset kind ``umap``) imports it here, so the step itself compiles nothing and
    a compile recorded during it always means a stale cache.
    """
    graph = ref.recon_job.get_definition().asset_layer.asset_graph
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        if node.is_materializable and node.assets_def.op.name == ref.step_key:
            if "umap" in node.kinds:
                from cocktail_assets.compiled import umap_kernel

                umap_kernel("umap.umap_", "UMAP")
            return


def check_own_reference(key: str, body: bytes, digest: str, environ: Any = os.environ) -> None:
    """Refuse, before unpickling, a reference that is not this job's own: it must sit at the
    run and step the launcher named in the job's environment and hash to the digest in the
    job's command (both set by SubmitJob, which the job role cannot call)."""
    run_id, step_key = environ.get(RUN_ID_ENV), environ.get(STEP_KEY_ENV)
    if run_id and step_key and not key.endswith(f"/{run_id}/{step_key}/{REF_NAME}"):
        raise ValueError(
            f"{key} is not the staged reference of run {run_id}, step {step_key}: refusing it"
        )
    actual = hashlib.sha256(body).hexdigest()
    if not hmac.compare_digest(actual, digest):
        raise ValueError(
            f"{key} does not match the digest its launcher recorded (sha256 {actual[:12]}…, "
            f"expected {digest[:12]}…): refusing to load it"
        )


def run(uri: str, attempt: int, s3: Any, digest: str) -> int:
    """Run the step staged at ``uri`` (which must hash to ``digest``) as ``attempt``; returns
    the process exit status."""
    from dagster import external_instance_from_step_run_ref, run_step_from_ref

    bucket, key = parse_s3_uri(uri)
    folder = attempt_dir_of_ref(key, attempt)
    previous = _read_result(s3, bucket, folder)
    if previous is not None:
        log.warning("attempt %s already finished (%s); not running it again", attempt, previous)
        return 0 if previous.get("status") == "succeeded" else 1
    written = existing_chunks(s3, bucket, folder)
    if written:
        log.warning("attempt %s was started before (%s chunks); running it again", attempt,
                    len(written))
    writer = ChunkWriter(
        s3, bucket, folder, first_seq=max(written, default=0) + 1, restart=bool(written)
    ).start()

    failed = False
    error: str | None = None
    compiled = Compiles([])
    try:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        check_own_reference(key, body, digest)
        ref = pickle.loads(body)
        run_lock.held_by_host(ref.run_id)  # the host process holds the run's analytics lock
        log.info("running step %s of run %s, attempt %s", ref.step_key, ref.run_id, attempt)
        instance = external_instance_from_step_run_ref(ref, event_listener_fn=writer.add)
        # The ephemeral instance starts empty; resources that look up or tag their run
        # (``context.instance.get_run_by_id``) need it there; its snapshots stay on the host.
        instance.add_run(
            ref.dagster_run._replace(job_snapshot_id=None, execution_plan_snapshot_id=None)
        )
        with recording_compiles() as at_start:
            preload(ref)
        if at_start.names:
            log.info("compiled at import, before the step: %s", ", ".join(at_start.names))
        with recording_compiles() as compiled:
            for event in run_step_from_ref(ref, instance):
                if event.is_step_failure:
                    failed = True
                    cause = user_error(event.step_failure_data.error)
                    if cause is not None:
                        error = cause.message.strip()
        if compiled.names:
            # The image's cache should hold everything (``cocktail-assets compile`` at build):
            # a compile here costs seconds of a reserved container and means a stale cache.
            log.warning("numba compiled %s function(s) during the step (not in the cache): %s",
                        len(compiled), ", ".join(sorted(set(compiled.names))))
    except BaseException as exc:  # reported in result.json, then exit 1
        failed = True
        error = error or f"{type(exc).__name__}: {exc}".strip()
        traceback.print_exc()
    finally:
        chunks = writer.close()
        result = {"status": "failed" if failed else "succeeded", "chunks": chunks,
                  "attempt": attempt, "error": error, "compiled": sorted(compiled.names),
                  "startup_s": writer.startup_s()}
        _write_result(s3, bucket, folder, result)
        log.info("step %s: %s chunks of events", result["status"], chunks)
    return 1 if failed else 0


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    log.setLevel(logging.INFO)
    try:
        uri, digest = _parse_args(sys.argv[1:] if argv is None else argv)
        attempt = int(os.environ.get(ATTEMPT_ENV) or "1")
    except ValueError as error:
        print(f"{ENTRYPOINT}: {error}", file=sys.stderr)
        return 2
    # Batch stops a container with SIGTERM: raise it in the step so its failure is recorded
    # and the events so far are flushed before the SIGKILL that follows.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    import boto3

    return run(uri, attempt, boto3.client("s3"), digest)


if __name__ == "__main__":
    sys.exit(main())
