"""The debounced refresh sensor, and the sensor that settles what successful runs covered.

``refresh_sensor`` polls the change tracking with one query per tick and applies the policy in
``policy.py``. It keeps nothing it cannot rebuild: the pending edits live in the database, the
run history (in progress, failures, the last finished run) in the Dagster instance, and the run
key is derived from both, so a lost cursor or a restarted daemon neither repeats nor loses a
run. The cursor only remembers when (database clock) the sensor first saw the current failure,
to time the backoff; without it the backoff simply starts again.

``settle_on_success`` settles a successful run's edits as soon as the daemon sees it succeed;
the refresh sensor settles, at the start of each tick, any successful run it missed.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime

import dagster as dg
import psycopg

from cocktail_assets.dagster_private import RUN_KEY_TAG, BaseAssetGraph
from cocktail_assets.db.change_log import PendingChanges, pending_changes, settle
from cocktail_assets.environments import Settings
from cocktail_assets.errors import ConfigError, DatabaseUnavailable
from cocktail_assets.refresh.jobs import JOB_NAME
from cocktail_assets.refresh.liveness import fail_dead_runs
from cocktail_assets.refresh.policy import Decision, Policy, RunHistory, decide
from cocktail_assets.refresh.settle import (
    downstream_of_tables,
    settle_run,
    settle_unsettled_runs,
)
from cocktail_assets.resources.database import CocktailDatabase
from cocktail_assets.tags import (
    CHANGE_SNAPSHOT_TAG,
    LOCK_TAG,
    REFRESH_TAG,
    SETTLED_TAG,
    TRIGGER_TAG,
)

REFRESH_SENSOR_NAME = "refresh_sensor"
SETTLE_SENSOR_NAME = "settle_on_success"

# Queued, launching, running or being canceled: the run may still read and write analytics.
# NOT_STARTED is left out: the daemon launches a created run only when its run key is
# requested again, so skipping on it could wait forever.
ACTIVE_STATUSES = [
    dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]
FINISHED_STATUSES = [
    dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED,
]
# How many finished refresh runs to read to count a failure streak (the backoff is capped
# well before this many failures).
_HISTORY_LIMIT = 20


@dataclass(frozen=True)
class TickCursor:
    """Backoff bookkeeping: the failed run the sensor last saw and when (database clock)."""

    failed_run: str | None = None
    seen_at: datetime | None = None

    @classmethod
    def parse(cls, raw: str | None) -> TickCursor:
        """A missing or unreadable cursor is an empty one: correctness never depends on it."""
        try:
            data = json.loads(raw or "{}")
            seen = data.get("seen_at")
            return cls(data.get("failed_run"), datetime.fromisoformat(seen) if seen else None)
        except (ValueError, TypeError, AttributeError):
            return cls()

    def dump(self) -> str:
        return json.dumps({
            "failed_run": self.failed_run,
            "seen_at": self.seen_at.isoformat() if self.seen_at else None,
        })


def read_history(
    instance: dg.DagsterInstance, cursor: TickCursor, now: datetime
) -> tuple[RunHistory, TickCursor]:
    """The refresh runs' state from the instance (two small run-storage queries)."""
    refresh = {REFRESH_TAG: "true"}
    # Refresh runs, and any other run holding or waiting for the analytics lock (a UI
    # materialization of Dagster's own asset job carries no refresh tag).
    active = instance.get_runs(
        dg.RunsFilter(tags=refresh, statuses=ACTIVE_STATUSES), limit=1
    ) or instance.get_runs(dg.RunsFilter(tags={LOCK_TAG: "true"}, statuses=ACTIVE_STATUSES),
                           limit=1)
    finished = list(
        instance.get_runs(
            dg.RunsFilter(tags=refresh, statuses=FINISHED_STATUSES), limit=_HISTORY_LIMIT
        )
    )
    failures = 0
    for run in finished:  # newest first
        if run.status == dg.DagsterRunStatus.SUCCESS:
            break
        failures += 1
    last_failed = finished[0].run_id if failures else None
    if last_failed is None:
        new_cursor = TickCursor()
    elif cursor.failed_run == last_failed and cursor.seen_at is not None:
        new_cursor = cursor
    else:
        new_cursor = TickCursor(last_failed, now)
    history = RunHistory(
        in_progress_run=active[0].run_id if active else None,
        in_progress_status=active[0].status.value if active else None,
        consecutive_failures=failures,
        last_failed_run=last_failed,
        failure_seen_at=new_cursor.seen_at,
        last_finished_run=finished[0].run_id if finished else None,
    )
    return history, new_cursor


def run_selection(
    tables: Collection[str],
    downstream: Mapping[str, set[dg.AssetKey]],
    graph: BaseAssetGraph,
    instance: dg.DagsterInstance,
) -> list[dg.AssetKey]:
    """The assets downstream of ``tables``, plus any upstream asset never materialized yet
    (a first subset run would otherwise fail to load its inputs)."""
    keys: set[dg.AssetKey] = set().union(*(downstream[t] for t in tables))
    todo = list(keys)
    while todo:
        for parent in graph.get(todo.pop()).parent_keys:
            if parent in keys or not graph.has(parent) or not graph.get(parent).is_materializable:
                continue
            if instance.get_latest_materialization_event(parent) is None:
                keys.add(parent)
                todo.append(parent)
    return sorted(keys, key=lambda k: k.to_user_string())


def _graph(context: dg.SensorEvaluationContext | dg.RunStatusSensorContext) -> BaseAssetGraph:
    """The asset graph of the code location the sensor was loaded with."""
    repo = context.repository_def
    if repo is None:
        raise RuntimeError("the refresh sensors need their code location (repository_def)")
    return repo.asset_graph


