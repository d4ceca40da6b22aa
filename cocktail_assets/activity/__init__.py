"""Daily activity metrics: day partitions, CloudWatch, nightly schedule, backfills, late edits
(a partitioned source that marks late-edited days stale).

``build_activity(settings)`` returns everything the code location needs from this domain, so
wiring it into the definitions is one call.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import dagster as dg


@dataclass(frozen=True)
class ActivityDefinitions:
    """The activity domain's definitions; its asset checks are declared with the asset
    (``check_specs``), so ``asset_checks`` is empty and kept for symmetry."""

    assets: list[dg.AssetsDefinition]
    asset_checks: list[Any]
    jobs: list[Any]
    schedules: list[dg.ScheduleDefinition]
    sensors: list[dg.SensorDefinition]
    partitions: dg.DailyPartitionsDefinition


def build_activity(settings: Any) -> ActivityDefinitions:
    """The domain for one set of settings (start date, batch size, sensor timing)."""
    from cocktail_assets.activity.assets import (
        build_daily_asset,
        build_summary_asset,
        partitions_for,
    )
    from cocktail_assets.activity.automation import (
        build_job,
        build_late_edit_sensor,
        build_schedule,
    )
    from cocktail_assets.activity.late_edits import build_late_edits_asset

    partitions = partitions_for(settings.activity_start_date)
    job = build_job(partitions)
    return ActivityDefinitions(
        assets=[
            build_late_edits_asset(partitions),
            build_daily_asset(partitions, settings.activity_days_per_run),
            build_summary_asset(settings.activity_start_date),
        ],
        asset_checks=[],
        jobs=[job],
        schedules=[build_schedule(job)],
        sensors=[
            build_late_edit_sensor(
                job, settings.activity_start_date, settings.debounce_minutes,
                settings.max_wait_minutes, settings.activity_days_per_run,
                settings.sensor_interval_seconds,
            )
        ],
        partitions=partitions,
    )
