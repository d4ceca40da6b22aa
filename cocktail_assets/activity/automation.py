"""The activity job, its nightly schedule and the late-edit sensor.

The schedule materializes yesterday's partition at 02:00 UTC (and refreshes the 30-day
summary). The sensor turns the days recorded by the triggers of migrations 003-004 into runs of
exactly those partitions: once no edit of a day has arrived for the debounce time (or its
oldest edit is max-wait old), never while a run of that day is in progress, contiguous days
batched like a backfill. Today's rows are never recorded, so they wait for the nightly run.

Until then the UI shows each such day of ``activity/daily`` as stale: the sensor records an
observation of ``activity/late_edits`` for each day whose version (its newest pending edit id)
it has not recorded yet (``late_edits.py``), and only those, so a tick records nothing when
nothing moved. A day's new version waits while a run of that day is in progress: the run's
input pointer was taken when its step started, and an edit its snapshot then covered must not
be recorded after that pointer (the day would be marked stale after a run that covered it).
"""


import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import dagster as dg
import psycopg

from cocktail_assets.activity.assets import DAILY_KEY, SUMMARY_KEY
from cocktail_assets.activity.late_edits import (
    PendingDay,
    baseline,
    needs_baseline,
    observation,
    partition_days,
    read_pending,
)
from cocktail_assets.dagster_private import (
    PARTITION_NAME_TAG,
    RANGE_END_TAG,
    RANGE_START_TAG,
    RUN_KEY_TAG,
    AssetJob,
)
from cocktail_assets.errors import DatabaseUnavailable
from cocktail_assets.resources.database import CocktailDatabase
from cocktail_assets.tags import ACTIVITY_TAG, TRIGGER_TAG

JOB_NAME = "activity_daily"
SCHEDULE_NAME = "activity_nightly"
SENSOR_NAME = "activity_late_edits"
IN_PROGRESS = [
    dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING,
]


def build_job(partitions: dg.DailyPartitionsDefinition) -> AssetJob:
    return dg.define_asset_job(
        JOB_NAME,
        selection=dg.AssetSelection.assets(DAILY_KEY, SUMMARY_KEY),
        # The code location's default executor: in-process, under the analytics lock, so an
        # activity run never writes the store alongside a refresh.
        tags={ACTIVITY_TAG: "true"},
        description="Aggregate and publish one UTC day of activity, then the 30-day summary.",
    )


def build_schedule(job: AssetJob) -> dg.ScheduleDefinition:
    """02:00 UTC each day: the partition of the day that just ended (yesterday)."""
    return dg.build_schedule_from_partitioned_job(
        job, name=SCHEDULE_NAME, hour_of_day=2, minute_of_hour=0,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        tags={TRIGGER_TAG: "schedule"},
        description="Materializes yesterday's activity partition at 02:00 UTC.",
    )


def _days(first: str, last: str) -> list[str]:
    a, b = date.fromisoformat(first), date.fromisoformat(last)
    return [(a + timedelta(days=i)).isoformat() for i in range((b - a).days + 1)]


def days_in_progress(instance: dg.DagsterInstance) -> set[str]:
    """Days of activity/daily that a queued or running run (any job, backfills too) covers."""
    busy: set[str] = set()
    for run in instance.get_runs(dg.RunsFilter(statuses=IN_PROGRESS)):
        if run.asset_selection is not None and DAILY_KEY not in run.asset_selection:
            continue
        tags = run.tags
        if tags.get(PARTITION_NAME_TAG):
            busy.add(tags[PARTITION_NAME_TAG])
        elif tags.get(RANGE_START_TAG) and tags.get(RANGE_END_TAG):
            busy.update(_days(tags[RANGE_START_TAG], tags[RANGE_END_TAG]))
    return busy


def contiguous_batches(days: Iterable[date], limit: int) -> list[list[date]]:
    """Consecutive days grouped, at most ``limit`` per group: exactly the given days."""
    batches: list[list[date]] = []
    for day in sorted(days):
        if batches and day - batches[-1][-1] == timedelta(days=1) and len(batches[-1]) < limit:
            batches[-1].append(day)
        else:
            batches.append([day])
    return batches


@dataclass(frozen=True)
class LateEditDecision:
    requests: list[dg.RunRequest]
    reasons: list[str]


