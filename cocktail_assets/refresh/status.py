"""``cocktail-assets status``: what the refresh sensor sees and would do, and how each
published asset stands, for a person and for a monitor.

It runs the sensor's own evaluation (``sensors.evaluate``) without its side effects, so the
verdict printed here is the one the next tick would reach, with the same numbers. One
exception, on purpose: like the sensor, it first reports failed any run whose process died
(``liveness.py``), so a dead run never shows as in progress, with or without the daemon. Then,
per published asset: its last materialization (when, rows, URI), the latest completed
evaluation of each of its checks, and whether it has fallen behind. The exit status is 1 when
an ERROR check failed on its latest evaluation or a published asset is behind (FAIL), 0
otherwise.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime

import dagster as dg
import psycopg

from cocktail_assets.checks import PUBLISHED_TAG
from cocktail_assets.dagster_private import (
    AssetCheckExecutionRecordStatus,
    BaseAssetGraph,
    InstigatorType,
)
from cocktail_assets.db.change_log import PendingChanges
from cocktail_assets.environments import Settings, database_resource, open_instance_environment
from cocktail_assets.refresh.causes import failure_cause
from cocktail_assets.refresh.liveness import fail_dead_runs
from cocktail_assets.refresh.policy import Policy, format_duration
from cocktail_assets.refresh.sensors import (
    FINISHED_STATUSES,
    REFRESH_SENSOR_NAME,
    TickCursor,
    database_error,
    evaluate,
    run_selection,
)
from cocktail_assets.refresh.settle import downstream_of_tables
from cocktail_assets.resources.database import CocktailDatabase
from cocktail_assets.tags import REFRESH_TAG, TRIGGER_TAG


def _time(value: datetime | float | None) -> str:
    if value is None:
        return "-"
    if isinstance(value, float | int):
        value = datetime.fromtimestamp(value, UTC).replace(tzinfo=None)
    return value.strftime("%Y-%m-%d %H:%M:%S")


def _sensor_state(instance: dg.DagsterInstance) -> tuple[str | None, list[str]]:
    """The refresh sensor's stored cursor and a line about its state and last tick."""
    states = [
        s for s in instance.all_instigator_state(instigator_type=InstigatorType.SENSOR)
        if s.name == REFRESH_SENSOR_NAME
    ]
    if not states:
        return None, ["sensor: no tick recorded yet (is the Dagster daemon running?)"]
    state = states[0]
    data = state.instigator_data
    cursor = getattr(data, "cursor", None)
    lines = [f"sensor: {state.status.value.lower()}"]
    ticks = instance.get_ticks(state.instigator_origin_id, state.selector_id, limit=1)
    if ticks:
        tick = ticks[0]
        detail = tick.skip_reason or (
            tick.error.message.strip().splitlines()[0] if tick.error else ""
        ) or ", ".join(tick.run_keys)
        lines.append(
            f"last tick: {_time(tick.timestamp)} UTC {tick.status.value.lower()}"
            + (f": {detail}" if detail else "")
        )
    return cursor, lines


COMPLETED = {AssetCheckExecutionRecordStatus.SUCCEEDED, AssetCheckExecutionRecordStatus.FAILED}


def published_keys(graph: BaseAssetGraph) -> list[dg.AssetKey]:
    """The assets the site reads, found by their tag (``checks.PUBLISHED_TAG``)."""
    return sorted(
        (k for k in graph.get_all_asset_keys()
         if graph.get(k).is_materializable and graph.get(k).tags.get(PUBLISHED_TAG) == "true"),
        key=lambda k: k.to_user_string(),
    )


def checked_intermediates(graph: BaseAssetGraph) -> list[dg.AssetKey]:
    """Unpublished assets with checks (catalog/recipe_volumes): a failure there stops all
    that reads them, so status reports it too."""
    published = set(published_keys(graph))
    return sorted(
        (k for k in graph.get_all_asset_keys()
         if graph.get(k).is_materializable and graph.get(k).check_keys and k not in published),
        key=lambda k: k.to_user_string(),
    )


