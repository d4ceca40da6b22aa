"""One observable source asset per site table that feeds the analytics.

Each observation reports the table's data version: the id of its newest change in
``analytics_change_log``. When a table changes, its version changes, and the Dagster UI marks
exactly the assets downstream of it as stale.
"""


import warnings

import dagster as dg

from cocktail_assets.db.change_log import table_versions
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


def _observable(table: str, description: str) -> dg.SourceAsset:
    def observe(database: CocktailDatabase) -> dg.DataVersion:
        with database.connect(autocommit=True) as conn:
            return dg.DataVersion(table_versions(conn)[table])

    # observable_source_asset is marked beta; we rely on it knowingly, and its notice would
    # otherwise repeat in every process that loads the code location.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.BetaWarning)
        return dg.observable_source_asset(
            key=site_table_key(table),
            group_name=GROUP,
            description=f"Site table `{table}`. {description}",
            kinds={"postgres"},
        )(observe)


source_assets = [_observable(table, text) for table, text in SOURCE_TABLES.items()]
