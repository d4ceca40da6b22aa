"""Catalog assets: the ingredient catalog (tree, names) and the recipes' volume fractions.

Every other domain reads them through the ``AssetIn`` constants below.
"""


import time

import dagster as dg

from cocktail_assets.catalog.load import IngredientCatalog, load_catalog, load_recipe_volumes
from cocktail_assets.checks import error_check, gate, repeated_or_missing, verdict
from cocktail_assets.resources.database import CocktailDatabase
from cocktail_assets.resources.site_versions import site_table_key

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
            "dagster/row_count": int(catalog.tree.ids.size),
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
        "spaces display. A NaN, negative or infinite amount or conversion fails it, naming "
        "the row."
    ),
    check_specs=[
        error_check(
            RECIPE_VOLUMES_KEY, "every_recipe_with_volume_present",
            "Exactly the recipes whose rows have a positive total volume by the volume rule "
            "in SQL (same snapshot) are rows, each once.",
        )
    ],
)
def recipe_volumes(
    context: dg.AssetExecutionContext, database: CocktailDatabase, catalog: IngredientCatalog
):
    started = time.perf_counter()
    with database.snapshot() as conn:
        volumes = load_recipe_volumes(conn, catalog)
    got = volumes.matrix.recipe_ids
    results = [verdict(
        "every_recipe_with_volume_present",
        repeated_or_missing(got.tolist(), volumes.expected_recipe_ids.tolist()),
        "recipes missing, repeated or unexpected",
    )]
    yield from gate(RECIPE_VOLUMES_KEY, results)
    context.log.info(
        f"{got.size} recipes over {volumes.matrix.ingredient_ids.size} ingredients"
    )
    yield dg.Output(
        volumes,
        metadata={
            "dagster/row_count": int(got.size),
            "ingredients_used": volumes.matrix.ingredient_ids.size,
            "nonzeros": int(volumes.matrix.fractions.nnz),
            "duration_s": round(time.perf_counter() - started, 3),
        },
    )
    yield from results
