"""The exact L1 top-k (threshold search) against brute force (same ranking rule: rank_key, index)."""

import numpy as np
import scipy.sparse as sp
from barcart._select import RANK_QUANTUM, l1_topk, rank_key
from barcart.synthetic import synthetic_recipes
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.distance import cdist


def _brute(f: sp.csr_matrix, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Every pair's 2 - 2 * sum(min) summed in column order; ranked by (rank_key, index)."""
    f = f.tocsr()
    f.sum_duplicates()
    n = f.shape[0]
    kk = max(min(k, n - 1), 0)
    rows = [dict(zip(f.indices[f.indptr[i] : f.indptr[i + 1]].tolist(),
                     f.data[f.indptr[i] : f.indptr[i + 1]].tolist(), strict=True))
            for i in range(n)]
    idx = np.zeros((n, kk), dtype=np.int64)
    dist = np.zeros((n, kk))
    far = np.rint(2.0 / RANK_QUANTUM)
    for i in range(n):
        scored = []
        for j in range(n):
            if j == i:
                continue
            acc = 0.0
            for col in sorted(rows[i]):
                if col in rows[j]:
                    acc += min(rows[i][col], rows[j][col])
            d = max(0.0, 2.0 - 2.0 * acc)
            q = np.rint((2.0 - 2.0 * acc) / RANK_QUANTUM)
            scored.append((min(q, far), j, d))
        scored.sort(key=lambda s: (s[0], s[1]))
        for x, (_, j, d) in enumerate(scored[:kk]):
            idx[i, x] = j
            dist[i, x] = d
    return idx, dist


@st.composite
def _fractions(draw):
    n = draw(st.integers(2, 40))
    m = draw(st.integers(1, 12))
    skew = draw(st.floats(0.0, 3.0))
    weights = 1.0 / np.arange(1, m + 1) ** skew  # popularity: a few ingredients in most rows
    weights /= weights.sum()
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    grid = draw(st.sampled_from([0, 2, 3, 4, 8]))  # 0: continuous volumes, else few values
    dense = np.zeros((n, m))
    for i in range(n):
        size = int(rng.integers(1, min(m, 8) + 1))
        cols = rng.choice(m, size=size, replace=False, p=weights)
        vol = rng.integers(1, grid + 1, size=size).astype(float) if grid else rng.random(size) + 0.01
        dense[i, cols] = vol
    dup = draw(st.integers(0, n // 2))  # identical rows
    for _ in range(dup):
        dense[rng.integers(n)] = dense[rng.integers(n)]
    dense /= dense.sum(axis=1, keepdims=True)
    k = draw(st.integers(1, n + 2))
    return sp.csr_matrix(dense), k


@settings(max_examples=300, deadline=None)
@given(_fractions())
def test_l1_topk_matches_brute_force(case):
    f, k = case
    idx, dist = l1_topk(f, k)
    bidx, bdist = _brute(f, k)
    np.testing.assert_array_equal(idx, bidx)
    np.testing.assert_array_equal(dist, bdist)
    dense = f.toarray()  # and the same order as ranking the cityblock distances directly
    full = cdist(dense, dense, "cityblock")
    n = f.shape[0]
    for i in range(n):
        others = np.array([j for j in range(n) if j != i])
        order = others[np.lexsort((others, rank_key(full[i, others])))][: idx.shape[1]]
        np.testing.assert_array_equal(idx[i], order)


def test_l1_topk_synthetic_2000_matches_dense_ranking():
    _, _, m = synthetic_recipes(2000, 300, seed=3)
    dense = m.fractions.toarray()
    for k in (1, 4, 100):
        idx, dist = l1_topk(m.fractions, k)
        for lo in range(0, 2000, 500):
            full = cdist(dense[lo : lo + 500], dense, "cityblock")
            for r in range(full.shape[0]):
                i = lo + r
                full[r, i] = np.inf
                key = rank_key(np.minimum(full[r], 4.0))
                order = np.lexsort((np.arange(2000), key))[:k]
                np.testing.assert_array_equal(idx[i], order)
                np.testing.assert_allclose(dist[i], full[r, order], atol=1e-12)
