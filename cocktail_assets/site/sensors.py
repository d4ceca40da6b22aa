"""The site observer: records the ``site/*`` sources' observations by itself.

Every tick reads each tracked table's data version and last change (one small query on the
change log) and the sources' latest observations in the instance; it records an observation
for each table whose version moved, with the metadata of its last change. So within one sensor
interval of an edit the UI shows the new version on the table and every asset computed from
it as Unsynced (``site/lineage.py``), without anyone clicking "Observe". It keeps no state of
its own: the instance's latest observation is what it compares with, so a restarted daemon
neither repeats nor loses one.

While a run of the code location is in progress it waits: a step records the versions of its
inputs when it starts, and an observation landing mid-run would let a later step of that run
claim an edit that the run's earlier reads never saw. Every run observes, before its first
step, the versions of its own change snapshot (``resources/site_versions.py``), so an edit the
run read is never shown as missing from it; an edit committed during the run is observed as
soon as the run ends, and what the run computed is then stale, as it is.
"""

from __future__ import annotations

import dagster as dg
import psycopg

from cocktail_assets.db.change_log import table_changes
from cocktail_assets.environments import Settings
from cocktail_assets.errors import DatabaseUnavailable
from cocktail_assets.resources.database import CocktailDatabase
from cocktail_assets.resources.site_versions import describe, new_observations, observed_versions
from cocktail_assets.tags import CODE_LOCATION, CODE_LOCATION_TAG

OBSERVE_SENSOR_NAME = "site_observer"
OBSERVED_BY = "the site_observer sensor"

# A run in these states may have steps still to start (QUEUED runs have recorded nothing yet).
_RUNNING = [dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED,
            dg.DagsterRunStatus.CANCELING]


def observe_tick(
    context: dg.SensorEvaluationContext, database: CocktailDatabase
) -> dg.SensorResult:
    """One tick: observe the tables whose version moved, unless a refresh run is in progress."""
    instance = context.instance
    try:
        with database.connect(autocommit=True) as conn:
            changes = table_changes(conn)
    except psycopg.Error as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise DatabaseUnavailable(
            f"database {database.describe()} failed during the observation tick: {first}"
        ) from None
    observations = new_observations(changes, observed_versions(instance), OBSERVED_BY)
    if not observations:
        return dg.SensorResult(skip_reason=dg.SkipReason(
            "no site table changed since its last observation"))
    # Every run of the code location carries Dagster's code-location tag (the CLI adds it to
    # its own): refresh runs, UI materializations, activity runs.
    running = instance.get_runs(
        dg.RunsFilter(tags={CODE_LOCATION_TAG: CODE_LOCATION}, statuses=_RUNNING), limit=1
    )
    if running:
        return dg.SensorResult(skip_reason=dg.SkipReason(
            f"new versions of {describe(observations)}: observed once run "
            f"{running[0].run_id} ends (its steps must not claim edits it did not read)"))
    context.log.info(f"observed {describe(observations)}")
    return dg.SensorResult(
        asset_events=observations,
        skip_reason=dg.SkipReason(f"observed {describe(observations)}"),
    )


def build_observe_sensor(settings: Settings) -> dg.SensorDefinition:
    @dg.sensor(
        name=OBSERVE_SENSOR_NAME,
        minimum_interval_seconds=max(1, settings.sensor_interval_seconds),
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Records an observation of each site table whose data version moved (its "
        "newest change in the change log), so the assets computed from it show as Unsynced.",
    )
    def site_observer(
        context: dg.SensorEvaluationContext, database: CocktailDatabase
    ) -> dg.SensorResult:
        return observe_tick(context, database)

    return site_observer


def site_sensors(settings: Settings) -> list[dg.SensorDefinition]:
    """The site domain's sensors, for ``definitions.py``."""
    return [build_observe_sensor(settings)]
