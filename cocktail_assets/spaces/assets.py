"""Cocktail-space assets: from volume fractions to the two 2-D maps and recipe_similarity.

The rows and arrays they publish are shaped in ``shape.py``; this module declares the assets,
their checks and where each result goes.

The heavy steps (the EM fit and both UMAP embeddings) require the ``step_launcher`` resource:
in production it runs them on AWS Batch, in the embedded default it is a none-resource and they
run in-process. They read and write only the analytics store, never the database.
"""


import json
import time
from typing import Any

import dagster as dg
import numpy as np
from barcart import (
    EMResult,
    RecipeMatrix,
    TreeMetric,
    embed_em,
    embed_knn,
    fit_em,
    manhattan_knn,
    rollup,
    tree_distance_matrix,
)

from cocktail_assets import queries
from cocktail_assets.catalog.assets import CATALOG_IN, VOLUMES_IN
from cocktail_assets.catalog.load import IngredientCatalog, RecipeVolumes
from cocktail_assets.compiled import enable_umap_kernel_caching
from cocktail_assets.previews import scatter_preview
from cocktail_assets.resources.database import CocktailDatabase
from cocktail_assets.resources.params import AnalyticsParams
from cocktail_assets.spaces.shape import dense_distances, iter_similarity_rows, space_rows
from cocktail_assets.spaces.types import KnnGraph

GROUP = "spaces"
HEAVY = {"step_launcher", "store", "params"}
RECIPE_SIMILARITY_KEY = dg.AssetKey([GROUP, "recipe_similarity"])


@dg.asset(
    key=["spaces", "rolled_up_recipes"],
    group_name=GROUP,
    ins={"volumes": VOLUMES_IN, "catalog": CATALOG_IN},
    kinds={"python"},
    description="Volume fractions with substitutable leaf ingredients replaced by their parent "
    "(one level), duplicates summed: the recipes the EM space compares.",
)
def rolled_up_recipes(
    volumes: RecipeVolumes, catalog: IngredientCatalog
) -> dg.Output[RecipeMatrix]:
    rolled = rollup(volumes.matrix, catalog.tree, catalog.allow_substitution)
    return dg.Output(
        rolled,
        metadata={
            "recipes": rolled.n_recipes,
            "ingredients_before": int(volumes.matrix.ingredient_ids.size),
            "ingredients_after": int(rolled.ingredient_ids.size),
        },
    )


@dg.asset(
    key=["spaces", "manhattan_neighbors"],
    group_name=GROUP,
    ins={"volumes": VOLUMES_IN},
    kinds={"python"},
    description="Each recipe's exact nearest recipes by Manhattan (L1) distance between volume "
    "fractions: the kNN graph cocktail-space is embedded from.",
)
def manhattan_neighbors(volumes: RecipeVolumes, params: AnalyticsParams) -> dg.Output[KnnGraph]:
    started = time.perf_counter()
    indices, distances = manhattan_knn(volumes.matrix.fractions, params.manhattan_neighbors)
    graph = KnnGraph(indices=indices, distances=distances)
    return dg.Output(
        graph,
        metadata={
            "recipes": int(indices.shape[0]),
            "k": int(indices.shape[1]) if indices.ndim == 2 else 0,
            "duration_s": round(time.perf_counter() - started, 3),
        },
    )


def _publish_em_arrays(
    store: Any, result: EMResult, recipe_ids: np.ndarray, dense_limit: int
) -> dict[str, str]:
    """The learned cost with its ingredient ids, and the recipe distances (sparse; dense too
    while N is at most ``dense_limit``, unknown pairs as NaN)."""
    n = recipe_ids.size
    graph = result.neighbor_graph(n)
    uris = {
        "ingredient_distances_uri": store.put_array("ingredient-distances-em.npy", result.cost),
        "ingredient_ids_uri": store.put_array("ingredient-distances-em-ids.npy", result.cost_ids),
        "recipe_distances_uri": store.put_arrays(
            "recipe-distances-em.npz",
            data=graph.data, indices=graph.indices, indptr=graph.indptr,
            shape=np.array(graph.shape, dtype=np.int64), recipe_ids=recipe_ids,
        ),
    }
    if n <= dense_limit:
        dense = dense_distances(result, n)
        uris["recipe_distances_dense_uri"] = store.put_array("recipe-distances-em.npy", dense)
        store.put_array("recipe-distances-em-ids.npy", recipe_ids)
    return uris