def decide_late_edits(
    pending: Sequence[PendingDay], now: datetime, first_day: date, busy: set[str],
    debounce: timedelta, max_wait: timedelta, days_per_run: int,
) -> LateEditDecision:
    """Which pending days to run now, in which batches, and why the others wait."""
    ready: list[PendingDay] = []
    reasons: list[str] = []
    today = now.date()
    for p in pending:
        key = p.day.isoformat()
        if p.day < first_day or p.day >= today:
            continue  # not a partition (yet): nothing to re-aggregate
        if key in busy:
            reasons.append(f"{key}: a run of this day is in progress")
        elif now - p.newest_at >= debounce or now - p.oldest_at >= max_wait:
            ready.append(p)
        else:
            left = debounce - (now - p.newest_at)
            reasons.append(
                f"{key}: {p.changes} change(s), debouncing ({int(left.total_seconds())} s left)"
            )
    by_day = {p.day: p for p in ready}
    requests = []
    for batch in contiguous_batches(by_day, days_per_run):
        first, last = batch[0].isoformat(), batch[-1].isoformat()
        newest = max(by_day[d].newest_id for d in batch)
        tags = {ACTIVITY_TAG: "true", TRIGGER_TAG: "late-edit-sensor"}
        run_key = f"late-edits:{first}..{last}:{newest}"
        if len(batch) == 1:
            requests.append(dg.RunRequest(run_key=run_key, partition_key=first, tags=tags,
                                          asset_selection=[DAILY_KEY]))
        else:
            requests.append(dg.RunRequest(
                run_key=run_key, asset_selection=[DAILY_KEY],
                tags={**tags, RANGE_START_TAG: first, RANGE_END_TAG: last},
            ))
        reasons.append(f"{first}..{last}: re-aggregating {sum(by_day[d].changes for d in batch)} "
                       f"late change(s)")
    return LateEditDecision(requests, reasons)


def versions_to_observe(
    pending: Sequence[PendingDay], first_day: date, today: date, busy: set[str],
    reported: Mapping[str, str],
) -> tuple[list[PendingDay], dict[str, str]]:
    """The days whose version to record now, and the versions recorded so far of the days
    still pending (the next cursor; a settled day drops out, so its next edit is new again).

    A day is recorded when its version differs from the one recorded last (a newer edit, or an
    older one left pending by a run that covered the newest), unless a run of it is in
    progress; then it keeps its last recorded version until the run has ended.
    """
    due: list[PendingDay] = []
    recorded: dict[str, str] = {}
    for p in partition_days(pending, first_day, today):
        last = reported.get(p.key)
        if last == p.version:
            recorded[p.key] = last
        elif p.key in busy:
            if last is not None:
                recorded[p.key] = last
        else:
            due.append(p)
            recorded[p.key] = p.version
    return due, recorded


def build_late_edit_sensor(
    job: AssetJob, first_day: str, debounce_minutes: float,
    max_wait_minutes: float, days_per_run: int, interval_seconds: int,
) -> dg.SensorDefinition:
    debounce, max_wait = timedelta(minutes=debounce_minutes), timedelta(minutes=max_wait_minutes)
    start = date.fromisoformat(first_day)

    @dg.sensor(
        name=SENSOR_NAME,
        job=job,
        minimum_interval_seconds=max(1, interval_seconds),
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            f"Re-aggregates the past days a site edit touched, once that day has had no edit for "
            f"{debounce_minutes:g} min (or its oldest is {max_wait_minutes:g} min old); never "
            f"while a run of the same day is in progress. Today's rows wait for the nightly run."
        ),
    )
    def activity_late_edits(
        context: dg.SensorEvaluationContext, database: CocktailDatabase
    ) -> dg.SensorResult:
        try:
            with database.connect(autocommit=True) as conn:
                pending, now = read_pending(conn)
        except psycopg.Error as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise DatabaseUnavailable(
                f"database {database.describe()} failed during the late-edit tick: {first}"
            ) from None
        busy = days_in_progress(context.instance)
        decision = decide_late_edits(
            pending, now, start, busy, debounce, max_wait, days_per_run,
        )
        requests = [r for r in decision.requests
                    if not context.instance.get_runs(
                        dg.RunsFilter(tags={RUN_KEY_TAG: r.run_key or ""}), limit=1)]
        # Each day's new version, so that day of activity/daily shows as stale until it is
        # re-materialized (the daemon records these before it submits this tick's runs).
        reported = json.loads(context.cursor or "{}").get("reported", {})
        due, recorded = versions_to_observe(pending, start, now.date(), busy, reported)
        events = [observation(p) for p in due]
        if needs_baseline(context.instance, events, start, now.date()):
            events.append(baseline(start))
        cursor = json.dumps({"reported": recorded}, sort_keys=True)
        if not requests:
            reason = "; ".join(decision.reasons) or "no late edits of past days"
            return dg.SensorResult(skip_reason=dg.SkipReason(reason), cursor=cursor,
                                   asset_events=events)
        for line in decision.reasons:
            context.log.info(line)
        return dg.SensorResult(run_requests=requests, cursor=cursor, asset_events=events)

    return activity_late_edits
