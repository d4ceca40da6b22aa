"""Cocktail-space assets: from volume fractions to the two 2-D maps and recipe_similarity.

The rows and arrays they publish are shaped in ``shape.py``; this module declares the assets,
their checks and where each result goes.

The heavy steps (the EM fit and both UMAP embeddings) require the ``step_launcher`` resource:
in production it runs them on AWS Batch, in the embedded default it is a none-resource and they
run in-process. They read and write only the analytics store, never the database.
"""


import time
from collections.abc import Iterator
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

from cocktail_assets.batch.events import step_placement
from cocktail_assets.catalog.assets import CATALOG_IN, VOLUMES_IN
from cocktail_assets.catalog.load import IngredientCatalog, RecipeVolumes
from cocktail_assets.checks import (
    PUBLISHED,
    error_check,
    gate,
    repeated_or_missing,
    verdict,
    warn_check,
)
from cocktail_assets.compiled import enable_umap_kernel_caching
from cocktail_assets.previews import preview_metadata, scatter_png
from cocktail_assets.resources.database import CocktailDatabase
from cocktail_assets.resources.params import AnalyticsParams
from cocktail_assets.spaces.shape import (
    dense_distances,
    space_rows,
)
from cocktail_assets.spaces.similarity_table import write_similarity
from cocktail_assets.spaces.types import KnnGraph

GROUP = "spaces"
HEAVY = {"step_launcher", "store", "params"}
EM_FIT_KEY = dg.AssetKey([GROUP, "em_fit"])
SPACE_KEY = dg.AssetKey([GROUP, "cocktail_space"])
SPACE_EM_KEY = dg.AssetKey([GROUP, "cocktail_space_em"])
RECIPE_SIMILARITY_KEY = dg.AssetKey([GROUP, "recipe_similarity"])
# Tolerances of the checks on floating-point results.
SYMMETRY_TOL = 1e-9


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
            "dagster/row_count": rolled.n_recipes,
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
            "dagster/row_count": int(indices.shape[0]),
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


def cost_ids_by_path(rolled: RecipeMatrix, catalog: IngredientCatalog) -> np.ndarray:
    """The ingredients the rolled-up recipes use and all their ancestors, read off the
    ingredients' path strings: a second path to the ids the EM cost matrix must have."""
    used = rolled.ingredient_ids[np.unique(rolled.fractions.tocsr().indices)]
    paths = catalog.paths[catalog.positions(used)] if used.size else []
    return np.array(
        sorted({int(x) for p in paths for x in str(p).strip("/").split("/") if x}), np.int64
    )


def em_fit_checks(
    result: EMResult, rolled: RecipeMatrix, catalog: IngredientCatalog, max_iter: int
) -> list[dg.AssetCheckResult]:
    """The EM fit's checks on its result in memory, before any array is written."""
    c, ids = np.asarray(result.cost, dtype=np.float64), np.asarray(result.cost_ids)
    square = c.ndim == 2 and c.shape == (ids.size, ids.size)
    if square:
        with np.errstate(invalid="ignore"):
            bad_row = (
                ~np.isfinite(c).all(axis=1) | (c < 0).any(axis=1)
                | ~(np.abs(c - c.T) <= SYMMETRY_TOL).all(axis=1) | (np.diag(c) != 0)
            )
        cost_bad = ids[bad_row].tolist()
    else:
        cost_bad = [f"shape {c.shape} for {ids.size} ids"]
    n = rolled.n_recipes
    pi, pj, d = result.pair_i, result.pair_j, np.asarray(result.distances, dtype=np.float64)
    in_range = (pi >= 0) & (pi < n) & (pj >= 0) & (pj < n)
    with np.errstate(invalid="ignore"):
        bad_pair = ~in_range | (pi == pj) | ~np.isfinite(d) | (d < 0)
    rid = rolled.recipe_ids
    pairs = [
        [int(rid[i]) if 0 <= i < n else int(i), int(rid[j]) if 0 <= j < n else int(j)]
        for i, j in zip(pi[bad_pair], pj[bad_pair], strict=True)
    ]
    last = round(float(result.history[-1]), 6) if result.history else None
    return [
        verdict("cost_valid", cost_bad,
                "ingredients whose cost row is not finite, non-negative, symmetric with a zero "
                "diagonal"),
        verdict("cost_ids_match_rollup",
                repeated_or_missing(ids.tolist(), cost_ids_by_path(rolled, catalog).tolist()),
                "ingredients missing from, repeated in or unexpected in the cost matrix"),
        verdict("distances_valid", pairs,
                "recipe pairs (recipe ids) with a non-finite or negative distance, a recipe "
                "paired with itself or out of range"),
        verdict("converged", [] if result.converged else [last],
                f"not converged within {max_iter} iterations; last relative change",
                severity=dg.AssetCheckSeverity.WARN,
                metadata={"iterations": result.iterations}),
    ]


