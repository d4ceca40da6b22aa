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
from cocktail_assets.checks import PUBLISHED, error_check, gate, repeated_or_missing, verdict
from cocktail_assets.previews import preview_metadata, tree_png
from cocktail_assets.resources.database import CocktailDatabase
from cocktail_assets.resources.params import AnalyticsParams
from cocktail_assets.resources.site_versions import site_table_key
from cocktail_assets.resources.store import AnalyticsStore

GROUP = "analytics"
USAGE_KEY = dg.AssetKey([GROUP, "ingredient_usage"])
COMPLEXITY_KEY = dg.AssetKey([GROUP, "recipe_complexity"])
TREE_KEY = dg.AssetKey([GROUP, "ingredient_tree"])


def _pairs(conn: psycopg.Connection) -> tuple[np.ndarray, np.ndarray]:
    """Distinct (recipe_id, ingredient_id) pairs."""
    rows = conn.execute(queries.DISTINCT_RECIPE_INGREDIENTS).fetchall()
    arr = np.array(rows, dtype=np.int64).reshape(-1, 2)
    return arr[:, 0], arr[:, 1]


def _usage_by_sql(conn: psycopg.Connection) -> dict[int, tuple[int, int, bool]]:
    """{ingredient id: (direct, hierarchical, is root)} counted in SQL (queries.USAGE_BY_SQL)."""
    return {r[0]: (r[1], r[2], r[3]) for r in conn.execute(queries.USAGE_BY_SQL)}


def _metadata(rows: int, uri: str, started: float, **more: object) -> dict[str, object]:
    return {
        "dagster/row_count": rows,
        "dagster/uri": dg.MetadataValue.url(uri),
        "duration_s": round(time.perf_counter() - started, 3),
        **more,
    }


def monotone_violations(
    catalog: IngredientCatalog, direct: np.ndarray, hierarchical: np.ndarray
) -> list[int]:
    """Ingredients whose counts break hierarchical >= direct >= 0 or hierarchical >= a child's."""
    tree = catalog.tree
    parent_pos = np.searchsorted(tree.ids, tree.parent_ids)
    child = np.flatnonzero(tree.parent_ids >= 0)
    below_child = child[hierarchical[parent_pos[child]] < hierarchical[child]]
    bad = (direct < 0) | (hierarchical < direct)
    return sorted({*tree.ids[bad].tolist(), *tree.parent_ids[below_child].tolist()})


