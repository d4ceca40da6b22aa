"""Shared helpers for the barcart tests: small synthetic EM problems."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from barcart import rollup, synthetic_recipes, tree_distance_matrix
from barcart.volumes import RecipeMatrix

EMCase = tuple[RecipeMatrix, np.ndarray, np.ndarray]


def make_em_case(n_recipes: int, n_ingredients: int = 300, seed: int = 0) -> EMCase:
    """(rolled-up matrix, cost_ids, tree-distance cost) for a synthetic recipe set."""
    tree, allow, matrix = synthetic_recipes(n_recipes, n_ingredients, seed=seed)
    rolled = rollup(matrix, tree, allow)
    ids = tree.ancestors_closure(rolled.ingredient_ids)
    return rolled, ids, tree_distance_matrix(tree, ids)


@pytest.fixture
def em_case() -> Callable[..., EMCase]:
    return make_em_case