def database_error(database: CocktailDatabase, exc: psycopg.Error) -> Exception:
    """One line naming the database, instead of psycopg's multi-line internals."""
    lines = str(exc).strip().splitlines()
    first = lines[0] if lines else type(exc).__name__
    where = database.describe()
    if isinstance(exc, psycopg.errors.UndefinedTable | psycopg.errors.UndefinedFunction):
        return ConfigError(
            f"change tracking missing in database {where} ({first}): run `cocktail-assets migrate`"
        )
    return DatabaseUnavailable(f"database {where} failed during the refresh tick: {first}")


@dataclass(frozen=True)
class Evaluation:
    """One look at the state: what is pending, what the runs are doing, and the verdict."""

    pending: PendingChanges
    history: RunHistory
    decision: Decision
    cursor: TickCursor


def evaluate(
    instance: dg.DagsterInstance,
    conn: psycopg.Connection,
    graph: BaseAssetGraph,
    policy: Policy,
    cursor: TickCursor,
) -> Evaluation:
    """Read the pending changes (one query) and the run history, and decide; no side effects."""
    pending = pending_changes(conn)
    history, new_cursor = read_history(instance, cursor, pending.now)
    with_assets = {t for t, down in downstream_of_tables(graph).items() if down}
    return Evaluation(pending, history, decide(pending, with_assets, history, policy), new_cursor)


def refresh_tick(
    context: dg.SensorEvaluationContext, database: CocktailDatabase, policy: Policy
) -> dg.SensorResult:
    """One tick of the refresh sensor: settle what finished, then request a run or say why not."""
    instance = context.instance
    graph = _graph(context)
    downstream = downstream_of_tables(graph)
    try:
        for run_id, rows in settle_unsettled_runs(instance, database, graph).items():
            context.log.info(f"settled {rows} change(s) covered by run {run_id}")
        with database.connect(autocommit=True) as conn:
            for _run_id, message in fail_dead_runs(instance, conn, database.describe()):
                context.log.warning(message)
            ev = evaluate(instance, conn, graph, policy, TickCursor.parse(context.cursor))
            if ev.decision.settle_tables:
                settle(conn, ev.pending.snapshot, ev.decision.settle_tables)
    except psycopg.Error as exc:
        raise database_error(database, exc) from None
    decision = ev.decision
    cursor = ev.cursor.dump()
    if not decision.request or decision.run_key is None:
        return dg.SensorResult(skip_reason=dg.SkipReason(decision.reason), cursor=cursor)

    existing = instance.get_runs(dg.RunsFilter(tags={RUN_KEY_TAG: decision.run_key}), limit=1)
    if existing and existing[0].status != dg.DagsterRunStatus.NOT_STARTED:
        run = existing[0]
        return dg.SensorResult(
            skip_reason=dg.SkipReason(
                f"run {run.run_id} ({run.status.value}) already covers change point "
                f"{decision.run_key}. {decision.reason}"
            ),
            cursor=cursor,
        )
    context.log.info(decision.reason)
    request = dg.RunRequest(
        run_key=decision.run_key,
        asset_selection=run_selection(decision.run_tables, downstream, graph, instance),
        tags={
            REFRESH_TAG: "true",
            TRIGGER_TAG: "sensor",
            CHANGE_SNAPSHOT_TAG: ev.pending.snapshot,
        },
    )
    return dg.SensorResult(run_requests=[request], cursor=cursor)


def build_refresh_sensor(settings: Settings) -> dg.SensorDefinition:
    """The debounced refresh sensor, timed by ``settings``."""
    policy = Policy.from_minutes(settings.debounce_minutes, settings.max_wait_minutes)

    @dg.sensor(
        name=REFRESH_SENSOR_NAME,
        job_name=JOB_NAME,
        minimum_interval_seconds=max(1, settings.sensor_interval_seconds),
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            f"Refreshes the analytics downstream of changed site tables once no edit has arrived "
            f"for {settings.debounce_minutes:g} min, or once the oldest pending edit is "
            f"{settings.max_wait_minutes:g} min old; one run at a time, retried with backoff."
        ),
    )
    def refresh_sensor(
        context: dg.SensorEvaluationContext, database: CocktailDatabase
    ) -> dg.SensorResult:
        return refresh_tick(context, database, policy)

    return refresh_sensor


def build_settle_sensor(settings: Settings) -> dg.SensorDefinition:
    """Settle a successful run's edits as soon as the daemon sees it succeed."""

    @dg.run_status_sensor(
        run_status=dg.DagsterRunStatus.SUCCESS,
        name=SETTLE_SENSOR_NAME,
        minimum_interval_seconds=max(1, settings.sensor_interval_seconds),
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Marks the site edits a successful run covered as refreshed.",
    )
    def settle_on_success(context: dg.RunStatusSensorContext, database: CocktailDatabase) -> None:
        run = context.dagster_run
        if CHANGE_SNAPSHOT_TAG not in run.tags or SETTLED_TAG in run.tags:
            return
        try:
            rows = settle_run(context.instance, run.run_id, database, _graph(context))
        except psycopg.Error as exc:
            raise database_error(database, exc) from None
        context.log.info(f"settled {rows} change(s) covered by run {run.run_id}")

    return settle_on_success


def refresh_sensors(settings: Settings) -> list[dg.SensorDefinition]:
    """The refresh domain's sensors, for ``definitions.py``."""
    return [build_refresh_sensor(settings), build_settle_sensor(settings)]