@dg.asset(
    key=USAGE_KEY,
    group_name=GROUP,
    ins={"catalog": CATALOG_IN},
    deps=[site_table_key("recipe_ingredients")],
    kinds={"python", "s3"},
    tags=PUBLISHED,
    description=(
        "Root ingredients with direct and hierarchical recipe counts, most used first. "
        "Published as ingredient-usage.json."
    ),
    check_specs=[
        error_check(USAGE_KEY, "counts_match_sql",
                    "Exactly the root ingredients are rows, each once, with the direct and "
                    "hierarchical counts a direct SQL count gives (same snapshot)."),
        error_check(USAGE_KEY, "hierarchy_monotone",
                    "hierarchical >= direct >= 0 for every ingredient, and every "
                    "ingredient's hierarchical count >= each child's."),
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
        by_sql = _usage_by_sql(conn)
    direct, hierarchical = usage_counts(catalog, recipe_ids, ingredient_ids)
    rows = ingredient_usage_rows(catalog, direct, hierarchical)
    roots = [i for i, (_, _, root) in by_sql.items() if root]
    wrong = [
        r["ingredient_id"] for r in rows
        if by_sql.get(r["ingredient_id"], (None, None))[:2]
        != (r["direct_usage"], r["hierarchical_usage"])
    ]
    results = [
        verdict("counts_match_sql",
                sorted({*wrong, *repeated_or_missing([r["ingredient_id"] for r in rows], roots)}),
                "ingredients whose row is missing, repeated or disagrees with SQL"),
        verdict("hierarchy_monotone", monotone_violations(catalog, direct, hierarchical),
                "ingredients whose counts are not monotone"),
    ]
    yield from gate(USAGE_KEY, results)
    uri = store.publish_json("ingredient-usage", rows)
    yield dg.MaterializeResult(
        metadata=_metadata(len(rows), uri, started), check_results=results
    )


@dg.asset(
    key=COMPLEXITY_KEY,
    group_name=GROUP,
    deps=[site_table_key("recipe_ingredients")],
    kinds={"python", "s3"},
    tags=PUBLISHED,
    description="How many recipes have N distinct ingredients. Published as "
    "recipe-complexity.json.",
    check_specs=[
        error_check(COMPLEXITY_KEY, "counts_match_sql",
                    "Every (ingredient count, recipe count) row equals a direct SQL "
                    "histogram (same snapshot), ascending, each count once."),
    ],
)
def recipe_complexity(database: CocktailDatabase, store: AnalyticsStore):
    started = time.perf_counter()
    with database.snapshot() as conn:
        rows = recipe_complexity_rows(*_pairs(conn))
        by_sql = [tuple(r) for r in conn.execute(queries.RECIPE_COMPLEXITY)]
    got = [(r["ingredient_count"], r["recipe_count"]) for r in rows]
    mine, theirs = dict(got), dict(by_sql)
    differ = [[n, mine.get(n), theirs.get(n)] for n in sorted({*mine, *theirs})
              if mine.get(n) != theirs.get(n)]
    if not differ and got != sorted(mine.items()):
        differ = [["rows not ascending or repeated", len(got), len(by_sql)]]
    results = [verdict(
        "counts_match_sql", differ,
        "[ingredient count, recipes published, recipes by SQL] that differ",
    )]
    yield from gate(COMPLEXITY_KEY, results)
    uri = store.publish_json("recipe-complexity", rows)
    yield dg.MaterializeResult(
        metadata=_metadata(len(rows), uri, started, recipes=sum(r[1] for r in got)),
        check_results=results,
    )


def tree_nodes(document: dict) -> list[tuple[int, int | None, int, int]]:
    """(id, parent id or None, direct, hierarchical) of every node below the synthetic root."""
    out, stack = [], [(child, None) for child in document["children"]]
    while stack:
        node, parent = stack.pop()
        iid = int(node["id"])
        out.append((iid, parent, node["recipe_count"], node["hierarchical_recipe_count"]))
        stack.extend((child, iid) for child in node["children"])
    return out


@dg.asset(
    key=TREE_KEY,
    group_name=GROUP,
    ins={"catalog": CATALOG_IN},
    deps=[site_table_key("recipe_ingredients")],
    kinds={"python", "s3"},
    tags=PUBLISHED,
    description="The whole ingredient hierarchy with recipe counts, D3-ready. Published as "
    "ingredient-tree.json.",
    check_specs=[
        error_check(TREE_KEY, "every_ingredient_once",
                    "Every ingredient of the database (SQL, same snapshot) is one node, "
                    "under the parent its path names."),
        error_check(TREE_KEY, "counts_match_sql",
                    "Every node's direct and hierarchical counts equal a direct SQL count."),
    ],
)
def ingredient_tree(
    database: CocktailDatabase,
    store: AnalyticsStore,
    params: AnalyticsParams,
    catalog: IngredientCatalog,
):
    started = time.perf_counter()
    with database.snapshot() as conn:
        recipe_ids, ingredient_ids = _pairs(conn)
        by_sql = _usage_by_sql(conn)
        paths = dict(conn.execute(queries.INGREDIENT_PATHS).fetchall())
    direct, hierarchical = usage_counts(catalog, recipe_ids, ingredient_ids)
    # the edge weight the EM fit starts from, so the published tree states the one in use
    document = ingredient_tree_document(
        catalog, direct, hierarchical, total_recipes=np.unique(recipe_ids).size,
        edge_weight=params.edge_weight,
    )
    nodes = tree_nodes(document)
    misplaced = [
        iid for iid, parent, _, _ in nodes
        if iid in paths and parent != _path_parent(paths[iid])
    ]
    results = [
        verdict("every_ingredient_once",
                sorted({*repeated_or_missing([n[0] for n in nodes], list(paths)), *misplaced}),
                "ingredients missing, repeated or under the wrong parent"),
        verdict("counts_match_sql",
                sorted(iid for iid, _, d, h in nodes
                       if by_sql.get(iid, (None, None))[:2] != (d, h)),
                "ingredients whose counts disagree with SQL"),
    ]
    yield from gate(TREE_KEY, results)
    uri = store.publish_json("ingredient-tree", document)
    yield dg.MaterializeResult(
        metadata=_metadata(
            len(nodes), uri, started, depth=tree_depth(document), size=len(nodes) + 1,
            preview=preview_metadata(
                store, "ingredient-tree", tree_png(document), "ingredient tree"
            ),
        ),
        check_results=results,
    )


def _path_parent(path: str | None) -> int | None:
    """The parent a path names: its second-last id (docs/analytics.md#inputs)."""
    chain = [int(x) for x in (path or "").strip("/").split("/") if x]
    return chain[-2] if len(chain) > 1 else None
