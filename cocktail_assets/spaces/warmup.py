"""Compile every numba kernel a refresh calls, once, into numba's disk cache.

``cocktail-assets compile`` runs this at install (``./dev``) and at image build (the
Dockerfile), so no refresh step compiles: each loads its machine code from the cache
(``NUMBA_CACHE_DIR``). It materializes the real ``spaces/*`` assets in process on a small
synthetic site (the same asset bodies, IO manager and store as a refresh, so the same
functions are compiled for the same argument types), with stand-ins for the two catalog assets
that would otherwise read the database, and shapes recipe_similarity's rows and their COPY
text (``shape.SimilarityCopyText``: compiled too), whose asset writes to the database.

numba keys a cache entry by the function's source, its argument types and the target CPU
(name and features); the Docker image pins the CPU with ``NUMBA_CPU_NAME`` and
``NUMBA_CPU_FEATURES`` at build and at run time, so an image built anywhere matches Graviton3.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable

import dagster as dg
import numpy as np
from barcart import IngredientTree
from barcart.synthetic import synthetic_recipes

from cocktail_assets.catalog.assets import INGREDIENT_CATALOG_KEY, RECIPE_VOLUMES_KEY
from cocktail_assets.catalog.load import IngredientCatalog, RecipeVolumes
from cocktail_assets.compiled import Compiles, enable_umap_kernel_caching, recording_compiles
from cocktail_assets.resources.io_manager import ArtifactIOManager
from cocktail_assets.resources.params import AnalyticsParams
from cocktail_assets.resources.store import AnalyticsStore

# Enough recipes for every code path a refresh takes: UMAP's own layout (not the small-N
# fallback), EM candidates beyond K, more than one block of the parallel kernels.
WARMUP_RECIPES = 400
WARMUP_INGREDIENTS = 150


def synthetic_site(n_recipes: int = WARMUP_RECIPES) -> tuple[IngredientCatalog, RecipeVolumes]:
    """The catalog assets' outputs for a synthetic site, built in memory."""
    tree, allow, matrix = synthetic_recipes(n_recipes, WARMUP_INGREDIENTS, seed=7)
    names = np.array([f"ingredient {i}" for i in tree.ids], dtype=str)
    catalog = IngredientCatalog(
        tree=tree, names=names, paths=_paths(tree), allow_substitution=allow,
    )
    fractions = matrix.fractions.tocsr()
    per_row = np.diff(fractions.indptr)
    list_names = catalog.name_of(matrix.ingredient_ids[fractions.indices])
    volumes = RecipeVolumes(
        matrix=matrix,
        recipe_names=np.array([f"recipe {r}" for r in matrix.recipe_ids], dtype=str),
        list_ptr=np.concatenate([[0], np.cumsum(per_row)]).astype(np.int64),
        list_names=list_names,
        expected_recipe_ids=matrix.recipe_ids,
    )
    return catalog, volumes


def _paths(tree: IngredientTree) -> np.ndarray:
    """Each ingredient's materialised path (``/root/.../id/``), which em_fit's check reads."""
    position = {int(i): k for k, i in enumerate(tree.ids)}
    paths = []
    for k in range(tree.ids.size):
        chain = []
        while k >= 0:
            chain.append(int(tree.ids[k]))
            parent = int(tree.parent_ids[k])
            k = position[parent] if parent >= 0 else -1
        paths.append("/" + "/".join(map(str, reversed(chain))) + "/")
    return np.array(paths, dtype=str)


def compile_kernels(progress: Callable[[str], None] = print) -> Compiles:
    """Run the spaces' asset bodies once so numba compiles (or loads) everything they call."""
    from cocktail_assets.spaces import assets as spaces
    from cocktail_assets.spaces.shape import similarity_copy_chunks, similarity_table

    catalog, volumes = synthetic_site()

    @dg.asset(key=INGREDIENT_CATALOG_KEY)
    def ingredient_catalog() -> IngredientCatalog:
        return catalog

    @dg.asset(key=RECIPE_VOLUMES_KEY)
    def recipe_volumes() -> RecipeVolumes:
        return volumes

    heavy = [a for a in dg.load_assets_from_modules([spaces])
             if spaces.RECIPE_SIMILARITY_KEY not in a.keys]
    started = time.perf_counter()
    enable_umap_kernel_caching()
    with recording_compiles() as compiled, tempfile.TemporaryDirectory() as folder:
        store = AnalyticsStore(local_dir=folder)
        params = AnalyticsParams()
        result = dg.materialize(
            [ingredient_catalog, recipe_volumes, *heavy],
            resources={
                "store": store, "params": params, "io_manager": ArtifactIOManager(store=store),
                "step_launcher": dg.ResourceDefinition.none_resource(),
            },
            # Only problems reach the terminal: this run is a means, not a result.
            run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
        )
        fit = result.output_for_node(spaces.em_fit.op.name)
        table = similarity_table(fit, volumes, catalog, params.similarity_neighbors)
        text = b"".join(similarity_copy_chunks(table, "2000-01-01 00:00:00", table.rows))
        progress(f"compile: ran {len(heavy)} spaces steps and shaped {table.rows.size} "
                 f"similarity rows ({len(text)} bytes) on {volumes.matrix.n_recipes} "
                 "synthetic recipes")
    progress(f"compile: {len(compiled)} numba function(s) compiled in "
             f"{time.perf_counter() - started:.1f} s (the rest loaded from the cache)")
    return compiled
