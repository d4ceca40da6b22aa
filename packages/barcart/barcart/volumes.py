"""Row volumes in ml and per-recipe volume fractions (docs/analytics.md#volume-rule)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from barcart._validate import as_1d

TO_TOP_ML = 90.0
TO_RINSE_ML = 5.0
EACH_ML = 1.0
MISSING_AMOUNT_ML = 1.0


def row_volumes_ml(
    amounts: np.ndarray, unit_names: Sequence[str | None], conversions: np.ndarray
) -> np.ndarray:
    """Volume in ml of each ``recipe_ingredients`` row.

    Parameters
    ----------
    amounts : (R,) float array
        The row's amount; NaN where SQL NULL.
    unit_names : (R,) sequence of str or None
        The unit's name; None where the row has no unit.
    conversions : (R,) float array
        The unit's ``conversion_to_ml``; NaN where NULL or no unit.

    Returns
    -------
    (R,) float64 array, ml. The volume rule (docs/analytics.md#volume-rule), first match wins:
    'to top' -> 90, 'to rinse' -> 5, 'each' (any case) -> 1, amount and conversion present ->
    amount * conversion, amount present -> amount, amount NULL -> 1. Unit names other than
    'each' are matched exactly.
    """
    amt = as_1d("amounts", amounts, np.float64)
    conv = as_1d("conversions", conversions, np.float64)
    names = list(unit_names)
    if not (len(amt) == len(conv) == len(names)):
        raise ValueError(
            f"amounts, unit_names and conversions differ in length: "
            f"{len(amt)}, {len(names)}, {len(conv)}"
        )
    to_top = np.array([u == "to top" for u in names], dtype=bool)
    to_rinse = np.array([u == "to rinse" for u in names], dtype=bool)
    each = np.array([u is not None and u.lower() == "each" for u in names], dtype=bool)
    has_amt = ~np.isnan(amt)
    has_conv = ~np.isnan(conv)
    return np.select(
        [to_top, to_rinse, each, has_amt & has_conv, has_amt],
        [TO_TOP_ML, TO_RINSE_ML, EACH_ML, amt * np.where(has_conv, conv, 0.0), amt],
        default=MISSING_AMOUNT_ML,
    ).astype(np.float64)


@dataclass(frozen=True)
class RecipeMatrix:
    """Recipes as volume-fraction distributions over ingredients.

    Attributes
    ----------
    recipe_ids : (N,) int64, sorted ascending.
    ingredient_ids : (m,) int64, sorted ascending; only ingredients with a non-zero fraction in
        some recipe.
    fractions : (N, m) float64 CSR; each row sums to 1, sorted indices, no explicit zeros.
    """

    recipe_ids: np.ndarray
    ingredient_ids: np.ndarray
    fractions: sp.csr_matrix

    @property
    def n_recipes(self) -> int:
        return int(self.recipe_ids.shape[0])


def volume_fractions(
    recipe_ids: np.ndarray, ingredient_ids: np.ndarray, volumes_ml: np.ndarray
) -> RecipeMatrix:
    """Build the recipe x ingredient volume-fraction matrix.

    Parameters
    ----------
    recipe_ids, ingredient_ids : (R,) int arrays, one entry per ``recipe_ingredients`` row.
    volumes_ml : (R,) float array, the row volumes (see :func:`row_volumes_ml`).

    Returns
    -------
    RecipeMatrix
        Duplicate (recipe, ingredient) rows are summed first; a recipe whose volumes sum to 0
        is left out (it has no distribution to compare, like a recipe without rows: see
        docs/analytics.md#volume-rule), and zero-volume ingredients are not stored.

    Raises
    ------
    ValueError
        Naming the row index of a negative or NaN volume, or on length mismatch.
    """
    rid = as_1d("recipe_ids", recipe_ids, np.int64)
    iid = as_1d("ingredient_ids", ingredient_ids, np.int64)
    vol = as_1d("volumes_ml", volumes_ml, np.float64)
    if not (len(rid) == len(iid) == len(vol)):
        raise ValueError(
            f"recipe_ids, ingredient_ids and volumes_ml differ in length: "
            f"{len(rid)}, {len(iid)}, {len(vol)}"
        )
    bad = ~np.isfinite(vol) | (vol < 0)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"volumes_ml row {row} is {float(vol[row])!r}; volumes must be finite and >= 0"
        )
    recipes, r_idx = np.unique(rid, return_inverse=True)
    totals = np.bincount(r_idx, weights=vol, minlength=len(recipes))
    keep_recipe = totals > 0
    keep_row = keep_recipe[r_idx] & (vol > 0)
    kept_recipes = recipes[keep_recipe]
    rows = np.searchsorted(kept_recipes, rid[keep_row])
    ings, cols = np.unique(iid[keep_row], return_inverse=True)
    frac = vol[keep_row] / totals[r_idx[keep_row]]
    mat = sp.coo_matrix(
        (frac, (rows, cols)), shape=(len(kept_recipes), len(ings))
    ).tocsr()  # sums duplicates
    mat.sum_duplicates()
    mat.sort_indices()
    return RecipeMatrix(
        recipe_ids=kept_recipes.astype(np.int64),
        ingredient_ids=ings.astype(np.int64),
        fractions=mat.astype(np.float64),
    )
