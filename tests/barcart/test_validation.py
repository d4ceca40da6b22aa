"""Bad input is rejected at the public boundary with a message naming the culprit."""

import numpy as np
import pytest
import scipy.sparse as sp
from barcart import EMParams, RecipeMatrix, fit_em, rollup, volume_fractions
from barcart.tree import IngredientTree


@pytest.fixture
def case():
    from tests.barcart.conftest import make_em_case

    return make_em_case(30, n_ingredients=40, seed=0)


def test_negative_volume_row():
    with pytest.raises(ValueError, match="row 1"):
        volume_fractions(np.array([1, 1]), np.array([1, 2]), np.array([1.0, -2.0]))


def test_fraction_row_not_summing_to_one(case):
    matrix, ids, cost = case
    f = matrix.fractions.copy()
    f.data[f.indptr[3]] += 0.1
    bad = RecipeMatrix(matrix.recipe_ids, matrix.ingredient_ids, f)
    with pytest.raises(ValueError, match="row 3"):
        fit_em(bad, ids, cost)
    tree = IngredientTree(ids, np.full(len(ids), -1))
    with pytest.raises(ValueError, match="row 3"):
        rollup(bad, tree, np.zeros(len(ids), dtype=bool))


def test_negative_fraction_row(case):
    matrix, ids, cost = case
    f = matrix.fractions.copy()
    f.data[f.indptr[2]] = -f.data[f.indptr[2]]
    with pytest.raises(ValueError, match="row 2"):
        fit_em(RecipeMatrix(matrix.recipe_ids, matrix.ingredient_ids, f), ids, cost)


def test_fractions_must_be_csr(case):
    matrix, ids, cost = case
    bad = RecipeMatrix(matrix.recipe_ids, matrix.ingredient_ids, sp.csc_matrix(matrix.fractions))
    with pytest.raises(ValueError, match="CSR"):
        fit_em(bad, ids, cost)


def test_cost_not_square(case):
    matrix, ids, cost = case
    with pytest.raises(ValueError, match="square"):
        fit_em(matrix, ids, cost[:, :-1])


def test_cost_wrong_size(case):
    matrix, ids, cost = case
    with pytest.raises(ValueError, match="cost_ids"):
        fit_em(matrix, ids[:-1], cost)


def test_cost_not_symmetric(case):
    matrix, ids, cost = case
    c = cost.copy()
    c[0, 2] += 1.0
    with pytest.raises(ValueError, match=r"symmetric.*\(0, 2\)"):
        fit_em(matrix, ids, c)


@pytest.mark.parametrize("value", [-1.0, np.nan, np.inf])
def test_cost_bad_entry_row(case, value):
    matrix, ids, cost = case
    c = cost.copy()
    c[4, 1] = c[1, 4] = value
    with pytest.raises(ValueError, match="row 1"):
        fit_em(matrix, ids, c)


def test_cost_ids_must_cover_matrix(case):
    matrix, ids, cost = case
    keep = ids != matrix.ingredient_ids[0]
    with pytest.raises(ValueError, match=f"ingredient {matrix.ingredient_ids[0]}"):
        fit_em(matrix, ids[keep], cost[np.ix_(keep, keep)])


@pytest.mark.parametrize(
    "name, value",
    [
        ("k_candidates", 0),
        ("k_neighbors", 0),
        ("max_iter", 0),
        ("top_flows", 0),
        ("k_candidates", 2.5),
        ("tol", -1.0),
        ("beta", np.nan),
        ("alpha", 0.0),
        ("median_target", 0.0),
        ("min_flow_fraction", 1.5),
    ],
)
def test_params_named(name, value):
    with pytest.raises(ValueError, match=name):
        EMParams(**{name: value})
