"""The code location: merges every domain of the asset graph; nothing else.

``build_defs`` is the one way to build it: this module's ``defs`` (what ``dagster``/``dg``,
the UI and the daemon load), the CLI, the Batch worker (through ``analytics_refresh_job``) and
the tests all use it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import dagster as dg

from cocktail_assets.activity import build_activity
from cocktail_assets.analytics import assets as analytics
from cocktail_assets.catalog import assets as catalog
from cocktail_assets.environments import Settings, build_resources, read_settings
from cocktail_assets.ownership import with_owners_and_code
from cocktail_assets.refresh.jobs import JOB_NAME, LOGGERS, analytics_executor, analytics_refresh
from cocktail_assets.refresh.policy import Policy
from cocktail_assets.refresh.published import with_monitoring
from cocktail_assets.refresh.sensors import refresh_sensors
from cocktail_assets.resources.site_versions import SITE_KEYS
from cocktail_assets.site.assets import source_assets
from cocktail_assets.site.lineage import with_table_deps
from cocktail_assets.site.sensors import site_sensors
from cocktail_assets.spaces import assets as spaces


def build_defs(settings: Settings, resources: Mapping[str, Any] | None = None) -> dg.Definitions:
    """The code location for ``settings``; ``resources`` replaces individual bindings (tests
    bind their own database and store). The published assets get their owners and a freshness
    policy from the refresh timing here; every asset depends directly on the site tables it
    reads (``site/lineage.py``: staleness for the whole subgraph) and carries owners and code
    references.

    Every job, Dagster's own asset job included (UI Materialize, backfills), runs in-process
    under the analytics lock: one analytics run at a time, whatever launched it.
    """
    policy = Policy.from_minutes(settings.debounce_minutes, settings.max_wait_minutes)
    computed = with_monitoring(dg.load_assets_from_modules([catalog, analytics, spaces]), policy)
    activity = build_activity(settings)
    assets = with_table_deps([*source_assets, *computed, *activity.assets], SITE_KEYS)
    return dg.Definitions(
        assets=with_owners_and_code(assets),
        jobs=[analytics_refresh, *activity.jobs],
        schedules=activity.schedules,
        loggers=LOGGERS,
        executor=analytics_executor,
        sensors=[*refresh_sensors(settings), *site_sensors(settings), *activity.sensors],
        resources={**build_resources(settings), **(resources or {})},
    )


defs = build_defs(read_settings())


def analytics_refresh_job() -> dg.JobDefinition:
    """This code location's refresh job, for ``dg.reconstructable`` (the CLI's runs, which a
    step launcher rebuilds on the Batch worker by this module and function name)."""
    return defs.resolve_job_def(JOB_NAME)
