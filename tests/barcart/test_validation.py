"""Bad input is rejected at the public boundary with a message naming the culprit."""

import dataclasses

import numpy as np
import pytest
import scipy.sparse as sp
from barcart import (
    EMParams,
    RecipeMatrix,
    TreeMetric,
    embed_em,
    emd_dense,
    emd_pairs,
    fit_em,
    nearest_neighbors,
    rollup,
    tree_emd_pairs,
    volume_fractions,
)
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


# --- index arrays handed to compiled kernels (which do not bounds-check) -------------------

F3 = sp.csr_matrix(np.array([[0.5, 0.5, 0.0], [0.0, 0.25, 0.75], [1.0, 0.0, 0.0]]))
METRIC = TreeMetric(np.array([-1, 0, -1, 2]), np.ones(4))
COST4 = METRIC.matrix()
COLS = np.array([0, 1, 3])
GOOD_I, GOOD_J = np.array([0, 0, 1]), np.array([1, 2, 2])


def _emd(f=F3, cols=COLS, pi=GOOD_I, pj=GOOD_J):
    return emd_pairs(f, cols, COST4, pi, pj)[0]


def _tree(f=F3, cols=COLS, pi=GOOD_I, pj=GOOD_J):
    return tree_emd_pairs(f, cols, METRIC, pi, pj)


PAIR_FUNCTIONS = pytest.mark.parametrize("fn", [_emd, _tree], ids=["emd_pairs", "tree_emd_pairs"])


@PAIR_FUNCTIONS
def test_good_pairs_agree(fn):
    np.testing.assert_allclose(fn(), _emd(), atol=1e-12)


@PAIR_FUNCTIONS
@pytest.mark.parametrize(
    "pi, pj, message",
    [
        ([0, 0, 1], [1, 2, 3], r"pair_j\[2\] = 3 is not a row of fractions \(valid: 0 to 2\)"),
        ([0, -1, 1], [1, 2, 2], r"pair_i\[1\] = -1 is not a row of fractions"),
        ([0, 0, 1], [1, 2, 2**40], r"pair_j\[2\] = 1099511627776 is not a row"),
        ([0, 0], [1, 2, 2], "pair_i and pair_j must have equal length, got 2 and 3"),
        ([[0, 0, 1]], [1, 2, 2], r"pair_i must be 1-D, got shape \(1, 3\)"),
        ([0.0, 0.0, 1.0], [1, 2, 2], "pair_i must hold integer indices, got dtype float64"),
        ([0, 0, 1], [True, False, True], "pair_j must hold integer indices, got dtype bool"),
    ],
)
def test_bad_pair_index_named(fn, pi, pj, message):
    with pytest.raises(ValueError, match=message):
        fn(pi=np.array(pi), pj=np.array(pj))


@PAIR_FUNCTIONS
@pytest.mark.parametrize(
    "cols, message",
    [
        ([0, 1, 4], r"col_to_cost\[2\] = 4 is not a row of (cost|the metric) \(valid: 0 to 3\)"),
        ([0, -1, 3], r"col_to_cost\[1\] = -1 is not a row of"),
        ([0, 1], r"one entry per column of fractions \(3\), got shape \(2,\)"),
        ([[0, 1, 3]], r"one entry per column of fractions \(3\), got shape \(1, 3\)"),
        ([0.0, 1.0, 3.0], "col_to_cost must hold integer indices, got dtype float64"),
    ],
)
def test_bad_column_map_named(fn, cols, message):
    with pytest.raises(ValueError, match=message):
        fn(cols=np.array(cols))


def _broken_csr(**parts):
    f = F3.copy()
    for name, value in parts.items():
        setattr(f, name, np.asarray(value, dtype=getattr(f, name).dtype))
    return f


@PAIR_FUNCTIONS
@pytest.mark.parametrize(
    "f, message",
    [
        (_broken_csr(indices=[0, 1, 1, 5, 0]), "fractions row 1 has column index 5 outside 0 to 2"),
        (_broken_csr(indices=[0, 1, 1, -2, 0]), "fractions row 1 has column index -2"),
        (_broken_csr(indptr=[0, 3, 2, 5]), "fractions row 1 has a negative length"),
        (_broken_csr(data=[0.5, 0.5, 0.25, 0.5, 1.0]), "fractions row 1 sums to 0.75"),
        (F3.toarray(), "fractions must be a scipy.sparse CSR matrix"),
    ],
)
def test_bad_fractions_named(fn, f, message):
    with pytest.raises(ValueError, match=message):
        fn(f=f)


