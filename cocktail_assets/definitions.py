"""The code location: merges every domain of the asset graph; nothing else."""

from __future__ import annotations

import dagster as dg

from cocktail_assets.activity import build_activity
from cocktail_assets.analytics import assets as analytics
from cocktail_assets.catalog import assets as catalog
from cocktail_assets.environments import build_resources, read_settings
from cocktail_assets.refresh.jobs import LOGGERS, analytics_refresh
from cocktail_assets.refresh.sensors import refresh_sensors
from cocktail_assets.sources.assets import source_assets
from cocktail_assets.spaces import assets as spaces

settings = read_settings()
activity = build_activity(settings)

defs = dg.Definitions(
    assets=[
        *source_assets,
        *dg.load_assets_from_modules([catalog, analytics, spaces]),
        *activity.assets,
    ],
    jobs=[analytics_refresh, *activity.jobs],
    schedules=activity.schedules,
    loggers=LOGGERS,
    sensors=[*refresh_sensors(settings), *activity.sensors],
    resources=build_resources(settings),
)