@dg.asset(
    key=EM_FIT_KEY,
    group_name=GROUP,
    ins={"rolled": dg.AssetIn(key=["spaces", "rolled_up_recipes"]), "catalog": CATALOG_IN},
    required_resource_keys=HEAVY,
    kinds={"python", "numba", "s3"},
    tags=PUBLISHED,
    description=(
        "EM-learned ingredient costs and recipe earth mover's distances: cost starts as the "
        "tree distance, then E (optimal transport between candidate neighbours) and M "
        "(BLOSUM-like log-odds) steps. Publishes ingredient-distances-em.npy (+ ids) and "
        "recipe-distances-em.npz (CSR kNN graph with recipe ids)."
    ),
    check_specs=[
        error_check(EM_FIT_KEY, "cost_valid", "The learned cost matrix is square over its "
                    "ids, finite, non-negative, symmetric, with a zero diagonal."),
        error_check(EM_FIT_KEY, "cost_ids_match_rollup", "Its rows are exactly the "
                    "ingredients the rolled-up recipes use and their ancestors (read off the "
                    "ingredients' paths), each once."),
        error_check(EM_FIT_KEY, "distances_valid", "Every recipe distance is finite and "
                    "non-negative, between two different recipes of the space."),
        warn_check(EM_FIT_KEY, "converged", "The EM fit stopped by its tolerance within the "
                   "iteration limit (WARN: the artifact is still published)."),
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
    stages: dict[str, float] = {}  # seconds per EM stage, summed over the iterations
    result = fit_em(
        rolled, cost_ids, cost, params.em_params(), progress=progress, tree_metric=metric,
        timings=stages,
    )
    t0 = time.perf_counter()
    results = em_fit_checks(result, rolled, catalog, params.em_max_iter)
    stages["checks"] = time.perf_counter() - t0
    yield from gate(EM_FIT_KEY, results)
    t0 = time.perf_counter()
    uris = _publish_em_arrays(
        context.resources.store, result, rolled.recipe_ids, params.dense_distance_limit
    )
    stages["publish"] = time.perf_counter() - t0
    yield dg.Output(
        result,
        metadata={
            "dagster/row_count": rolled.n_recipes,
            "dagster/uri": dg.MetadataValue.url(uris["recipe_distances_uri"]),
            "pairs": int(result.distances.size),
            "iterations": result.iterations,
            "converged": result.converged,
            "relative_change": [round(float(h), 6) for h in result.history],
            "duration_s": round(time.perf_counter() - started, 3),
            "stage_seconds": {k: round(v, 3) for k, v in stages.items()},
            "placement": _placement(context),
            **{k: dg.MetadataValue.url(v) for k, v in uris.items()},
        },
    )
    yield from results


def space_checks(volumes: RecipeVolumes, rows: list[dict]) -> list[dg.AssetCheckResult]:
    """A space's checks on the rows about to be published."""
    ids = [r["recipe_id"] for r in rows]
    coords = np.array([[r["x"], r["y"]] for r in rows], dtype=np.float64).reshape(-1, 2)
    finite = np.isfinite(coords).all(axis=1)
    spread = coords[finite]
    collapsed = len(rows) > 1 and (
        spread.shape[0] == 0 or bool(np.all(spread.max(axis=0) - spread.min(axis=0) == 0))
    )
    return [
        verdict("each_recipe_once",
                repeated_or_missing(ids, volumes.expected_recipe_ids.tolist()),
                "recipes missing, repeated or unexpected"),
        verdict("coordinates_finite", [ids[k] for k in np.flatnonzero(~finite)],
                "recipes with a non-finite coordinate"),
        verdict("coordinates_spread", ["all at one point"] if collapsed else [],
                f"{len(rows)} recipes collapsed",
                metadata={"points": len(rows)}),
    ]


def _space_check_specs(key: dg.AssetKey) -> list[dg.AssetCheckSpec]:
    return [
        error_check(key, "each_recipe_once", "Every recipe with a positive volume in the "
                    "database (SQL in the volumes' snapshot) appears exactly once, no other."),
        error_check(key, "coordinates_finite", "Every coordinate is a finite number."),
        error_check(key, "coordinates_spread", "With two or more recipes, the points are not "
                    "all collapsed onto one."),
    ]


def _placement(context: dg.AssetExecutionContext) -> str:
    """Where this heavy step ran and why (AWS Batch or in-process, BATCH_MIN_RECIPES)."""
    return step_placement(
        context.resources.step_launcher, context.get_step_execution_context().step.key
    )


def _publish_space(
    context: dg.AssetExecutionContext, key: dg.AssetKey, analytics_type: str,
    volumes: RecipeVolumes, coords: np.ndarray, started: float,
) -> Iterator[Any]:
    rows = space_rows(volumes, coords)
    results = space_checks(volumes, rows)
    yield from gate(key, results)
    uri = context.resources.store.publish_json(analytics_type, rows)
    yield dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(rows),
            "dagster/uri": dg.MetadataValue.url(uri),
            "duration_s": round(time.perf_counter() - started, 3),
            "placement": _placement(context),
            "preview": preview_metadata(
                context.resources.store, analytics_type,
                scatter_png(coords, analytics_type), analytics_type,
            ),
        },
        check_results=results,
    )


