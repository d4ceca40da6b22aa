"""EMD under a tree metric in closed form, and the EM fit's first E-step that uses it."""

import numpy as np
import ot
import pytest
import scipy.sparse as sp
from barcart import (
    EMParams,
    IngredientTree,
    TreeMetric,
    fit_em,
    rollup,
    synthetic_recipes,
    tree_distance_matrix,
    tree_emd_pairs,
)
from barcart.tree import ROOT
from hypothesis import given, settings
from hypothesis import strategies as st


@st.composite
def _tree_problem(draw):
    """A random weighted forest on p rows (a row's parent comes before it) and a few random
    distributions over its rows, some sharing rows, some identical, some on one row."""
    p = draw(st.integers(1, 14))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    parent = np.array(
        [-1 if i == 0 or rng.random() < 0.3 else rng.integers(0, i) for i in range(p)]
    )
    weight = rng.choice([0.5, 1.0, 2.0], size=p) if draw(st.booleans()) else rng.random(p) + 0.1
    n = draw(st.integers(2, 8))
    dense = np.zeros((n, p))
    for r in range(n):
        cols = rng.choice(p, size=int(rng.integers(1, min(p, 5) + 1)), replace=False)
        dense[r, cols] = (
            rng.integers(1, 4, size=cols.size)
            if draw(st.booleans())
            else rng.random(cols.size) + 0.01
        )
    dense[rng.integers(n)] = dense[0]
    dense /= dense.sum(axis=1, keepdims=True)
    return TreeMetric(parent, weight), dense


@settings(max_examples=200, deadline=None)
@given(_tree_problem())
def test_closed_form_equals_optimal_transport(case):
    metric, dense = case
    cost = metric.matrix()
    n = dense.shape[0]
    pi, pj = np.triu_indices(n, 1)
    got = tree_emd_pairs(sp.csr_matrix(dense), np.arange(dense.shape[1]), metric, pi, pj)
    for q in range(pi.size):
        want = ot.emd2(dense[pi[q]], dense[pj[q]], cost)
        assert got[q] == pytest.approx(want, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("weight", [1.0, 0.7, 3.0])
def test_metric_from_tree_is_the_tree_distance(weight):
    tree, allow, matrix = synthetic_recipes(200, 120, seed=4)
    ids = tree.ancestors_closure(rollup(matrix, tree, allow).ingredient_ids)
    metric = TreeMetric.from_tree(tree, ids, weight)
    np.testing.assert_allclose(metric.matrix(), tree_distance_matrix(tree, ids, weight), atol=1e-12)


def test_bad_metrics_are_refused_with_a_reason():
    with pytest.raises(ValueError, match="cycle"):
        TreeMetric(np.array([1, 0]), np.ones(2))
    with pytest.raises(ValueError, match="root"):
        TreeMetric(np.array([-1, 5]), np.ones(2))
    with pytest.raises(ValueError, match="> 0"):
        TreeMetric(np.array([-1, 0]), np.array([1.0, 0.0]))
    tree = IngredientTree(np.array([1, 2, 3]), np.array([ROOT, 1, 2]))
    with pytest.raises(ValueError, match="parent of ingredient 3 is not in cost_ids"):
        TreeMetric.from_tree(tree, np.array([1, 3]))


def test_bad_pair_inputs_are_refused():
    metric = TreeMetric(np.array([-1, 0, 0]), np.ones(3))
    f = sp.csr_matrix(np.array([[0.5, 0.5, 0.0], [0.0, 0.0, 1.0]]))
    with pytest.raises(ValueError, match=r"col_to_cost\[2\] = 3 is not a row of the metric"):
        tree_emd_pairs(f, np.array([0, 1, 3]), metric, np.array([0]), np.array([1]))
    with pytest.raises(ValueError, match=r"pair_j\[0\] = 2 is not a row of fractions"):
        tree_emd_pairs(f, np.arange(3), metric, np.array([0]), np.array([2]))
    assert tree_emd_pairs(f, np.arange(3), metric, np.array([0]), np.array([1]))[0] == 1.5  # 0.5 x 1 + 0.5 x 2


def _case(n: int, seed: int):
    tree, allow, matrix = synthetic_recipes(n, 200, seed=seed)
    rolled = rollup(matrix, tree, allow)
    ids = tree.ancestors_closure(rolled.ingredient_ids)
    return rolled, ids, tree_distance_matrix(tree, ids), TreeMetric.from_tree(tree, ids)


@pytest.mark.parametrize(
    "params",
    [
        EMParams(k_candidates=20, max_iter=3, tol=0.0),  # later iterations use plain E-steps
        EMParams(k_candidates=20, max_iter=1),  # the only iteration: every plan solved
        EMParams(k_candidates=20, tol=1e9),  # stops after the first: plans completed
    ],
)
def test_fit_with_the_tree_metric_gives_the_same_result(params):
    rolled, ids, cost, metric = _case(300, seed=2)
    plain = fit_em(rolled, ids, cost, params)
    fast = fit_em(rolled, ids, cost, params, tree_metric=metric)
    assert fast.iterations == plain.iterations and fast.converged == plain.converged
    np.testing.assert_array_equal(fast.pair_i, plain.pair_i)
    np.testing.assert_array_equal(fast.pair_j, plain.pair_j)
    np.testing.assert_allclose(fast.cost, plain.cost, rtol=0, atol=1e-12)
    np.testing.assert_allclose(fast.distances, plain.distances, rtol=0, atol=1e-12)
    for name in ("ptr", "source", "target"):
        np.testing.assert_array_equal(getattr(fast.plans, name), getattr(plain.plans, name))
    np.testing.assert_allclose(fast.plans.mass, plain.plans.mass, rtol=0, atol=1e-12)


def test_first_step_solves_only_the_plans_the_m_step_reads(monkeypatch):
    import barcart.em as em

    rolled, ids, cost, metric = _case(300, seed=3)
    solved: list[int] = []
    real = em.emd_pairs

    def counting(f, col, c, pi, pj):
        solved.append(len(pi))
        return real(f, col, c, pi, pj)

    monkeypatch.setattr(em, "emd_pairs", counting)
    params = EMParams(k_candidates=40, k_neighbors=5, max_iter=2, tol=0.0)
    result = fit_em(rolled, ids, cost, params, tree_metric=metric)
    first, second = solved
    assert first <= 5 * rolled.n_recipes < result.pair_i.size == second


def test_a_cost_that_is_not_the_metric_is_refused():
    rolled, ids, cost, metric = _case(50, seed=5)
    with pytest.raises(ValueError, match="not the distance matrix of tree_metric"):
        fit_em(rolled, ids, cost * 2.0, EMParams(k_candidates=5), tree_metric=metric)