def _last_check(instance: dg.DagsterInstance, key: dg.AssetCheckKey) -> tuple[str, bool]:
    """A check's latest completed evaluation as text, and whether it is a failed ERROR."""
    records = instance.event_log_storage.get_asset_check_execution_history(
        key, limit=1, status=COMPLETED
    )
    if not records or records[0].event is None or records[0].event.dagster_event is None:
        return f"{key.name} not evaluated yet", False
    evaluation = records[0].event.dagster_event.event_specific_data
    if evaluation.passed:
        return f"{key.name} passed", False
    severity = evaluation.severity.value
    detail = f": {evaluation.description}" if evaluation.description else ""
    return (
        f"{key.name} FAILED ({severity}, run {records[0].run_id[:8]}){detail}",
        evaluation.severity == dg.AssetCheckSeverity.ERROR,
    )


def _behind(
    key: dg.AssetKey, pending: PendingChanges, upstream: dict[str, set[dg.AssetKey]],
    policy: Policy,
) -> tuple[str, str]:
    """('PASS' | 'WARN' | 'FAIL', why): how long an edit ``key`` must reflect has waited.

    Measured from the oldest pending edit of a table the asset reads (database clock), not from
    the last materialization: a site nobody edits is not behind.
    """
    fail, warn = policy.freshness_windows
    waiting = [(pending.now - t.first_changed_at, t.table) for t in pending.tables
               if key in upstream.get(t.table, set())]
    if not waiting:
        return "PASS", "no pending edit it reads"
    age, table = max(waiting)
    why = f"{table} edit pending for {format_duration(age)}"
    if age >= fail:
        return "FAIL", why
    if warn is not None and age >= warn:
        return "WARN", why
    return "PASS", why


def published_report(
    instance: dg.DagsterInstance, graph: BaseAssetGraph, pending: PendingChanges, policy: Policy
) -> tuple[list[str], list[str]]:
    """Lines about each published asset, and the problems that make ``status`` exit 1."""
    fail, warn = policy.freshness_windows
    upstream = downstream_of_tables(graph)
    lines = [
        "published assets (behind: WARN after "
        f"{format_duration(warn) if warn else '-'}, FAIL after {format_duration(fail)} "
        "of a pending edit; then the checked intermediates):"
    ]
    problems: list[str] = []
    intermediates = checked_intermediates(graph)
    for key in [*published_keys(graph), *intermediates]:
        name = key.to_user_string()
        entry = instance.get_latest_materialization_event(key)
        if entry is None or entry.asset_materialization is None:
            lines.append(f"  {name}: never materialized")
        else:
            meta = {k: getattr(v, "value", v) for k, v in
                    entry.asset_materialization.metadata.items()}
            lines.append(
                f"  {name}: materialized {_time(entry.timestamp)} UTC, "
                f"{meta.get('dagster/row_count', '?')} rows, {meta.get('dagster/uri', '-')}"
            )
        checks = [_last_check(instance, c) for c in
                  sorted(graph.get(key).check_keys, key=lambda c: c.name)]
        if checks:
            lines.append("    checks: " + "; ".join(text for text, _ in checks))
        problems += [f"{name} check {text.split()[0]} failed" for text, bad in checks if bad]
        if key in intermediates:
            continue
        state, why = _behind(key, pending, upstream, policy)
        lines.append(f"    freshness: {state} ({why})")
        if state == "FAIL":
            problems.append(f"{name} is behind ({why})")
    lines.append(
        "monitoring: OK" if not problems else f"monitoring: FAILING: {'; '.join(problems)}"
    )
    return lines, problems


def status_lines(
    instance: dg.DagsterInstance,
    database: CocktailDatabase,
    graph: BaseAssetGraph,
    policy: Policy,
    sensor_interval_seconds: int,
) -> list[str]:
    """The status report, line by line (times are UTC, on the database's clock)."""
    return status_report(instance, database, graph, policy, sensor_interval_seconds)[0]