@dg.asset(
    key=SPACE_KEY,
    group_name=GROUP,
    ins={"volumes": VOLUMES_IN, "knn": dg.AssetIn(key=["spaces", "manhattan_neighbors"])},
    required_resource_keys=HEAVY,
    kinds={"python", "umap", "s3"},
    tags=PUBLISHED,
    description="2-D UMAP of the recipes under Manhattan distance between volume fractions "
    "(n_neighbors 5, min_dist 0.05, seed 42). Published as cocktail-space.json.",
    check_specs=_space_check_specs(SPACE_KEY),
)
def cocktail_space(context: dg.AssetExecutionContext, volumes: RecipeVolumes, knn: KnnGraph):
    started = time.perf_counter()
    enable_umap_kernel_caching()
    coords = embed_knn(knn.indices, knn.distances)
    yield from _publish_space(context, SPACE_KEY, "cocktail-space", volumes, coords, started)


@dg.asset(
    key=SPACE_EM_KEY,
    group_name=GROUP,
    ins={"volumes": VOLUMES_IN, "fit": dg.AssetIn(key=["spaces", "em_fit"])},
    required_resource_keys=HEAVY,
    kinds={"python", "umap", "s3"},
    tags=PUBLISHED,
    description="2-D UMAP of the recipes on the EM earth mover's distances, from the "
    "nearest-neighbour graph of the computed pairs. Published as cocktail-space-em.json.",
    check_specs=_space_check_specs(SPACE_EM_KEY),
)
def cocktail_space_em(context: dg.AssetExecutionContext, volumes: RecipeVolumes, fit: EMResult):
    started = time.perf_counter()
    enable_umap_kernel_caching()
    coords = embed_em(fit, volumes.matrix.n_recipes)
    yield from _publish_space(
        context, SPACE_EM_KEY, "cocktail-space-em", volumes, coords, started
    )


@dg.asset(
    key=RECIPE_SIMILARITY_KEY,
    group_name=GROUP,
    ins={"fit": dg.AssetIn(key=["spaces", "em_fit"]), "volumes": VOLUMES_IN, "catalog": CATALOG_IN},
    kinds={"python", "postgres"},
    tags=PUBLISHED,
    description="Per recipe its nearest recipes by EM distance with the 3 largest ingredient "
    "swaps, written to the recipe_similarity table (replaced in one transaction, only when "
    "the rows pass their checks; recipes deleted since the snapshot are left out).",
    check_specs=[
        error_check(RECIPE_SIMILARITY_KEY, "each_recipe_once", "Every recipe with a positive "
                    "volume in the database (SQL in the volumes' snapshot) is exactly one of "
                    "the rows staged for writing, no other."),
        error_check(RECIPE_SIMILARITY_KEY, "neighbors_valid", "Each recipe's neighbours are "
                    "sorted by distance (finite, >= 0), never the recipe itself, with "
                    "transport masses in (0, 1]."),
    ],
)
def recipe_similarity(
    context: dg.AssetExecutionContext,
    database: CocktailDatabase,
    params: AnalyticsParams,
    fit: EMResult,
    volumes: RecipeVolumes,
    catalog: IngredientCatalog,
):
    started = time.perf_counter()
    with database.connect() as conn:
        write = write_similarity(conn, fit, volumes, catalog, params.similarity_neighbors,
                                 progress=context.log.info)
    yield from gate(RECIPE_SIMILARITY_KEY, write.results)
    context.log.info(f"recipe_similarity: {write.written} rows written")
    yield dg.MaterializeResult(
        metadata={
            "dagster/row_count": write.written,
            "dagster/uri": f"postgresql://{database.describe()}?table=recipe_similarity",
            "dagster/table_name": "recipe_similarity",
            "duration_s": round(time.perf_counter() - started, 3),
            # seconds per stage of the write (spaces/similarity_table.py; the stages and
            # their split are what benchmarks/similarity_write_bench.py prints)
            **{f"{stage}_s": round(s, 3) for stage, s in write.seconds.items()},
            **({"toast_compression": write.compression} if write.compression else {}),
        },
        check_results=write.results,
    )
