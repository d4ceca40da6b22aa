"""``activity/late_edits``: the late edits of each past day, as a partitioned source.

Each partition is a UTC day (the ``DailyPartitionsDefinition`` of ``activity/daily``) whose data
version is the id of the newest edit of that day that ``activity_day_changes`` (migration 003)
holds and no materialization has settled yet. ``activity/daily`` depends on it day by day
(identity mapping), so Dagster's own staleness marks exactly the late-edited days stale, with
the cause "activity/late_edits has a new data version" in the partition view, until each is
re-materialized. The late-edit sensor (``automation.py``) records these observations within a
tick of an edit; the "Observe" button runs :func:`observe_days` with the same query.

How Dagster decides, in 1.13: a materialization of a day records, as its input pointer, the
storage id of this asset's latest observation (of any partition) when its step starts. The day
is stale when this day's newest observation after that pointer has another data version than
its newest one before it. Hence:

- **Only days with pending edits are observed.** A day without late edits has no observation
  and stays fresh. When a materialization settles a day's edits, their rows are deleted and the
  day is not observed again, so its last version stands and the day stays fresh; a new edit
  gets a new (higher) id, a new version, and the day is stale again. An edit committed during
  the run stays pending and its id differs from the one observed before the run: stale again,
  as it should be.
- **One baseline observation.** A materialization made when this asset has never been observed
  records no pointer, and Dagster then never marks that day stale (it compares the newest
  observation with itself). So whoever first finds the instance without any observation of
  this asset records one: the first day, version ``0`` (no late edit), with a note saying so.
  It can make nothing stale: every materialization before it has no pointer, every one after
  it has seen it.
"""


import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime

import dagster as dg
import psycopg

from cocktail_assets.activity import queries
from cocktail_assets.activity.assets import GROUP, LATE_EDITS_KEY
from cocktail_assets.dagster_private import DATA_VERSION_TAG
from cocktail_assets.resources.database import CocktailDatabase

BASELINE_VERSION = "0"


@dataclass(frozen=True)
class PendingDay:
    """The unsettled late edits of one day, as ``activity_day_changes`` holds them."""

    day: date
    changes: int
    newest_id: int
    oldest_at: datetime
    newest_at: datetime

    @property
    def key(self) -> str:
        return self.day.isoformat()

    @property
    def version(self) -> str:
        """The day's data version: the id of its newest pending edit."""
        return str(self.newest_id)


def read_pending(conn: psycopg.Connection) -> tuple[list[PendingDay], datetime]:
    """The recorded late edits per day, and the database clock (two small queries)."""
    row = conn.execute(queries.DATABASE_NOW).fetchone()
    assert row is not None
    pending = [PendingDay(r[0], r[1], r[2], r[3], r[4])
               for r in conn.execute(queries.PENDING_DAYS).fetchall()]
    return pending, row[0]


def partition_days(pending: Iterable[PendingDay], first_day: date, today: date) -> list[PendingDay]:
    """The pending days that are partitions: from the first day, before today."""
    return [p for p in pending if first_day <= p.day < today]


def observation(day: PendingDay) -> dg.AssetObservation:
    """The observation of a day's version, with what is pending (shown on the asset's page)."""
    return dg.AssetObservation(
        asset_key=LATE_EDITS_KEY,
        partition=day.key,
        tags={DATA_VERSION_TAG: day.version},
        metadata={
            "late_edits_pending": dg.MetadataValue.int(day.changes),
            "newest_change_id": dg.MetadataValue.int(day.newest_id),
            "oldest_edit_at": dg.MetadataValue.timestamp(day.oldest_at.replace(tzinfo=UTC)),
            "newest_edit_at": dg.MetadataValue.timestamp(day.newest_at.replace(tzinfo=UTC)),
        },
    )


def baseline(first_day: date) -> dg.AssetObservation:
    """The first observation of an instance that has none (see the module's docstring)."""
    return dg.AssetObservation(
        asset_key=LATE_EDITS_KEY,
        partition=first_day.isoformat(),
        tags={DATA_VERSION_TAG: BASELINE_VERSION},
        metadata={
            "late_edits_pending": dg.MetadataValue.int(0),
            "note": dg.MetadataValue.text(
                "baseline: no late edit recorded; the days materialized from now on can be "
                "marked stale by a later edit"
            ),
        },
    )


def ever_observed(instance: dg.DagsterInstance) -> bool:
    """Whether the instance holds any observation of ``activity/late_edits`` (one query)."""
    return bool(instance.fetch_observations(LATE_EDITS_KEY, limit=1).records)


def needs_baseline(
    instance: dg.DagsterInstance, events: Sequence[dg.AssetObservation], first_day: date,
    today: date,
) -> bool:
    """True when nothing is being observed, none ever was, and the first day is a partition."""
    return not events and first_day < today and not ever_observed(instance)


def ensure_baseline(instance: dg.DagsterInstance, first_day: date, today: date) -> bool:
    """Record the baseline unless the instance has an observation already; True if recorded.
    For doors that launch materializations before any sensor tick (``backfill``)."""
    if not needs_baseline(instance, [], first_day, today):
        return False
    instance.report_runless_asset_event(baseline(first_day))
    return True


def observe_days(
    instance: dg.DagsterInstance, database: CocktailDatabase, first_day: date
) -> list[dg.AssetObservation]:
    """What "Observe" records: every pending day's version (the unchanged ones repeat harmlessly:
    Dagster compares versions, not observations), or the baseline when there is nothing else."""
    with database.connect(autocommit=True) as conn:
        pending, now = read_pending(conn)
    events = [observation(p) for p in partition_days(pending, first_day, now.date())]
    if needs_baseline(instance, events, first_day, now.date()):
        events.append(baseline(first_day))
    return events


def build_late_edits_asset(partitions: dg.DailyPartitionsDefinition) -> dg.AssetsDefinition:
    first_day = partitions.start.date()
    spec = dg.AssetSpec(
        key=LATE_EDITS_KEY,
        group_name=GROUP,
        partitions_def=partitions,
        kinds={"postgres"},
        description=(
            "The site's late edits of each past UTC day (activity_day_changes): a day's data "
            "version is the id of its newest edit that no materialization of activity/daily "
            "has covered yet, so that day of activity/daily shows as stale until it is "
            "re-aggregated. Only days with late edits are observed; the late-edit sensor "
            "records them by itself."
        ),
    )

    def late_edits(
        context: dg.AssetExecutionContext, database: CocktailDatabase
    ) -> Iterator[dg.AssetObservation]:
        events = observe_days(context.instance, database, first_day)
        context.log.info(
            f"late edits: {len(events)} day(s) observed"
            + (f" ({', '.join(e.partition or '' for e in events[:10])}"
               f"{', …' if len(events) > 10 else ''})" if events else "")
        )
        yield from events

    # multi_observable_source_asset is marked beta; we rely on it knowingly (it takes an
    # AssetSpec, so owners and code references, where observable_source_asset returns a
    # SourceAsset). Its ObserveResult has no partition, so the function yields the days'
    # AssetObservations itself; can_subset makes the asset's one output optional, so that no
    # extra observation without a partition is recorded.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.BetaWarning)
        return dg.multi_observable_source_asset(
            name="activity__late_edits", specs=[spec], can_subset=True,
        )(late_edits)
