"""One-level rollup of substitutable leaf ingredients into their parents.

See docs/analytics.md#rollup for the rule and why only one level is rolled up.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from barcart._validate import check_fractions
from barcart.tree import ROOT, IngredientTree
from barcart.volumes import RecipeMatrix


def rollup_targets(tree: IngredientTree, allow_substitution: np.ndarray) -> np.ndarray:
    """(n,) int64 id each tree ingredient is replaced by (itself when not rolled up)."""
    allow = np.asarray(allow_substitution)
    if allow.shape != tree.ids.shape or allow.dtype != np.bool_:
        raise ValueError(
            f"allow_substitution must be a bool array with one entry per tree id "
            f"({tree.ids.shape[0]}), got dtype {allow.dtype} shape {allow.shape}"
        )
    roll = tree.is_leaf() & allow & (tree.parent_ids != ROOT)
    return np.where(roll, tree.parent_ids, tree.ids)


def rollup(
    matrix: RecipeMatrix, tree: IngredientTree, allow_substitution: np.ndarray
) -> RecipeMatrix:
    """Replace each substitutable leaf by its parent and sum the fractions that coincide.

    Parameters
    ----------
    matrix : RecipeMatrix, not rolled up.
    tree : IngredientTree containing every ``matrix.ingredient_ids``.
    allow_substitution : (n,) bool, one per ``tree.ids``.

    Returns
    -------
    RecipeMatrix with the same recipes; ``ingredient_ids`` are the ids after rollup. A leaf
    with ``allow_substitution`` and a non-root parent goes to its parent; only one level is
    rolled up, so a parent that is itself substitutable is kept (it is not a leaf).
    """
    check_fractions(matrix.fractions)
    target = rollup_targets(tree, allow_substitution)
    pos = tree._positions(matrix.ingredient_ids)
    new_of_col = target[pos]
    new_ids, col_map = np.unique(new_of_col, return_inverse=True)
    f = matrix.fractions.tocoo()
    out = sp.coo_matrix(
        (f.data, (f.row, col_map[f.col])), shape=(matrix.fractions.shape[0], len(new_ids))
    ).tocsr()
    out.sum_duplicates()
    out.sort_indices()
    return RecipeMatrix(
        recipe_ids=matrix.recipe_ids.copy(), ingredient_ids=new_ids.astype(np.int64), fractions=out
    )
