"""Catalog assets: the ingredient catalog (tree, names) and the recipes' volume fractions.

Every other domain reads them through the ``AssetIn`` constants below.
"""


import time

import dagster as dg
import numpy as np

from cocktail_assets import queries
from cocktail_assets.catalog.load import (
    IngredientCatalog,
    load_catalog,
    load_recipe_volumes,
    recipes_with_volume,
)
from cocktail_assets.resources.database import CocktailDatabase
from cocktail_assets.site.assets import site_table_key

GROUP = "catalog"
INGREDIENT_CATALOG_KEY = dg.AssetKey([GROUP, "ingredient_catalog"])
RECIPE_VOLUMES_KEY = dg.AssetKey([GROUP, "recipe_volumes"])
# The inputs other domains read, defined once.
CATALOG_IN = dg.AssetIn(key=INGREDIENT_CATALOG_KEY)
VOLUMES_IN = dg.AssetIn(key=RECIPE_VOLUMES_KEY)


@dg.asset(
    key=INGREDIENT_CATALOG_KEY,
    group_name=GROUP,
    deps=[site_table_key("ingredients")],
    kinds={"python", "postgres"},
    description=(
        "The ingredient hierarchy parsed from ingredients.path, with names and "
        "allow_substitution. Fails naming the ingredient whose path is broken or loops."
    ),
)
def ingredient_catalog(
    context: dg.AssetExecutionContext, database: CocktailDatabase
) -> dg.Output[IngredientCatalog]:
    started = time.perf_counter()
    with database.snapshot() as conn:
        catalog = load_catalog(conn)
    depth = int(catalog.tree.depth().max()) + 1 if catalog.tree.ids.size else 0
    context.log.info(f"{catalog.tree.ids.size} ingredients, depth {depth}")
    return dg.Output(
        catalog,
        metadata={
            "rows": int(catalog.tree.ids.size),
            "depth": depth,
            "duration_s": round(time.perf_counter() - started, 3),
        },
    )


@dg.asset(
    key=RECIPE_VOLUMES_KEY,
    group_name=GROUP,
    ins={"catalog": CATALOG_IN},
    deps=[site_table_key("recipes"), site_table_key("recipe_ingredients"), site_table_key("units")],
    kinds={"python", "postgres"},
    description=(
        "Each recipe's ingredients as volume fractions (rows sum to 1) by the volume rule "
        "(docs/analytics.md#volume-rule), with recipe names and the ingredient lists the "
        "spaces display."
    ),
    check_specs=[
        dg.AssetCheckSpec(
            "every_recipe_with_volume_present", asset=RECIPE_VOLUMES_KEY,
            description=(
                "Exactly the recipes whose rows, read again on their own, have a positive total "
                "volume are rows, each once."
            ),
        )
    ],
)
def recipe_volumes(
    context: dg.AssetExecutionContext, database: CocktailDatabase, catalog: IngredientCatalog
):
    started = time.perf_counter()
    with database.snapshot() as conn:
        volumes = load_recipe_volumes(conn, catalog)
        expected = recipes_with_volume(conn.execute(queries.RECIPE_INGREDIENT_ROWS).fetchall())
    got = volumes.matrix.recipe_ids
    missing = np.setdiff1d(expected, got)
    extra = np.setdiff1d(got, expected)
    context.log.info(
        f"{got.size} recipes over {volumes.matrix.ingredient_ids.size} ingredients"
    )
    yield dg.Output(
        volumes,
        metadata={
            "rows": int(got.size),
            "ingredients_used": volumes.matrix.ingredient_ids.size,
            "nonzeros": int(volumes.matrix.fractions.nnz),
            "duration_s": round(time.perf_counter() - started, 3),
        },
    )
    yield dg.AssetCheckResult(
        check_name="every_recipe_with_volume_present",
        passed=bool(missing.size == 0 and extra.size == 0 and np.unique(got).size == got.size),
        metadata={"missing": missing[:20].tolist(), "unexpected": extra[:20].tolist()},
    )
