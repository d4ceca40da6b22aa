"""One observable source asset per site table that feeds the analytics.

Each observation reports the table's data version (the id of its newest change in
``analytics_change_log``) with metadata of that change: when, which operation, and how many
changes no refresh has covered yet. ``site/sensors.py`` records these observations by itself
on every tick that sees a new version, so nobody has to click "Observe"; the "Observe" button
runs the same function.

Staleness is transitive because every asset depends directly on each table it reads, however
indirectly (``site/lineage.py``): a new version of ``site/ingredients`` marks every asset
computed from the ingredients stale, each with the cause "site/ingredients has a new data
version", and a table nothing reads (ratings, tags) marks nothing.
"""

from __future__ import annotations

import warnings
from datetime import UTC

import dagster as dg

from cocktail_assets.db.change_log import TableVersion, table_changes
from cocktail_assets.resources.database import CocktailDatabase

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


def observe_result(change: TableVersion) -> dg.ObserveResult:
    return dg.ObserveResult(
        asset_key=site_table_key(change.table),
        data_version=dg.DataVersion(change.version),
        metadata=observation_metadata(change),
    )


def _observable(table: str, description: str) -> dg.AssetsDefinition:
    spec = dg.AssetSpec(
        key=site_table_key(table),
        group_name=GROUP,
        description=f"Site table `{table}`. {description}",
        kinds={"postgres"},
    )

    def observe(database: CocktailDatabase) -> dg.ObserveResult:
        with database.connect(autocommit=True) as conn:
            return observe_result(table_changes(conn)[table])

    # multi_observable_source_asset is marked beta; we rely on it knowingly (unlike
    # observable_source_asset it takes an AssetSpec, so owners and code references), and its
    # notice would otherwise repeat in every process that loads the code location.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.BetaWarning)
        return dg.multi_observable_source_asset(name=f"site__{table}", specs=[spec])(observe)


source_assets = [_observable(table, text) for table, text in SOURCE_TABLES.items()]
