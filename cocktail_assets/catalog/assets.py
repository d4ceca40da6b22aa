"""Catalog assets: the ingredient tree and the recipes' volume fractions."""


import time

import dagster as dg
import numpy as np

from cocktail_assets.catalog.load import (
    IngredientCatalog,
    load_catalog,
    load_recipe_volumes,
)
from cocktail_assets.resources.database import CocktailDatabase
from cocktail_assets.sources.assets import source_key

GROUP = "catalog"

# Recipes with rows whose volumes, by the spec's rule, sum to more than 0: the spaces' recipes.
_RECIPES_WITH_VOLUME = """
SELECT ri.recipe_id
FROM recipe_ingredients ri LEFT JOIN units u ON u.id = ri.unit_id
GROUP BY ri.recipe_id
HAVING sum(CASE
    WHEN u.name = 'to top' THEN 90
    WHEN u.name = 'to rinse' THEN 5
    WHEN lower(u.name) = 'each' THEN 1
    WHEN ri.amount IS NOT NULL AND u.conversion_to_ml IS NOT NULL
        THEN ri.amount * u.conversion_to_ml
    WHEN ri.amount IS NOT NULL THEN ri.amount
    ELSE 1 END) > 0
ORDER BY 1
"""


@dg.asset(
    key=["catalog", "ingredient_tree"],
    group_name=GROUP,
    deps=[source_key("ingredients")],
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
    key=["catalog", "recipe_volumes"],
    group_name=GROUP,
    ins={"catalog": dg.AssetIn(key=["catalog", "ingredient_tree"])},
    deps=[source_key("recipes"), source_key("recipe_ingredients"), source_key("units")],
    kinds={"python", "postgres"},
    description=(
        "Each recipe's ingredients as volume fractions (rows sum to 1) by the spec's volume "
        "rule, with recipe names and the ingredient lists the spaces display."
    ),
    check_specs=[
        dg.AssetCheckSpec(
            "every_recipe_with_volume_present", asset=["catalog", "recipe_volumes"],
            description="Exactly the recipes with a positive total volume (by SQL) are rows.",
        )
    ],
)
def recipe_volumes(
    context: dg.AssetExecutionContext, database: CocktailDatabase, catalog: IngredientCatalog
):
    started = time.perf_counter()
    with database.snapshot() as conn:
        volumes = load_recipe_volumes(conn, catalog)
        expected = np.array([r[0] for r in conn.execute(_RECIPES_WITH_VOLUME)], dtype=np.int64)
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
