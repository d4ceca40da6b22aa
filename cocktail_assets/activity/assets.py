"""The activity domain's assets: one UTC day per partition, and the last-30-days summary.

``activity/daily`` reads the site tables directly in one snapshot, not through the ``site/*``
source assets: those are versioned by the analytics change log, whose edits the refresh sensor
turns into runs of the analytics job; activity is kept fresh per day instead (the nightly
schedule, backfills, and the late-edit sensor fed by the per-day triggers, migrations 003-004).
Its one dependency is ``activity/late_edits`` (``late_edits.py``), day by day: a late-edited
day is stale in Dagster's terms until it is re-materialized.
"""


import json
import time
import warnings
from datetime import UTC, date, datetime, timedelta
from typing import Any

import dagster as dg

from cocktail_assets.activity import queries
from cocktail_assets.activity.cloudwatch import ActivityMetrics
from cocktail_assets.activity.compute import (
    DayActivity,
    count_problems,
    last_complete_days,
    summary_document,
)
from cocktail_assets.errors import StoreError
from cocktail_assets.resources.database import CocktailDatabase
from cocktail_assets.resources.store import AnalyticsStore, envelope

GROUP = "activity"
DAILY_KEY = dg.AssetKey(["activity", "daily"])
SUMMARY_KEY = dg.AssetKey(["activity", "last_30_days"])
LATE_EDITS_KEY = dg.AssetKey(["activity", "late_edits"])
SUMMARY_ARTIFACT = "activity-summary"
CHECK_COUNTS = "counts_consistent"
CHECK_DAY = "artifact_day_matches_partition"


def artifact_name(day: str) -> str:
    """Store name of a day's artifact: ``<prefix>/v1/activity/YYYY-MM-DD.json``."""
    return f"activity/{day}.json"


def partitions_for(start_date: str) -> dg.DailyPartitionsDefinition:
    """UTC days from ``start_date``; the newest partition is yesterday (complete days only)."""
    return dg.DailyPartitionsDefinition(start_date=start_date, timezone="UTC")


def aggregate_days(
    database: CocktailDatabase, start: date, end: date
) -> tuple[list[DayActivity], str]:
    """Every day of [start, end) in one query and one REPEATABLE READ snapshot, and that
    snapshot (to settle exactly the late edits it saw)."""
    with database.snapshot() as conn:
        row = conn.execute(queries.CURRENT_SNAPSHOT).fetchone()
        rows = conn.execute(queries.DAILY_ACTIVITY, {"start": start, "end": end}).fetchall()
    return [DayActivity.from_row(r) for r in rows], str(row[0] if row else "")


def publish_day(store: AnalyticsStore, day: DayActivity) -> str:
    """Write a day's artifact atomically (replacing any previous one); returns its URI."""
    body = json.dumps(envelope("activity", day.document()), ensure_ascii=False).encode("utf-8")
    return store.put_bytes(artifact_name(day.key), body, "application/json")


def read_day(store: AnalyticsStore, day: str) -> dict[str, Any] | None:
    """A day's published data, or None when it has no artifact."""
    try:
        return json.loads(store.get_bytes(artifact_name(day)))["data"]
    except StoreError:
        return None


def settle_days(database: CocktailDatabase, start: date, end: date, snapshot: str) -> int:
    """Forget the late edits of [start, end) that the aggregation's snapshot saw."""
    with database.connect(autocommit=True) as conn:
        cur = conn.execute(
            queries.SETTLE_DAYS, {"start": start, "end": end, "snapshot": snapshot}
        )
        return cur.rowcount


