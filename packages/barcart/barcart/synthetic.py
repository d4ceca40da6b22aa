"""Synthetic recipe data shaped like the real site (for tests, benchmarks and demos)."""

from __future__ import annotations

import numpy as np

from barcart.tree import ROOT, IngredientTree
from barcart.volumes import RecipeMatrix, volume_fractions

_VOLUMES_ML = np.array([1.0, 5.0, 7.5, 15.0, 22.5, 30.0, 45.0, 60.0, 90.0])
_VOLUME_WEIGHTS = np.array([0.05, 0.05, 0.1, 0.2, 0.15, 0.2, 0.15, 0.07, 0.03])


def synthetic_tree(n_ingredients: int = 500, seed: int = 0) -> tuple[IngredientTree, np.ndarray]:
    """A 4-level ingredient tree (ids 1..n) and an allow_substitution flag per id.

    About 2 % of ids are top-level categories, 10 % second level, 30 % third level, the rest
    fourth level; each node picks a random parent one level up.
    """
    if n_ingredients < 4:
        raise ValueError(f"n_ingredients must be >= 4, got {n_ingredients}")
    rng = np.random.default_rng(seed)
    sizes = np.maximum(1, np.round(np.array([0.02, 0.10, 0.30]) * n_ingredients).astype(int))
    sizes = np.append(sizes, n_ingredients - sizes.sum())
    ids = np.arange(1, n_ingredients + 1, dtype=np.int64)
    parents = np.full(n_ingredients, ROOT, dtype=np.int64)
    start = 0
    prev: np.ndarray | None = None
    for size in sizes:
        level = ids[start : start + size]
        if prev is not None:
            parents[start : start + size] = rng.choice(prev, size=size)
        prev = level
        start += size
    allow = rng.random(n_ingredients) < 0.5
    return IngredientTree(ids, parents), allow


def synthetic_recipes(
    n_recipes: int, n_ingredients: int = 500, seed: int = 0
) -> tuple[IngredientTree, np.ndarray, RecipeMatrix]:
    """Random recipes: 3-8 ingredients each, Zipf-like ingredient popularity, bar volumes.

    About 2 % of recipes are exact copies of another (ties and zero distances), so the
    edge cases of the real data are always present.

    Returns
    -------
    tree : IngredientTree; allow_substitution : (n_ingredients,) bool;
    matrix : RecipeMatrix (not rolled up), recipe ids 1..n_recipes.
    """
    tree, allow = synthetic_tree(n_ingredients, seed)
    rng = np.random.default_rng(seed + 1)
    popularity = 1.0 / np.arange(1, n_ingredients + 1) ** 0.9
    popularity = rng.permutation(popularity)
    popularity /= popularity.sum()
    rows_r: list[np.ndarray] = []
    rows_i: list[np.ndarray] = []
    rows_v: list[np.ndarray] = []
    for r in range(n_recipes):
        if r > 10 and rng.random() < 0.02:
            src = rng.integers(0, r)
            rows_r.append(np.full(rows_i[src].shape, r + 1, dtype=np.int64))
            rows_i.append(rows_i[src].copy())
            rows_v.append(rows_v[src].copy())
            continue
        k = int(rng.integers(3, 9))
        ing = rng.choice(tree.ids, size=k, replace=False, p=popularity)
        vol = rng.choice(_VOLUMES_ML, size=k, p=_VOLUME_WEIGHTS)
        rows_r.append(np.full(k, r + 1, dtype=np.int64))
        rows_i.append(ing)
        rows_v.append(vol)
    if n_recipes == 0:
        empty = np.zeros(0, dtype=np.int64)
        return tree, allow, volume_fractions(empty, empty, np.zeros(0))
    matrix = volume_fractions(
        np.concatenate(rows_r), np.concatenate(rows_i), np.concatenate(rows_v)
    )
    return tree, allow, matrix
