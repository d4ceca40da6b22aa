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

import dagster as dg

from cocktail_assets.db.change_log import TableVersion, table_changes
from cocktail_assets.resources.database import CocktailDatabase
from cocktail_assets.resources.site_versions import (
    GROUP,
    SOURCE_TABLES,
    observation_metadata,
    site_table_key,
)


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