def build_daily_asset(
    partitions: dg.DailyPartitionsDefinition, days_per_run: int
) -> dg.AssetsDefinition:
    # backfill_policy is marked beta; we rely on it knowingly (runs of at most days_per_run
    # days), and its notice would otherwise repeat in every process that loads the code
    # location.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.BetaWarning)
        as_asset = dg.asset(
            key=DAILY_KEY,
            group_name=GROUP,
            partitions_def=partitions,
            # Day D reads the late edits of day D (a data-free dependency): Dagster marks the
            # day stale when activity/late_edits has a new version for it.
            deps=[dg.AssetDep(LATE_EDITS_KEY, partition_mapping=dg.IdentityPartitionMapping())],
            backfill_policy=dg.BackfillPolicy.multi_run(max_partitions_per_run=days_per_run),
            kinds={"postgres", "s3"},
            description=(
                "One UTC day of site activity: recipes, ingredients, ratings, pantry (inventory) "
                "additions and tags created that day, and the distinct users who did any of it "
                "(each once). Ratings without created_at (from before it was recorded) are not "
                "counted. Published as activity/YYYY-MM-DD.json and as CloudWatch metrics (days "
                "up to two weeks old). A run aggregates a batch of days in one query."
            ),
            check_specs=[
                dg.AssetCheckSpec(
                    CHECK_COUNTS, asset=DAILY_KEY, blocking=True,
                    description="Counts are non-negative; active_users lies between the largest "
                    "per-kind user count and their sum.",
                ),
                dg.AssetCheckSpec(
                    CHECK_DAY, asset=DAILY_KEY, blocking=True,
                    description="Each published artifact's day equals its partition key.",
                ),
            ],
        )

    @as_asset
    def daily(
        context: dg.AssetExecutionContext,
        database: CocktailDatabase,
        store: AnalyticsStore,
        activity_metrics: ActivityMetrics,
    ) -> dg.MaterializeResult:
        started = time.perf_counter()
        window = context.partition_time_window
        start, end = window.start.date(), window.end.date()
        keys = list(context.partition_keys)
        context.log.info(f"activity: aggregating {len(keys)} day(s) {keys[0]}..{keys[-1]}")
        days, snapshot = aggregate_days(database, start, end)
        problems = [p for d in days for p in count_problems(d)]
        if problems:  # publish nothing that fails its checks
            context.log.error(f"activity: {len(problems)} inconsistent count(s): {problems[0]}")
            return dg.MaterializeResult(
                metadata={"published": False, "problems": problems[:20]},
                check_results=[
                    dg.AssetCheckResult(check_name=CHECK_COUNTS, passed=False,
                                        metadata={"problems": problems[:20]}),
                    dg.AssetCheckResult(check_name=CHECK_DAY, passed=False,
                                        metadata={"reason": "nothing published"}),
                ],
            )
        uris = []
        for i, day in enumerate(days, 1):
            uris.append(publish_day(store, day))
            counts = ", ".join(f"{k} {v}" for k, v in day.document().items()
                               if isinstance(v, int))
            context.log.info(f"activity: day {day.key} ({i} of {len(days)}) published: {counts}")
        wrong_day = [k for k in keys if (read_day(store, k) or {}).get("day") != k]
        metrics = activity_metrics.publish(days, datetime.now(UTC))
        note = metrics.note()
        if note:
            context.log.info(f"activity: {note}")
        settled = settle_days(database, start, end, snapshot) if not wrong_day else 0
        per_day = {d.key: d.document() for d in days}
        metadata: dict[str, Any] = {
            "rows": len(days),
            "days": f"{keys[0]}..{keys[-1]}" if len(keys) > 1 else keys[0],
            "uri": dg.MetadataValue.url(uris[0] if len(uris) == 1 else store.uri("activity/")),
            "metrics_sent_days": len(metrics.sent_days),
            "metrics_datapoints": metrics.datapoints,
            "metrics_calls": metrics.calls,
            "metrics_throttling_retries": metrics.retries,
            "late_edits_settled": settled,
            "duration_s": round(time.perf_counter() - started, 3),
            "activity": dg.MetadataValue.json(per_day if len(days) <= 31 else {
                "first": per_day[days[0].key], "last": per_day[days[-1].key]}),
        }
        if note:
            metadata["metrics_note"] = note
        return dg.MaterializeResult(
            metadata=metadata,
            check_results=[
                dg.AssetCheckResult(check_name=CHECK_COUNTS, passed=True,
                                    metadata={"days": len(days)}),
                dg.AssetCheckResult(check_name=CHECK_DAY, passed=not wrong_day,
                                    metadata={"mismatched_days": wrong_day[:20]}),
            ],
        )

    return daily


def build_summary_asset(start_date: str) -> dg.AssetsDefinition:
    first = date.fromisoformat(start_date)

    @dg.asset(
        key=SUMMARY_KEY,
        group_name=GROUP,
        deps=[DAILY_KEY],
        kinds={"python", "s3"},
        description=(
            "The last 30 complete UTC days of activity and their totals, read from the daily "
            "artifacts (the record of truth). Published as activity-summary.json."
        ),
    )
    def last_30_days(store: AnalyticsStore) -> dg.MaterializeResult:
        started = time.perf_counter()
        today = datetime.now(UTC).date()
        days = [d for d in last_complete_days(today) if d >= first]
        documents = {}
        missing = []
        for d in days:
            doc = read_day(store, d.isoformat())
            if doc is None:
                missing.append(d.isoformat())
            else:
                documents[d.isoformat()] = doc
        missing += [d.isoformat() for d in last_complete_days(today) if d < first]
        data = summary_document(days, documents, missing)
        uri = store.publish_json(SUMMARY_ARTIFACT, data)
        return dg.MaterializeResult(
            metadata={
                "rows": len(data["days"]),
                "uri": dg.MetadataValue.url(uri),
                "window": f"{(today - timedelta(days=30)).isoformat()}.."
                          f"{(today - timedelta(days=1)).isoformat()}",
                "missing_days": len(missing),
                **{f"total_{k}": v for k, v in data["totals"].items()},
                "duration_s": round(time.perf_counter() - started, 3),
            }
        )

    return last_30_days