@dg.asset(
    key=["spaces", "em_fit"],
    group_name=GROUP,
    ins={"rolled": dg.AssetIn(key=["spaces", "rolled_up_recipes"]), "catalog": CATALOG_IN},
    required_resource_keys=HEAVY,
    kinds={"python", "numba", "s3"},
    description=(
        "EM-learned ingredient costs and recipe earth mover's distances: cost starts as the "
        "tree distance, then E (optimal transport between candidate neighbours) and M "
        "(BLOSUM-like log-odds) steps. Publishes ingredient-distances-em.npy (+ ids) and "
        "recipe-distances-em.npz (CSR kNN graph with recipe ids)."
    ),
    check_specs=[
        dg.AssetCheckSpec("distances_valid", asset=["spaces", "em_fit"],
                          description="Costs and recipe distances symmetric, non-negative, "
                          "finite, zero diagonal."),
    ],
)
def em_fit(context: dg.AssetExecutionContext, rolled: RecipeMatrix, catalog: IngredientCatalog):
    params: AnalyticsParams = context.resources.params
    started = time.perf_counter()
    cost_ids = catalog.tree.ancestors_closure(rolled.ingredient_ids)
    cost = tree_distance_matrix(catalog.tree, cost_ids, edge_weight=params.edge_weight)
    context.log.info(
        f"EM fit: {rolled.n_recipes} recipes, {cost_ids.size} ingredients in the cost matrix"
    )

    def progress(stage: str, done: int, total: int) -> None:
        context.log.info(f"EM fit: {stage} {done}/{total}")

    metric = TreeMetric.from_tree(catalog.tree, cost_ids, params.edge_weight)
    result = fit_em(
        rolled, cost_ids, cost, params.em_params(), progress=progress, tree_metric=metric
    )
    uris = _publish_em_arrays(
        context.resources.store, result, rolled.recipe_ids, params.dense_distance_limit
    )
    c = result.cost
    valid = bool(
        np.all(np.isfinite(c)) and np.allclose(c, c.T) and np.all(c >= 0)
        and np.all(np.diag(c) == 0) and np.all(np.isfinite(result.distances))
        and np.all(result.distances >= 0) and np.all(result.pair_i != result.pair_j)
    )
    yield dg.Output(
        result,
        metadata={
            "recipes": rolled.n_recipes,
            "pairs": int(result.distances.size),
            "iterations": result.iterations,
            "converged": result.converged,
            "relative_change": [round(float(h), 6) for h in result.history],
            "duration_s": round(time.perf_counter() - started, 3),
            **{k: dg.MetadataValue.url(v) for k, v in uris.items()},
        },
    )
    yield dg.AssetCheckResult(check_name="distances_valid", passed=valid)


def _space_checks(volumes: RecipeVolumes, rows: list[dict]) -> list[dg.AssetCheckResult]:
    ids = np.array([r["recipe_id"] for r in rows], dtype=np.int64)
    coords = np.array([[r["x"], r["y"]] for r in rows], dtype=np.float64).reshape(-1, 2)
    once = bool(
        np.unique(ids).size == ids.size
        and np.array_equal(np.sort(ids), volumes.matrix.recipe_ids)
    )
    return [
        dg.AssetCheckResult(check_name="each_recipe_once", passed=once,
                            metadata={"rows": len(rows)}),
        dg.AssetCheckResult(check_name="coordinates_finite",
                            passed=bool(np.all(np.isfinite(coords)))),
    ]


def _space_check_specs(key: list[str]) -> list[dg.AssetCheckSpec]:
    return [
        dg.AssetCheckSpec("each_recipe_once", asset=key,
                          description="Every recipe with ingredients appears exactly once."),
        dg.AssetCheckSpec("coordinates_finite", asset=key,
                          description="Every coordinate is a finite number."),
    ]


def _publish_space(
    context: dg.AssetExecutionContext, analytics_type: str, title: str,
    volumes: RecipeVolumes, coords: np.ndarray, started: float,
) -> dg.MaterializeResult:
    rows = space_rows(volumes, coords)
    uri = context.resources.store.publish_json(analytics_type, rows)
    return dg.MaterializeResult(
        metadata={
            "rows": len(rows),
            "uri": dg.MetadataValue.url(uri),
            "duration_s": round(time.perf_counter() - started, 3),
            "preview": scatter_preview(coords, title),
        },
        check_results=_space_checks(volumes, rows),
    )


