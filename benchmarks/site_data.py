"""The benchmarks' recipe sets, built in memory the way the site's database would hold them.

- ``sample``: the bundled sample (``cocktail-assets db seed``);
- an integer N: ``cocktail_assets.db.synth.generate(N, seed=0)``, the very data
  ``cocktail-assets db synth --recipes N`` loads (realistic profiles and units, 600 ingredients);
- with ``source="barcart"``, ``barcart.synthetic_recipes(N, 500, seed=0)`` instead (uniform
  Zipf popularity, no units), the library's own generator.

Volumes follow the unit rules of docs/analytics.md#volume-rule (:func:`barcart.row_volumes_ml`),
as the catalog asset does; no database is needed.
"""

from __future__ import annotations

import numpy as np
from barcart import (
    IngredientTree,
    RecipeMatrix,
    row_volumes_ml,
    synthetic_recipes,
    volume_fractions,
)
from barcart.tree import ROOT


def _sample() -> tuple[IngredientTree, np.ndarray, RecipeMatrix]:
    from cocktail_assets.db.sample import read_sample

    s = read_sample()
    ids = {ing.key: i + 1 for i, ing in enumerate(s.ingredients)}
    parents = np.array([ids[g.parent] if g.parent else ROOT for g in s.ingredients])
    allow = np.array([g.allow_substitution for g in s.ingredients], dtype=bool)
    units = {u.name: u for u in s.units}
    recipe_ids = {r.name: i + 1 for i, r in enumerate(s.recipes)}
    rows = s.recipe_ingredients
    conv = [units[r.unit].conversion_to_ml if r.unit else None for r in rows]
    ml = row_volumes_ml(
        np.array([np.nan if r.amount is None else r.amount for r in rows], dtype=float),
        [r.unit for r in rows],
        np.array([np.nan if c is None else c for c in conv], dtype=float),
    )
    matrix = volume_fractions(
        np.array([recipe_ids[r.recipe] for r in rows]),
        np.array([ids[r.ingredient] for r in rows]),
        ml,
    )
    return IngredientTree(np.arange(1, len(ids) + 1), parents), allow, matrix


def _synth(n: int) -> tuple[IngredientTree, np.ndarray, RecipeMatrix]:
    from cocktail_assets.db.synth import UNITS, generate

    s = generate(n, 0)
    units = [UNITS[u] for u in s.row_unit]
    ml = row_volumes_ml(
        s.row_amount,
        [u.name for u in units],
        np.array([np.nan if u.conversion_to_ml is None else u.conversion_to_ml for u in units]),
    )
    ids = np.arange(1, len(s.names) + 1)
    tree = IngredientTree(ids, np.where(s.parent >= 0, s.parent + 1, ROOT))
    matrix = volume_fractions(s.row_recipe + 1, s.row_ingredient + 1, ml)
    return tree, np.asarray(s.allow_substitution, dtype=bool), matrix


def recipe_set(size: str, source: str = "synth") -> tuple[IngredientTree, np.ndarray, RecipeMatrix]:
    """(tree, allow_substitution per tree id, recipe matrix before rollup) for one size."""
    if size == "sample":
        return _sample()
    if source == "barcart":
        return synthetic_recipes(int(size), 500, seed=0)
    if source != "synth":
        raise ValueError(f"unknown data source {source!r}: use 'synth' or 'barcart'")
    return _synth(int(size))
