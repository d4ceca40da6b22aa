"""The analytics refresh job, and how every path (CLI, sensor, UI) runs it.

Runs execute in one process (the in-process executor: the numeric steps use both cores
themselves, and a step per subprocess would pay Dagster's start-up a dozen times). Heavy steps
leave that process through the step launcher when it is bound. Launched through
``reconstructable`` so a step launcher can rebuild the job on the Batch worker.

``analytics_executor`` is that in-process executor holding the analytics lock
(``db/run_lock.py``) for the whole run: it is this job's executor and the code location's
default (``build_defs``), so runs of Dagster's own asset job from the UI, backfills and
``dagster job execute`` hold it too. It takes the lock before any step (so before the run's
change snapshot and first read), says in the run's log whom it waits for, and fails the run
if its lock session was cut while it ran, re-opening the site's latest edits so that a run
that may have published alongside another settles nothing it did not publish.
"""

from __future__ import annotations

import logging
import os
import sys
import time
import weakref
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import dagster as dg

from cocktail_assets.dagster_private import LOG_RECORD_METADATA_ATTR
from cocktail_assets.db import run_lock
from cocktail_assets.db.change_log import reopen_latest
from cocktail_assets.db.connection import connect
from cocktail_assets.resources.database import enter_run_lock
from cocktail_assets.tags import REFRESH_TAG

JOB_NAME = "analytics_refresh"

# Every materializable asset of the graph (sources are observed, not materialized).
ANALYTICS_GROUPS = ("catalog", "analytics", "spaces")
ANALYTICS_SELECTION = dg.AssetSelection.groups(*ANALYTICS_GROUPS)

_SHOWN_EVENTS = ("STEP_START", "STEP_SUCCESS", "STEP_FAILURE", "ASSET_MATERIALIZATION")


class _ProgressHandler(logging.Handler):
    """One short line per step event and per progress message (``context.log.info``)."""

    def emit(self, record: logging.LogRecord) -> None:
        meta = getattr(record, LOG_RECORD_METADATA_ATTR, None)
        if meta and not meta.get("step_key") and record.levelno >= logging.WARNING:
            # run-level warnings: waiting for the analytics lock, a lost lock
            stamp = datetime.now().strftime("%H:%M:%S")
            print(f"[{stamp}] {meta.get('orig_message', '')}", file=sys.stdout, flush=True)
            return
        if not meta or not meta.get("step_key"):
            return
        stamp = datetime.now().strftime("%H:%M:%S")
        event = meta.get("dagster_event")
        if event is None:
            line = meta.get("orig_message", "")
        elif event.event_type_value in _SHOWN_EVENTS:
            line = event.event_type_value.lower().replace("_", " ")
            if event.event_type_value == "STEP_FAILURE":
                line += ": " + meta.get("orig_message", "")
        else:
            return
        print(f"[{stamp}] {meta['step_key']}: {line}", file=sys.stdout, flush=True)


@dg.logger(description="Short progress lines on stdout: step starts, ends and progress logs.")
def progress_logger(init_context: dg.InitLoggerContext) -> logging.Logger:
    log = logging.getLogger("cocktail_assets.progress")
    log.setLevel(logging.INFO)
    log.propagate = False
    if not log.handlers:
        log.addHandler(_ProgressHandler())
    return log


def _database_conninfo(job_def: dg.JobDefinition, instance: dg.DagsterInstance) -> str:
    """The connection string of the job's own ``database`` resource (EnvVars resolved)."""
    resource_def = job_def.resource_defs.get("database")
    if resource_def is None:
        raise RuntimeError(
            f"job {job_def.name} has no database resource: the analytics lock needs one"
        )
    with dg.build_resources({"database": resource_def}, instance=instance) as resources:
        return resources.database.conninfo()


# Test hook: ``<step key>:<file>`` pauses the run just before that step starts, until the file
# exists (at most two minutes), having created ``<file>.paused``; what the interleaving tests
# of two runs use instead of kill -STOP.
PAUSE_ENV = "COCKTAIL_TEST_PAUSE_BEFORE_STEP"


def _pause_if_asked(event: dg.DagsterEvent) -> None:
    hook = os.environ.get(PAUSE_ENV)
    if not hook or event.event_type_value != "STEP_START":
        return
    step, _, gate = hook.partition(":")
    if event.step_key != step or not gate:
        return
    Path(gate + ".paused").touch()
    deadline = time.monotonic() + 120
    while not Path(gate).exists() and time.monotonic() < deadline:
        time.sleep(0.05)


# Instances whose storages already hold their connections.
_HOLDING: weakref.WeakSet[dg.DagsterInstance] = weakref.WeakSet()


def hold_storage_connections(instance: dg.DagsterInstance) -> None:
    """Keep one open connection per storage for the rest of the run.

    Dagster's PostgreSQL storages open a new connection for every read and write unless told
    otherwise (so that many instances in one process hold nothing), and a run's step writes a
    dozen events and reads asset records: the no-op refresh graph opened 166 connections,
    0.5 s of a 1.8 s execution (``benchmarks/dagster_floor.py``). A run, and the CLI around
    it, has one instance in its process, so it holds a small pool instead, through Dagster's
    own switch for long-lived processes, without a statement timeout; a connection beyond the
    first is opened only while two calls overlap (up to ten).
    Storages other than PostgreSQL ignore it. Once per instance: the CLI holds them before
    its run's executor asks again, and a second switch would replace the pools just opened.
    """
    if instance in _HOLDING:
        return
    instance.optimize_for_webserver(statement_timeout=0, pool_recycle=3600, max_overflow=10)
    _HOLDING.add(instance)


class LockedExecutor(dg.Executor):
    """Dagster's in-process executor, holding the analytics lock for the run."""

    def __init__(self, inner: dg.Executor) -> None:
        self._inner = inner

    @property
    def retries(self) -> Any:
        return self._inner.retries

    @property
    def step_dependency_config(self) -> Any:
        return self._inner.step_dependency_config

    def execute(self, plan_context: Any, execution_plan: Any) -> Iterator[dg.DagsterEvent]:
        run = plan_context.dagster_run
        instance = plan_context.instance
        conninfo = _database_conninfo(plan_context.job.get_definition(), instance)
        lock = enter_run_lock(instance, run.run_id, conninfo, plan_context.log)
        hold_storage_connections(instance)
        try:
            for event in self._inner.execute(plan_context, execution_plan):
                yield event
                _pause_if_asked(event)
            if lock is not None and not lock.still_held():
                with connect(conninfo, autocommit=True) as conn:
                    reopened = reopen_latest(conn)
                raise run_lock.RunLockLost(
                    f"run {run.run_id} lost its analytics lock on {lock.where} while it ran "
                    f"(its session was cut); another run may have published alongside it, so "
                    f"the latest edits of {reopened} table(s) are pending again"
                )
        finally:
            run_lock.leave(lock)


@dg.executor(
    name="analytics_in_process",
    config_schema=dg.in_process_executor.config_schema,
)
def analytics_executor(init_context: dg.InitExecutorContext) -> dg.Executor:
    """In-process execution under the analytics lock (one analytics run at a time)."""
    return LockedExecutor(dg.in_process_executor.executor_creation_fn(init_context))


analytics_refresh = dg.define_asset_job(
    JOB_NAME,
    selection=ANALYTICS_SELECTION,
    executor_def=analytics_executor,
    tags={REFRESH_TAG: "true"},
    description="Materialize the analytics (all, or the subset a refresh selects).",
)


LOGGERS = {"console": dg.colored_console_logger, "progress": progress_logger}