def test_emd_pairs_cost_checked():
    with pytest.raises(ValueError, match="square"):
        emd_pairs(F3, COLS, COST4[:, :3], GOOD_I, GOOD_J)
    bad = COST4.copy()
    bad[2, 3] = np.nan
    with pytest.raises(ValueError, match="cost row 2 has a non-finite entry"):
        emd_pairs(F3, COLS, bad, GOOD_I, GOOD_J)


def test_emd_pairs_leaves_the_callers_matrix_alone():
    f = sp.csr_matrix((np.array([0.5, 0.5, 0.75, 0.25, 1.0]), np.array([1, 0, 2, 1, 0]), F3.indptr))
    before = f.indices.copy()
    np.testing.assert_allclose(_emd(f=f), _emd(), atol=1e-12)
    np.testing.assert_array_equal(f.indices, before)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"a": np.array([0.5, -0.5, 1.0])}, r"a\[1\] = -0.5 is negative or non-finite"),
        ({"b": np.array([np.nan, 1.0])}, r"b\[0\] = nan"),
        ({"a": np.zeros(0), "cost": np.zeros((0, 2))}, "a must have at least one entry"),
        ({"b": np.array([0.5, 0.25])}, "a and b differ in total mass"),
        ({"cost": -np.ones((2, 2))}, "cost row 0 has a negative or non-finite entry"),
        ({"row_ids": np.array([7])}, "row_ids and col_ids must have 2 and 2 entries, got 1 and 2"),
        ({"col_ids": np.array([1, 2, 3])}, "got 2 and 3"),
    ],
)
def test_emd_dense_inputs_named(kwargs, message):
    args = {"a": np.array([0.5, 0.5]), "b": np.array([0.25, 0.75]), "cost": np.ones((2, 2))}
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        emd_dense(**args)


@pytest.fixture(scope="module")
def small_fit():
    from tests.barcart.conftest import make_em_case

    matrix, ids, cost = make_em_case(30, n_ingredients=40, seed=0)
    return matrix, fit_em(matrix, ids, cost, EMParams(k_candidates=5, max_iter=1))


def test_recipe_count_smaller_than_the_pairs_named(small_fit):
    """knn, neighbor_graph, embed_em and nearest_neighbors hand the pairs to compiled
    kernels sized by n_recipes: a smaller n_recipes is refused, naming the pair."""
    matrix, res = small_fit
    n = int(res.pair_j.max())  # the largest row is then out of range
    q = int(np.flatnonzero(res.pair_j == n)[0])
    message = rf"pair_j\[{q}\] = {n} is not a row of the recipes \(valid: 0 to {n - 1}\)"
    for call in (
        lambda: res.knn(n, 3),
        lambda: res.neighbor_graph(n),
        lambda: embed_em(res, n),
        lambda: nearest_neighbors(res, n),
    ):
        with pytest.raises(ValueError, match=message):
            call()
    with pytest.raises(ValueError, match="k must be an integer >= 1"):
        res.knn(matrix.n_recipes, 0)
    assert res.knn(matrix.n_recipes, 3)[0].shape == (matrix.n_recipes, 3)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda p: {"ptr": p.ptr[:-1]}, "plans.ptr must have one entry per pair plus one"),
        (lambda p: {"ptr": p.ptr + 1}, "plans.ptr must run from 0 to the number of flows"),
        (lambda p: {"ptr": np.r_[p.ptr[0], p.ptr[2], p.ptr[1], p.ptr[3:]]}, "decreases at pair"),
        (lambda p: {"mass": p.mass[:-1]}, "must be 1-D of equal length"),
        (lambda p: {"source": np.r_[p.source[:-1], 10_000].astype(np.int32)},
         r"plans.source\[\d+\] = 10000 is not a row of the cost"),
    ],
)
def test_inconsistent_plans_named(small_fit, change, message):
    matrix, res = small_fit
    plans = dataclasses.replace(res.plans, **change(res.plans))
    with pytest.raises(ValueError, match=message):
        nearest_neighbors(dataclasses.replace(res, plans=plans), matrix.n_recipes)
