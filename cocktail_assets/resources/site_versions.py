"""The site tables' data versions as observations of their source assets ``site/<table>``.

A table's data version is the id of its newest change in ``analytics_change_log``. Two writers
record an observation of each table whose version moved (:func:`new_observations`), saying
who observed it:

- the site observer sensor (``site/sensors.py``), on its ticks between runs, so an edit shows
  as Unsynced without a click;
- every run, in the database resource's set-up, before its first step (:func:`record_moved`):
  the versions visible
  in the run's change snapshot. A step records the versions of its inputs when it starts, so
  a run that reads an edit the observer has not yet seen (a refresh within one sensor interval
  of the edit) records that edit's version, and is not shown stale once the observer catches
  up. Taken from the snapshot itself, the versions never claim an edit the run does not read.

This sits below the site domain because the database resource, which the site's assets use,
needs it; ``site/assets.py`` defines the source assets with these keys.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC

import dagster as dg

from cocktail_assets.dagster_private import DATA_VERSION_TAG
from cocktail_assets.db.change_log import TableVersion

GROUP = "site"

SOURCE_TABLES: dict[str, str] = {
    "recipes": "Recipe names and metadata.",
    "ingredients": "The ingredient hierarchy (path, parent_id, allow_substitution).",
    "recipe_ingredients": "Which ingredient, how much and in which unit, per recipe.",
    "units": "Units and their conversion to ml.",
    "ratings": "User ratings of recipes (1-5).",
    "tags": "Tag names.",
    "recipe_tags": "Which tags a recipe carries.",
}


def site_table_key(table: str) -> dg.AssetKey:
    """The source asset of a site table, ``site/<table>``; a table without one is a KeyError,
    so a misspelt dependency fails at load instead of dangling."""
    if table not in SOURCE_TABLES:
        raise KeyError(f"{table} is not a site table with a source asset")
    return dg.AssetKey([GROUP, table])


SITE_KEYS: dict[dg.AssetKey, str] = {site_table_key(t): t for t in SOURCE_TABLES}


def observation_metadata(change: TableVersion) -> dict[str, dg.MetadataValue]:
    """What the UI shows beside a table's data version: its last change and what is pending."""
    metadata: dict[str, dg.MetadataValue] = {
        "pending_changes": dg.MetadataValue.int(change.pending),
        "last_change_id": dg.MetadataValue.int(int(change.version)),
    }
    if change.last_changed_at is not None:
        metadata["last_change_at"] = dg.MetadataValue.timestamp(
            change.last_changed_at.replace(tzinfo=UTC)
        )
        metadata["last_change"] = dg.MetadataValue.text(change.last_operation or "")
    return metadata


def observed_versions(instance: dg.DagsterInstance) -> dict[str, str | None]:
    """Each source table's data version as last observed in the instance (None: never)."""
    out: dict[str, str | None] = {}
    for key, table in SITE_KEYS.items():
        records = instance.fetch_observations(key, limit=1).records
        observation = records[0].asset_observation if records else None
        out[table] = observation.data_version if observation else None
    return out


def new_observations(
    changes: Mapping[str, TableVersion], observed: Mapping[str, str | None], observed_by: str
) -> list[dg.AssetObservation]:
    """An observation for each source table whose version differs from the observed one."""
    return [
        dg.AssetObservation(
            asset_key=site_table_key(table),
            metadata={**observation_metadata(change),
                      "observed_by": dg.MetadataValue.text(observed_by)},
            tags={DATA_VERSION_TAG: change.version},
        )
        for table, change in changes.items()
        if table in observed and observed[table] != change.version
    ]


def describe(observations: list[dg.AssetObservation]) -> str:
    """'site/ingredients (version 42), …' for a log line or a skip reason."""
    return ", ".join(
        f"{o.asset_key.to_user_string()} (version {o.tags[DATA_VERSION_TAG]})"
        for o in observations
    )


def record_moved(
    instance: dg.DagsterInstance, changes: Mapping[str, TableVersion], observed_by: str
) -> list[dg.AssetObservation]:
    """Record, now, an observation of each table whose version moved since the instance's
    latest one; returns them."""
    observations = new_observations(changes, observed_versions(instance), observed_by)
    for observation in observations:
        instance.report_runless_asset_event(observation)
    return observations