@dg.asset(
    key=["spaces", "cocktail_space"],
    group_name=GROUP,
    ins={"volumes": VOLUMES_IN, "knn": dg.AssetIn(key=["spaces", "manhattan_neighbors"])},
    required_resource_keys=HEAVY,
    kinds={"python", "umap", "s3"},
    description="2-D UMAP of the recipes under Manhattan distance between volume fractions "
    "(n_neighbors 5, min_dist 0.05, seed 42). Published as cocktail-space.json.",
    check_specs=_space_check_specs(["spaces", "cocktail_space"]),
)
def cocktail_space(
    context: dg.AssetExecutionContext, volumes: RecipeVolumes, knn: KnnGraph
) -> dg.MaterializeResult:
    started = time.perf_counter()
    enable_umap_kernel_caching()
    coords = embed_knn(knn.indices, knn.distances)
    return _publish_space(context, "cocktail-space", "cocktail-space", volumes, coords, started)


@dg.asset(
    key=["spaces", "cocktail_space_em"],
    group_name=GROUP,
    ins={"volumes": VOLUMES_IN, "fit": dg.AssetIn(key=["spaces", "em_fit"])},
    required_resource_keys=HEAVY,
    kinds={"python", "umap", "s3"},
    description="2-D UMAP of the recipes on the EM earth mover's distances, from the "
    "nearest-neighbour graph of the computed pairs. Published as cocktail-space-em.json.",
    check_specs=_space_check_specs(["spaces", "cocktail_space_em"]),
)
def cocktail_space_em(
    context: dg.AssetExecutionContext, volumes: RecipeVolumes, fit: EMResult
) -> dg.MaterializeResult:
    started = time.perf_counter()
    enable_umap_kernel_caching()
    coords = embed_em(fit, volumes.matrix.n_recipes)
    return _publish_space(
        context, "cocktail-space-em", "cocktail-space-em", volumes, coords, started
    )


@dg.asset(
    key=RECIPE_SIMILARITY_KEY,
    group_name=GROUP,
    ins={"fit": dg.AssetIn(key=["spaces", "em_fit"]), "volumes": VOLUMES_IN, "catalog": CATALOG_IN},
    kinds={"python", "postgres"},
    description="Per recipe its nearest recipes by EM distance with the 3 largest ingredient "
    "swaps, written to the recipe_similarity table (replaced in one transaction).",
    check_specs=[
        dg.AssetCheckSpec("one_row_per_recipe", asset=RECIPE_SIMILARITY_KEY,
                          description="One row per recipe of the space, no duplicates."),
    ],
)
def recipe_similarity(
    context: dg.AssetExecutionContext,
    database: CocktailDatabase,
    params: AnalyticsParams,
    fit: EMResult,
    volumes: RecipeVolumes,
    catalog: IngredientCatalog,
) -> dg.MaterializeResult:
    started = time.perf_counter()
    rows = iter_similarity_rows(fit, volumes, catalog, params.similarity_neighbors)
    staged = 0
    with database.connect() as conn, conn.transaction():
        conn.execute(queries.SIMILARITY_STAGING)
        with conn.cursor().copy(queries.SIMILARITY_COPY) as copy:
            for recipe_id, name, neighbors in rows:
                copy.write_row((recipe_id, name, json.dumps(neighbors, ensure_ascii=False)))
                staged += 1
        conn.execute(queries.SIMILARITY_SWAP_DELETE)
        written = conn.execute(queries.SIMILARITY_SWAP_INSERT).rowcount
        total, distinct = conn.execute(queries.SIMILARITY_COUNTS).fetchone()
    context.log.info(f"recipe_similarity: {written} rows written")
    return dg.MaterializeResult(
        metadata={
            "rows": written,
            "table": f"{database.describe()}: recipe_similarity",
            "duration_s": round(time.perf_counter() - started, 3),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name="one_row_per_recipe",
                passed=bool(total == distinct == written),
                metadata={"rows": total, "distinct": distinct, "expected": staged},
            )
        ],
    )
