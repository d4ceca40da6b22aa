import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from barcart import EMParams, embed_em, embed_knn, embed_manhattan, fit_em, manhattan_knn
from barcart._select import rank_key
from barcart.synthetic import synthetic_recipes
from scipy.spatial.distance import cdist


@pytest.mark.parametrize("n", [0, 1, 2, 3, 4, 5, 6, 7, 8, 12, 40])
def test_small_n_finite_and_deterministic(n):
    _, _, m = synthetic_recipes(n, 60, seed=3)
    a = embed_manhattan(m)
    b = embed_manhattan(m)
    assert a.shape == (n, 2) and a.dtype == np.float64
    assert np.all(np.isfinite(a))
    np.testing.assert_array_equal(a, b)
    if n == 1:
        np.testing.assert_array_equal(a, [[0.0, 0.0]])
    if n == 2:
        np.testing.assert_array_equal(a, [[-1.0, 0.0], [1.0, 0.0]])


def test_manhattan_knn_is_exact_with_index_ties():
    _, _, m = synthetic_recipes(250, 40, seed=9)
    idx, dist = manhattan_knn(m.fractions, 12)
    dense = m.fractions.toarray()
    full = cdist(dense, dense, "cityblock")
    for i in range(m.n_recipes):
        others = np.array([j for j in range(m.n_recipes) if j != i])
        order = others[np.lexsort((others, rank_key(full[i, others])))][:12]
        np.testing.assert_array_equal(idx[i], order)
        np.testing.assert_allclose(dist[i], full[i, order], atol=1e-12)


def test_manhattan_knn_k_capped_and_validated():
    _, _, m = synthetic_recipes(4, 20, seed=1)
    idx, _ = manhattan_knn(m.fractions, 10)
    assert idx.shape == (4, 3)
    with pytest.raises(ValueError, match="k must"):
        manhattan_knn(m.fractions, 0)


def test_disconnected_groups_stay_finite():
    # two groups of recipes sharing no ingredient: the kNN graph has two components
    rng = np.random.default_rng(0)
    block = rng.random((30, 5))
    dense = np.zeros((60, 10))
    dense[:30, :5] = block
    dense[30:, 5:] = rng.random((30, 5))
    dense /= dense.sum(axis=1, keepdims=True)
    idx, dist = manhattan_knn(sp.csr_matrix(dense), 4)
    emb = embed_knn(idx, dist)
    assert emb.shape == (60, 2) and np.all(np.isfinite(emb))


def test_identical_points_and_missing_neighbours():
    idx = np.array([[1, -1], [0, -1], [3, 1], [2, 0], [0, 1], [4, 0], [5, 4], [6, 5]])
    dist = np.where(idx >= 0, 0.0, np.inf)
    emb = embed_knn(idx, dist, n_neighbors=3)
    assert np.all(np.isfinite(emb))


def test_bad_knn_input_named():
    with pytest.raises(ValueError, match="row 1"):
        embed_knn(np.array([[1], [5], [0]]), np.ones((3, 1)))
    with pytest.raises(ValueError, match="row 0"):
        embed_knn(np.array([[1], [0], [0]]), np.array([[-1.0], [1.0], [1.0]]))


def test_embed_em():
    from tests.barcart.conftest import make_em_case

    matrix, ids, cost = make_em_case(120, n_ingredients=60, seed=2)
    res = fit_em(matrix, ids, cost, EMParams(k_candidates=10, max_iter=2))
    a = embed_em(res, matrix.n_recipes)
    assert a.shape == (matrix.n_recipes, 2) and np.all(np.isfinite(a))
    np.testing.assert_array_equal(a, embed_em(res, matrix.n_recipes))


def _knn40():
    rng = np.random.default_rng(0)
    n = 40
    idx = np.array([rng.choice(np.delete(np.arange(n), i), 6, replace=False) for i in range(n)])
    return idx, np.sort(rng.random((n, 6)), axis=1)


def test_fit_emits_no_warning():
    """umap-learn's routine notices are silenced by name; a new one (e.g. after an upgrade)
    makes this test fail rather than disappear."""
    idx, dist = _knn40()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        embed_knn(idx, dist)
    assert [f"{w.category.__name__}: {w.message}" for w in caught] == []


def test_an_unexpected_warning_reaches_the_caller(monkeypatch):
    import umap

    real = umap.UMAP.fit_transform

    def noisy(self, *args, **kwargs):
        warnings.warn("something new in umap-learn", FutureWarning, stacklevel=2)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(umap.UMAP, "fit_transform", noisy)
    idx, dist = _knn40()
    with pytest.warns(FutureWarning, match="something new"):
        embed_knn(idx, dist)


def test_numba_thread_count_restored_when_the_fit_fails(monkeypatch):
    """UMAP.fit sets numba's thread count to n_jobs and restores it only on success."""
    import numba
    import umap

    def failing(self, *args, **kwargs):
        numba.set_num_threads(1)
        raise RuntimeError("fit failed")

    monkeypatch.setattr(umap.UMAP, "fit_transform", failing)
    before = numba.get_num_threads()
    idx, dist = _knn40()
    with pytest.raises(RuntimeError, match="fit failed"):
        embed_knn(idx, dist)
    assert numba.get_num_threads() == before


def test_layout_is_repeatable_in_process():
    idx, dist = _knn40()
    np.testing.assert_array_equal(embed_knn(idx, dist), embed_knn(idx, dist))
