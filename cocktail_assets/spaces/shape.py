"""Shaping the spaces' results into what is published: artifact rows, similarity rows and
the dense distance matrix. Pure functions of the computed results, no I/O."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
from barcart import EMResult, nearest_neighbors

from cocktail_assets.catalog.load import IngredientCatalog, RecipeVolumes

# (recipe id, recipe name, neighbours as JSON-ready dicts): one row of recipe_similarity.
SimilarityRow = tuple[int, str, list[dict[str, Any]]]


def space_rows(volumes: RecipeVolumes, coords: np.ndarray) -> list[dict[str, Any]]:
    """One artifact row per recipe: id, name, 2-D coordinates and its ingredient list."""
    return [
        {
            "recipe_id": int(volumes.matrix.recipe_ids[r]),
            "recipe_name": str(volumes.recipe_names[r]),
            "x": float(coords[r, 0]),
            "y": float(coords[r, 1]),
            "ingredients": volumes.ingredient_list(r),
        }
        for r in range(volumes.matrix.n_recipes)
    ]


def dense_distances(result: EMResult, n: int) -> np.ndarray:
    """The N x N recipe distances of the computed pairs: 0 on the diagonal, NaN where unknown."""
    dense = np.full((n, n), np.nan)
    np.fill_diagonal(dense, 0.0)
    dense[result.pair_i, result.pair_j] = result.distances
    dense[result.pair_j, result.pair_i] = result.distances
    return dense


def similarity_rows(
    fit: EMResult, volumes: RecipeVolumes, catalog: IngredientCatalog, n: int
) -> list[SimilarityRow]:
    """Per recipe: its nearest recipes by EM distance with the main ingredient swaps."""
    return list(iter_similarity_rows(fit, volumes, catalog, n))


def iter_similarity_rows(
    fit: EMResult, volumes: RecipeVolumes, catalog: IngredientCatalog, n: int
) -> Iterator[SimilarityRow]:
    """:func:`similarity_rows` one recipe at a time: the write streams them into COPY, so the
    JSON-ready dicts of 100,000 recipes x 20 neighbours never sit in memory together."""
    neighbors = nearest_neighbors(fit, volumes.matrix.n_recipes, n=n)
    recipe_ids = volumes.matrix.recipe_ids.tolist()
    recipe_names = [str(name) for name in volumes.recipe_names.tolist()]
    ingredient_names: dict[int, str] = {}  # one catalog lookup per ingredient, not per flow

    def ingredient_name(ingredient_id: int) -> str:
        name = ingredient_names.get(ingredient_id)
        if name is None:
            name = str(catalog.name_of(np.array([ingredient_id]))[0])
            ingredient_names[ingredient_id] = name
        return name

    for r, found in enumerate(neighbors):
        yield (
            int(recipe_ids[r]),
            recipe_names[r],
            [
                {
                    "neighbor_recipe_id": int(recipe_ids[nb.index]),
                    "neighbor_name": recipe_names[nb.index],
                    "distance": float(nb.distance),
                    "transport_plan": [
                        {
                            "from_ingredient_id": int(a),
                            "from_ingredient_name": ingredient_name(int(a)),
                            "to_ingredient_id": int(b),
                            "to_ingredient_name": ingredient_name(int(b)),
                            "mass": float(mass),
                        }
                        for a, b, mass in nb.flows
                    ],
                }
                for nb in found
            ],
        )
