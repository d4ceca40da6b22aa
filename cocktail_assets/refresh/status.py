"""``cocktail-assets status``: what the refresh sensor sees and would do, for a person.

It runs the sensor's own evaluation (``sensors.evaluate``) without its side effects, so the
verdict printed here is the one the next tick would reach, with the same numbers. One
exception, on purpose: like the sensor, it first reports failed any run whose process died
(``liveness.py``), so a dead run never shows as in progress, with or without the daemon.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime

import dagster as dg
import psycopg

from cocktail_assets.dagster_private import BaseAssetGraph, InstigatorType
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


def status_lines(
    instance: dg.DagsterInstance,
    database: CocktailDatabase,
    graph: BaseAssetGraph,
    policy: Policy,
    sensor_interval_seconds: int,
) -> list[str]:
    """The status report, line by line (times are UTC, on the database's clock)."""
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
    return lines


def print_status(
    settings: Settings, graph: BaseAssetGraph, out: Callable[[str], None] = print
) -> None:
    """Print what the refresh sensor sees and would do (``cocktail-assets status``); ``graph``
    is the code location's asset graph."""
    os.environ.update(open_instance_environment(settings))
    policy = Policy.from_minutes(settings.debounce_minutes, settings.max_wait_minutes)
    database = database_resource(settings, for_dagster=False)
    with dg.DagsterInstance.get() as instance:
        for line in status_lines(
            instance, database, graph, policy, settings.sensor_interval_seconds
        ):
            out(line)