def status_report(
    instance: dg.DagsterInstance,
    database: CocktailDatabase,
    graph: BaseAssetGraph,
    policy: Policy,
    sensor_interval_seconds: int,
) -> tuple[list[str], int]:
    """The status report, line by line, and its exit status (1: a failed ERROR check or a
    published asset behind; 0 otherwise)."""
    cursor, sensor_lines = _sensor_state(instance)
    try:
        with database.connect(autocommit=True) as conn:
            dead = fail_dead_runs(instance, conn, database.describe())
            ev = evaluate(instance, conn, graph, policy, TickCursor.parse(cursor))
    except psycopg.Error as exc:
        raise database_error(database, exc) from None
    pending, history, decision = ev.pending, ev.history, ev.decision
    lines = [f"marked failed: {message}" for _run_id, message in dead] + [
        f"database {database.describe()}, its clock {_time(pending.now)} UTC",
        f"debounce {format_duration(policy.debounce)}, max wait "
        f"{format_duration(policy.max_wait)}, sensor every {sensor_interval_seconds}s",
    ]
    if pending.tables:
        width = max(len("table"), *(len(t.table) for t in pending.tables))
        lines.append("pending changes:")
        lines.append(f"  {'table'.ljust(width)}  changes  oldest               newest")
        for t in pending.tables:
            note = "  (no asset reads it: settled by the next tick)" if (
                t.table in decision.settle_tables
            ) else ""
            lines.append(
                f"  {t.table.ljust(width)}  {t.changes:>7}  {_time(t.first_changed_at)}  "
                f"{_time(t.last_changed_at)}{note}"
            )
    else:
        lines.append("pending changes: none")
    if decision.quiet_left is not None and decision.max_wait_left is not None:
        lines.append(
            f"quiet time left: {format_duration(decision.quiet_left)}; "
            f"max-wait time left: {format_duration(decision.max_wait_left)}"
        )
    if history.in_progress_run:
        lines.append(
            f"refresh run in progress: {history.in_progress_run} ({history.in_progress_status})"
        )
    else:
        lines.append("refresh run in progress: none")
    records = instance.get_run_records(
        dg.RunsFilter(tags={REFRESH_TAG: "true"}, statuses=FINISHED_STATUSES), limit=1
    )
    if records:
        record = records[0]
        run = record.dagster_run
        lines.append(
            f"last refresh run: {run.run_id} {run.status.value}, ended {_time(record.end_time)} "
            f"UTC, trigger {run.tags.get(TRIGGER_TAG, 'ui')}"
        )
        cause = failure_cause(instance, run.run_id) if run.status != dg.DagsterRunStatus.SUCCESS \
            else None
        if cause is not None:
            step = f" (step {cause.step})" if cause.step else ""
            lines.append(f"  cause{step}: {cause.message}")
    else:
        lines.append("last refresh run: none")
    if history.consecutive_failures:
        lines.append(f"consecutive failed refresh runs: {history.consecutive_failures}")
    lines.extend(sensor_lines)
    if decision.request:
        downstream = downstream_of_tables(graph)
        keys = run_selection(decision.run_tables, downstream, graph, instance)
        lines.append(
            f"the sensor would now request a run (key {decision.run_key}) of "
            f"{', '.join(k.to_user_string() for k in keys)}: {decision.reason}"
        )
    else:
        lines.append(f"the sensor would now skip: {decision.reason}")
    published, problems = published_report(instance, graph, pending, policy)
    return lines + published, 1 if problems else 0


def print_status(
    settings: Settings, graph: BaseAssetGraph, out: Callable[[str], None] = print
) -> int:
    """Print what the refresh sensor sees and would do and how the published assets stand
    (``cocktail-assets status``); returns the exit status. ``graph`` is the code location's
    asset graph."""
    os.environ.update(open_instance_environment(settings))
    policy = Policy.from_minutes(settings.debounce_minutes, settings.max_wait_minutes)
    database = database_resource(settings, for_dagster=False)
    with dg.DagsterInstance.get() as instance:
        lines, code = status_report(
            instance, database, graph, policy, settings.sensor_interval_seconds
        )
    for line in lines:
        out(line)
    return code
