"""Fast EM fit against the plain reference on synthetic data shaped like the site's."""

import numpy as np
import pytest
from barcart import EMParams, fit_em
from barcart.em import candidate_pairs_l1
from barcart.reference import fit_em_reference, reference_candidates_l1
from scipy.stats import spearmanr


def _compare(fast, ref, n_recipes):
    iu = np.triu_indices(fast.cost.shape[0], 1)
    rho = spearmanr(fast.cost[iu], ref.cost[iu]).statistic
    assert rho >= 0.99
    a, _, _ = fast.knn(n_recipes, 10)
    b, _, _ = ref.knn(n_recipes, 10)
    overlap = np.mean(
        [
            len(set(x) & set(y) - {-1}) / max(1, len(set(y) - {-1}))
            for x, y in zip(a, b, strict=True)
        ]
    )
    assert overlap >= 0.95
    return rho, overlap


def test_iteration_one_candidates_identical(em_case):
    matrix, _, _ = em_case(400, seed=1)
    for k in (1, 7, 50):
        pi, pj = candidate_pairs_l1(matrix.fractions, k)
        fast = set(zip(pi.tolist(), pj.tolist(), strict=True))
        assert fast == reference_candidates_l1(matrix.fractions.toarray(), k)


def test_fast_matches_reference(em_case):
    matrix, ids, cost = em_case(300, seed=0)
    params = EMParams(k_candidates=15, max_iter=3, tol=0.0)
    fast = fit_em(matrix, ids, cost, params)
    ref = fit_em_reference(matrix, ids, cost, params)
    _compare(fast, ref, matrix.n_recipes)
    # with canonical plans the two agree to round-off, pairs included
    np.testing.assert_array_equal(fast.pair_i, ref.pair_i)
    np.testing.assert_array_equal(fast.pair_j, ref.pair_j)
    np.testing.assert_allclose(fast.distances, ref.distances, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(fast.cost, ref.cost, atol=1e-9)
    assert fast.iterations == ref.iterations == 3
    np.testing.assert_allclose(fast.history, ref.history, rtol=1e-6)


def test_plain_reference_one_emd_per_pair(em_case, monkeypatch):
    """The benchmark baseline: exactly one ot.emd per pair, the same distances."""
    import barcart.reference as reference
    import ot

    matrix, ids, cost = em_case(200, seed=3)
    params = EMParams(k_candidates=10, max_iter=2, tol=0.0)
    calls = []
    real = ot.emd
    monkeypatch.setattr(reference.ot, "emd", lambda *a, **k: calls.append(1) or real(*a, **k))
    plain = fit_em_reference(matrix, ids, cost, params, tie_break=False)
    n_pairs = len(reference_candidates_l1(matrix.fractions.toarray(), 10))
    assert len(calls) == n_pairs + plain.pair_i.size  # iteration 1, then iteration 2
    fast = fit_em(matrix, ids, cost, EMParams(k_candidates=10, max_iter=1))
    first = fit_em_reference(matrix, ids, cost, EMParams(k_candidates=10, max_iter=1),
                             tie_break=False)
    # iteration-1 distances do not depend on the plan rule (plans, hence costs, may differ)
    np.testing.assert_allclose(first.distances, fast.distances, rtol=1e-9, atol=1e-12)


@pytest.mark.slow
def test_fast_matches_reference_default_k_1000(em_case):
    matrix, ids, cost = em_case(1000, n_ingredients=500, seed=2)
    params = EMParams()
    fast = fit_em(matrix, ids, cost, params)
    ref = fit_em_reference(matrix, ids, cost, params)
    _compare(fast, ref, matrix.n_recipes)


def test_result_shapes_and_invariants(em_case):
    matrix, ids, cost = em_case(120, n_ingredients=80, seed=4)
    calls = []
    timings: dict[str, float] = {}
    res = fit_em(
        matrix,
        ids,
        cost,
        EMParams(k_candidates=8, max_iter=2),
        progress=lambda *a: calls.append(a),
        timings=timings,
    )
    p = len(ids)
    assert res.cost.shape == (p, p)
    np.testing.assert_allclose(res.cost, res.cost.T)
    np.testing.assert_array_equal(np.diag(res.cost), 0)
    assert res.cost.min() >= 0
    off = res.cost[~np.eye(p, dtype=bool)]
    assert np.median(off) == pytest.approx(1.0)
    assert np.all(res.pair_i < res.pair_j)
    assert res.pair_i.dtype == np.int32 and res.plans.source.dtype == np.int32
    assert len(res.history) == res.iterations
    assert set(timings) == {"candidates", "e-step", "m-step"}
    assert calls[0] == ("candidates", 1, 2) and calls[-1][0] == "m-step"
    # each recipe has at least K computed pairs
    deg = np.bincount(np.concatenate([res.pair_i, res.pair_j]), minlength=matrix.n_recipes)
    assert deg.min() >= 8
    # plans: marginals equal the recipes' fractions
    f = matrix.fractions.toarray()
    col = np.searchsorted(ids, matrix.ingredient_ids)
    for q in range(0, len(res.pair_i), 97):
        s, t, m = res.plans.plan(q)
        out = np.bincount(s, weights=m, minlength=p)[col]
        inn = np.bincount(t, weights=m, minlength=p)[col]
        np.testing.assert_allclose(out, f[res.pair_i[q]], atol=1e-9)
        np.testing.assert_allclose(inn, f[res.pair_j[q]], atol=1e-9)


def test_neighbor_graph_keeps_zero_distances(em_case):
    matrix, ids, cost = em_case(200, n_ingredients=60, seed=5)  # ~2% duplicated recipes
    res = fit_em(matrix, ids, cost, EMParams(k_candidates=5, max_iter=1))
    g = res.neighbor_graph(matrix.n_recipes)
    assert g.nnz == 2 * len(res.pair_i)
    assert (g.data == 0).sum() == 2 * int((res.distances == 0).sum()) > 0
    assert (g != g.T).nnz == 0


def test_converges_and_stops(em_case):
    matrix, ids, cost = em_case(150, n_ingredients=80, seed=6)
    res = fit_em(matrix, ids, cost, EMParams(k_candidates=10, max_iter=20, tol=1e-2))
    assert res.converged and res.iterations < 20 and res.history[-1] < 1e-2


@pytest.mark.parametrize("n", [0, 1])
def test_fewer_than_two_recipes_keep_the_start(em_case, n):
    matrix, ids, cost = em_case(5, n_ingredients=20, seed=7)
    from barcart.volumes import RecipeMatrix

    small = RecipeMatrix(matrix.recipe_ids[:n], matrix.ingredient_ids, matrix.fractions[:n])
    res = fit_em(small, ids, cost)
    np.testing.assert_array_equal(res.cost, cost)
    assert res.iterations == 0 and len(res.pair_i) == 0


def test_k_larger_than_n(em_case):
    matrix, ids, cost = em_case(12, n_ingredients=30, seed=8)
    params = EMParams(k_candidates=100, max_iter=2, tol=0.0)
    res = fit_em(matrix, ids, cost, params)
    assert len(res.pair_i) == 12 * 11 // 2
    ref = fit_em_reference(matrix, ids, cost, params)
    np.testing.assert_allclose(res.cost, ref.cost, atol=1e-9)


def test_the_fit_holds_one_iterations_plans_at_a_time(em_case):
    """The previous iteration's plans are released before the E-step makes the next, and the
    E-step hands back its slot arrays truncated, not copied: numpy's traced peak during a
    5-iteration fit stays well under three times the result (what holding two iterations'
    plans, or a plan and its copy, would take)."""
    import tracemalloc

    matrix, ids, cost = em_case(1500, seed=2)
    params = EMParams(k_candidates=100, max_iter=5, tol=0.0)
    fit_em(matrix, ids, cost, EMParams(k_candidates=5, max_iter=1))  # kernels loaded
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        res = fit_em(matrix, ids, cost, params)
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    plans = res.plans
    held = sum(a.nbytes for a in (plans.ptr, plans.source, plans.target, plans.mass,
                                  res.distances, res.pair_i, res.pair_j))
    assert res.iterations == 5 and plans.mass.size > 100_000
    assert peak < 2.2 * held, (peak, held)
