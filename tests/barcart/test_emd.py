"""The compiled solver against POT: exact distances, feasible and optimal plans."""

import numpy as np
import ot
import scipy.sparse as sp
from barcart import emd_dense, emd_pairs
from barcart.reference import reference_emd
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

SETTINGS = settings(max_examples=200, deadline=None)


def _histogram(draw, size: int, allow_zero: bool) -> np.ndarray:
    w = draw(arrays(np.float64, size, elements=st.sampled_from([0.0, 1.0, 2.0, 3.0, 0.5, 7.25])))
    if not allow_zero:
        w = np.where(w == 0, 1.0, w)
    if w.sum() == 0:
        w[draw(st.integers(0, size - 1))] = 1.0
    return w / w.sum()


@st.composite
def problems(draw):
    m = draw(st.integers(1, 9))
    n = draw(st.integers(1, 9))
    a = _histogram(draw, m, True)
    b = _histogram(draw, n, True)
    integer = draw(st.booleans())  # integer costs: many ties and degenerate optima
    elems = st.integers(0, 4).map(float) if integer else st.floats(0, 10, allow_nan=False)
    cost = draw(arrays(np.float64, (m, n), elements=elems))
    return a, b, cost


def _check_plan(a, b, cost, d, plan):
    expected = ot.emd2(a, b, cost)
    assert abs(d - expected) <= 1e-6 * max(1.0, abs(expected))
    np.testing.assert_allclose(plan.sum(axis=1), a, atol=1e-6)
    np.testing.assert_allclose(plan.sum(axis=0), b, atol=1e-6)
    assert np.all(plan >= 0)
    assert abs(float(np.sum(plan * cost)) - d) <= 1e-9 * max(1.0, d)


@SETTINGS
@given(problems())
def test_dense_matches_pot(problem):
    a, b, cost = problem
    d, plan = emd_dense(a, b, cost)
    _check_plan(a, b, cost, d, plan)


@SETTINGS
@given(problems())
def test_plan_is_the_canonical_one_of_the_reference(problem):
    a, b, cost = problem
    ids_a, ids_b = np.arange(len(a)), np.arange(len(b)) + 3
    d, plan = emd_dense(a, b, cost, ids_a, ids_b)
    d_ref, plan_ref = reference_emd(a, b, cost, ids_a, ids_b)
    assert abs(d - d_ref) <= 1e-9 * max(1.0, d_ref)
    np.testing.assert_allclose(plan, plan_ref, atol=1e-9)


@st.composite
def recipe_sets(draw):
    n_ing = draw(st.integers(1, 12))
    n_rec = draw(st.integers(1, 8))
    rows = []
    for _ in range(n_rec):
        if rows and draw(st.booleans()) and draw(st.booleans()):
            rows.append(rows[draw(st.integers(0, len(rows) - 1))].copy())  # identical recipe
            continue
        k = draw(st.integers(1, min(8, n_ing)))  # single-ingredient recipes included
        support = draw(st.permutations(range(n_ing)))[:k]
        row = np.zeros(n_ing)
        row[list(support)] = _histogram(draw, k, False)
        rows.append(row)
    dense = np.array(rows)
    sym = draw(arrays(np.float64, (n_ing, n_ing), elements=st.sampled_from([0.0, 1.0, 2.0, 0.3])))
    cost = sym + sym.T
    np.fill_diagonal(cost, 0.0)
    return dense, cost


@SETTINGS
@given(recipe_sets())
def test_batched_pairs_match_pot(case):
    dense, cost = case
    n = dense.shape[0]
    pi, pj = np.triu_indices(n, 0)  # includes i == j (identical: distance 0)
    frac = sp.csr_matrix(dense)
    dist, ptr, src, tgt, mass = emd_pairs(frac, np.arange(cost.shape[0]), cost, pi, pj)
    assert ptr.shape == (len(pi) + 1,) and ptr[-1] == len(mass)
    assert np.all(mass > 0)
    for q, (i, j) in enumerate(zip(pi, pj, strict=True)):
        plan = np.zeros_like(cost)
        sl = slice(ptr[q], ptr[q + 1])
        np.add.at(plan, (src[sl], tgt[sl]), mass[sl])
        _check_plan(dense[i], dense[j], cost, dist[q], plan)
        if i == j:
            assert dist[q] == 0.0


def test_plan_of_reversed_pair_is_transposed():
    rng = np.random.default_rng(3)
    dense = rng.random((6, 7)) * (rng.random((6, 7)) < 0.6) + np.eye(6, 7)
    dense /= dense.sum(axis=1, keepdims=True)
    cost = rng.integers(0, 3, (7, 7)).astype(float)
    cost = cost + cost.T
    np.fill_diagonal(cost, 0)
    frac = sp.csr_matrix(dense)
    pi, pj = np.triu_indices(6, 1)
    d1, p1, s1, t1, m1 = emd_pairs(frac, np.arange(7), cost, pi, pj)
    d2, p2, s2, t2, m2 = emd_pairs(frac, np.arange(7), cost, pj, pi)
    np.testing.assert_allclose(d1, d2, atol=1e-12)
    for q in range(len(pi)):
        s_a, s_b = slice(p1[q], p1[q + 1]), slice(p2[q], p2[q + 1])
        a = sorted(zip(s1[s_a], t1[s_a], m1[s_a], strict=True))
        b = sorted(zip(t2[s_b], s2[s_b], m2[s_b], strict=True))
        assert [x[:2] for x in a] == [x[:2] for x in b]
        np.testing.assert_allclose([x[2] for x in a], [x[2] for x in b], atol=1e-12)


def test_tree_metric_closed_form():
    """Under a tree metric the EMD is sum over edges of |mass difference below the edge|."""
    # tree: root -> 0 -> {1, 2}, root -> 3; unit edges; nodes 0..3
    parent = {0: -1, 1: 0, 2: 0, 3: -1}

    def chain(x):
        out = [x]
        while parent[out[-1]] != -1:
            out.append(parent[out[-1]])
        return out

    cost = np.array(
        [[len(set(chain(a)) ^ set(chain(b))) for b in range(4)] for a in range(4)], dtype=float
    )
    rng = np.random.default_rng(0)
    for _ in range(50):
        a = rng.random(4) * (rng.random(4) < 0.7)
        b = rng.random(4) * (rng.random(4) < 0.7)
        a[rng.integers(4)] += 0.1
        b[rng.integers(4)] += 0.1
        a, b = a / a.sum(), b / b.sum()
        below = {x: [y for y in range(4) if x in chain(y)] for x in range(4)}
        closed = sum(abs(a[below[x]].sum() - b[below[x]].sum()) for x in range(4))
        d, _ = emd_dense(a, b, cost)
        assert abs(d - closed) < 1e-12
