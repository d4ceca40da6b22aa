"""The published analytics artifacts that need no optimal transport."""


import time

import dagster as dg
import numpy as np
import psycopg

from cocktail_assets import queries
from cocktail_assets.analytics.compute import (
    ingredient_tree_document,
    ingredient_usage_rows,
    recipe_complexity_rows,
    tree_depth,
    usage_counts,
)
from cocktail_assets.catalog.assets import CATALOG_IN
from cocktail_assets.catalog.load import IngredientCatalog
from cocktail_assets.resources.database import CocktailDatabase
from cocktail_assets.resources.params import AnalyticsParams
from cocktail_assets.resources.store import AnalyticsStore
from cocktail_assets.site.assets import site_table_key

GROUP = "analytics"


def _pairs(conn: psycopg.Connection) -> tuple[np.ndarray, np.ndarray]:
    """Distinct (recipe_id, ingredient_id) pairs."""
    rows = conn.execute(queries.DISTINCT_RECIPE_INGREDIENTS).fetchall()
    arr = np.array(rows, dtype=np.int64).reshape(-1, 2)
    return arr[:, 0], arr[:, 1]


@dg.asset(
    key=["analytics", "ingredient_usage"],
    group_name=GROUP,
    ins={"catalog": CATALOG_IN},
    deps=[site_table_key("recipe_ingredients")],
    kinds={"python", "s3"},
    description=(
        "Root ingredients with direct and hierarchical recipe counts, most used first. "
        "Published as ingredient-usage.json."
    ),
    check_specs=[
        dg.AssetCheckSpec("counts_match_sql", asset=["analytics", "ingredient_usage"],
                          description="Every ingredient's counts equal a direct SQL count."),
        dg.AssetCheckSpec("hierarchy_monotone", asset=["analytics", "ingredient_usage"],
                          description="hierarchical >= direct and >= every child's count."),
    ],
)
def ingredient_usage(
    context: dg.AssetExecutionContext,
    database: CocktailDatabase,
    store: AnalyticsStore,
    catalog: IngredientCatalog,
):
    started = time.perf_counter()
    # The check's SQL count reads the same snapshot as the counts it checks.
    with database.snapshot() as conn:
        recipe_ids, ingredient_ids = _pairs(conn)
        by_sql = np.array(conn.execute(queries.USAGE_BY_SQL).fetchall(), dtype=np.int64)
    by_sql = by_sql.reshape(-1, 3)
    direct, hierarchical = usage_counts(catalog, recipe_ids, ingredient_ids)
    rows = ingredient_usage_rows(catalog, direct, hierarchical)
    uri = store.publish_json("ingredient-usage", rows)
    mismatched = by_sql[
        (by_sql[:, 1] != direct) | (by_sql[:, 2] != hierarchical)
    ][:, 0] if by_sql.shape[0] == direct.size else catalog.tree.ids
    parent_pos = np.searchsorted(catalog.tree.ids, catalog.tree.parent_ids)
    child = catalog.tree.parent_ids >= 0
    not_monotone = np.concatenate([
        catalog.tree.ids[hierarchical < direct],
        catalog.tree.ids[child][hierarchical[parent_pos[child]] < hierarchical[child]],
    ])
    return dg.MaterializeResult(
        metadata={
            "rows": len(rows),
            "uri": dg.MetadataValue.url(uri),
            "duration_s": round(time.perf_counter() - started, 3),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name="counts_match_sql", passed=bool(mismatched.size == 0),
                metadata={"mismatched_ingredients": mismatched[:20].tolist()},
            ),
            dg.AssetCheckResult(
                check_name="hierarchy_monotone", passed=bool(not_monotone.size == 0),
                metadata={"violating_ingredients": not_monotone[:20].tolist()},
            ),
        ],
    )


@dg.asset(
    key=["analytics", "recipe_complexity"],
    group_name=GROUP,
    deps=[site_table_key("recipe_ingredients")],
    kinds={"python", "s3"},
    description="How many recipes have N distinct ingredients. Published as "
    "recipe-complexity.json.",
)
def recipe_complexity(
    database: CocktailDatabase, store: AnalyticsStore
) -> dg.MaterializeResult:
    started = time.perf_counter()
    with database.snapshot() as conn:
        rows = recipe_complexity_rows(*_pairs(conn))
    uri = store.publish_json("recipe-complexity", rows)
    return dg.MaterializeResult(
        metadata={
            "rows": len(rows),
            "recipes": sum(r["recipe_count"] for r in rows),
            "uri": dg.MetadataValue.url(uri),
            "duration_s": round(time.perf_counter() - started, 3),
        }
    )


@dg.asset(
    key=["analytics", "ingredient_tree"],
    group_name=GROUP,
    ins={"catalog": CATALOG_IN},
    deps=[site_table_key("recipe_ingredients")],
    kinds={"python", "s3"},
    description="The whole ingredient hierarchy with recipe counts, D3-ready. Published as "
    "ingredient-tree.json.",
)
def ingredient_tree(
    database: CocktailDatabase,
    store: AnalyticsStore,
    params: AnalyticsParams,
    catalog: IngredientCatalog,
) -> dg.MaterializeResult:
    started = time.perf_counter()
    with database.snapshot() as conn:
        recipe_ids, ingredient_ids = _pairs(conn)
    direct, hierarchical = usage_counts(catalog, recipe_ids, ingredient_ids)
    # the edge weight the EM fit starts from, so the published tree states the one in use
    document = ingredient_tree_document(
        catalog, direct, hierarchical, total_recipes=np.unique(recipe_ids).size,
        edge_weight=params.edge_weight,
    )
    uri = store.publish_json("ingredient-tree", document)
    return dg.MaterializeResult(
        metadata={
            "rows": int(catalog.tree.ids.size),
            "depth": tree_depth(document),
            "size": int(catalog.tree.ids.size) + 1,
            "uri": dg.MetadataValue.url(uri),
            "duration_s": round(time.perf_counter() - started, 3),
        }
    )
