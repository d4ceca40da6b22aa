"""2-D layouts of recipes: exact Manhattan kNN and UMAP on a precomputed kNN graph."""

from __future__ import annotations

import warnings
from typing import Any

import numba
import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import shortest_path

from barcart._select import l1_topk
from barcart._validate import check_fractions
from barcart.em import EMResult
from barcart.volumes import RecipeMatrix


def manhattan_knn(fractions: sp.csr_matrix, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact k nearest recipes by L1 distance between volume-fraction rows.

    Parameters
    ----------
    fractions : (N, m) CSR, rows sum to 1.
    k : int >= 1.

    Returns
    -------
    indices : (N, k') int64, k' = min(k, N - 1), self excluded, ordered by distance then
        index (distances rounded to 1e-10 first, so exact ties go to the smaller index).
    distances : (N, k') float64 L1 distances, in [0, 2].
    """
    if isinstance(k, bool) or int(k) != k or k < 1:
        raise ValueError(f"k must be an integer >= 1, got {k!r}")
    check_fractions(fractions)
    return l1_topk(fractions, int(k))


def _graph_mds(indices: np.ndarray, distances: np.ndarray) -> np.ndarray:
    """Classical MDS of the shortest-path distances over the symmetrised kNN graph.

    Pairs in different components are put at twice the largest finite distance (1 if none).
    Axis signs are fixed (largest-magnitude coordinate positive) so the layout is deterministic.
    """
    n = indices.shape[0]
    rows = np.repeat(np.arange(n), indices.shape[1])
    cols = indices.ravel()
    vals = distances.ravel()
    ok = (cols >= 0) & np.isfinite(vals)
    # csgraph treats stored zeros as missing edges: lift them to a negligible positive length
    w = np.maximum(vals[ok], 1e-12)
    g = sp.coo_matrix((w, (rows[ok], cols[ok])), shape=(n, n)).tocsr()
    d = shortest_path(g, directed=False)
    finite = np.isfinite(d)
    far = 2.0 * d[finite].max() if np.any(finite & (d > 0)) else 1.0
    d = np.where(finite, d, far)
    j = np.eye(n) - 1.0 / n
    b = -0.5 * j @ (d**2) @ j
    vals_e, vecs = np.linalg.eigh(b)
    order = np.argsort(-vals_e, kind="stable")[:2]
    coords = vecs[:, order] * np.sqrt(np.maximum(vals_e[order], 0.0))
    for c in range(coords.shape[1]):
        pivot = int(np.argmax(np.abs(coords[:, c])))
        if coords[pivot, c] < 0:
            coords[:, c] = -coords[:, c]
    out = np.zeros((n, 2))
    out[:, : coords.shape[1]] = coords
    return out


# Warnings umap-learn 0.5 emits on every run of embed_knn, silenced by (category, module
# regex, message regex; ``warnings.filterwarnings`` matches both regexes at the start).
# Anything else the fit warns about (a new deprecation after an upgrade, "Spectral
# initialisation failed", ...) reaches the caller.
_UNDERSTOOD_WARNINGS: tuple[tuple[type[Warning], str, str], ...] = (
    # `import umap` without TensorFlow: only ParametricUMAP needs it, barcart never uses it.
    (ImportWarning, r"umap\Z", r"Tensorflow not installed; ParametricUMAP will be unavailable"),
    # metric="precomputed": the reducer cannot inverse_transform. Harmless: barcart keeps
    # the layout and drops the reducer, it never calls inverse_transform.
    (UserWarning, r"umap\.umap_\Z", r"using precomputed metric; inverse_transform will be"),
    # precomputed_knn without an NNDescent index: the reducer cannot transform new points.
    # Harmless for the same reason (no transform call: new recipes mean a new fit).
    (UserWarning, r"umap\.umap_\Z", r"precomputed_knn\[2\] \(knn_search_index\) is not an"),
)


def _silence_understood_warnings() -> None:
    """Inside ``warnings.catch_warnings()``: ignore exactly the warnings listed above."""
    for category, module, message in _UNDERSTOOD_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category, module=module)


def embed_knn(
    indices: np.ndarray,
    distances: np.ndarray,
    *,
    n_neighbors: int = 5,
    min_dist: float = 0.05,
    random_state: int = 42,
    **umap_kwargs: Any,
) -> np.ndarray:
    """UMAP layout from a precomputed kNN graph (no dense N x N matrix).

    Parameters
    ----------
    indices : (N, k) int, each recipe's nearest recipes (self excluded, nearest first);
        -1 marks a missing neighbour.
    distances : (N, k) float, matching distances (inf where missing).
    n_neighbors : UMAP's n_neighbors, counting the recipe itself (the default 5 uses the 4
        nearest others; see docs/analytics.md#spaces).
    min_dist, random_state, umap_kwargs : passed to ``umap.UMAP``. With a ``random_state``
        UMAP runs single-threaded (it would force that itself, with a warning), so
        ``n_jobs`` defaults to 1 then.

    Returns
    -------
    (N, 2) float64, always finite and deterministic for a given input. Fixed layouts: N = 0 ->
    (0, 2); N = 1 -> the origin; N = 2 -> (-1, 0) and (1, 0). When N <= n_neighbors + 1 (too
    few points for UMAP's spectral start) the fallback is classical MDS of the shortest-path
    distances over the kNN graph.

    No global state is changed: warnings are silenced only inside the fit and only those
    listed in ``_UNDERSTOOD_WARNINGS``; numba's thread count, which ``UMAP.fit`` sets to
    ``n_jobs`` and restores only when it succeeds, is restored here in any case. Whether
    numba caches umap-learn's compiled kernels between processes is the application's
    decision, not the library's.
    """
    idx = np.asarray(indices, dtype=np.int64)
    dist = np.asarray(distances, dtype=np.float64)
    if idx.ndim != 2 or dist.shape != idx.shape:
        raise ValueError(
            f"indices and distances must be (N, k) alike, got {idx.shape}, {dist.shape}"
        )
    n = idx.shape[0]
    if isinstance(n_neighbors, bool) or int(n_neighbors) != n_neighbors or n_neighbors < 2:
        raise ValueError(f"n_neighbors must be an integer >= 2, got {n_neighbors!r}")
    if np.any(idx >= n) or np.any(idx < -1):
        row = int(np.argwhere((idx >= n) | (idx < -1))[0, 0])
        raise ValueError(f"indices row {row} names a recipe outside 0..{n - 1}")
    bad = (idx >= 0) & ~(np.isfinite(dist) & (dist >= 0))
    if bad.any():
        row = int(np.argwhere(bad)[0, 0])
        raise ValueError(f"distances row {row} has a negative or non-finite distance")
    if n == 0:
        return np.zeros((0, 2))
    if n == 1:
        return np.zeros((1, 2))
    if n == 2:
        return np.array([[-1.0, 0.0], [1.0, 0.0]])
    if n <= n_neighbors + 1:
        return _graph_mds(idx, dist)

    with warnings.catch_warnings():
        _silence_understood_warnings()
        import umap  # heavy import (numba compilation), only when needed

    k = n_neighbors - 1
    knn_i = np.full((n, n_neighbors), -1, dtype=np.int64)
    knn_d = np.full((n, n_neighbors), np.inf)
    knn_i[:, 0] = np.arange(n)
    knn_d[:, 0] = 0.0
    take = min(k, idx.shape[1])
    knn_i[:, 1 : 1 + take] = idx[:, :take]
    knn_d[:, 1 : 1 + take] = np.where(idx[:, :take] >= 0, dist[:, :take], np.inf)
    knn_d[knn_i < 0] = np.inf
    placeholder = sp.csr_matrix((n, n))  # UMAP only reads its shape when given the kNN
    # A seed makes UMAP single-threaded anyway; saying so up front avoids its
    # "n_jobs value 1 overridden to 1 by setting random_state" warning (same layout).
    options: dict[str, Any] = {"n_jobs": 1} if random_state is not None else {}
    options.update(umap_kwargs)
    reducer = umap.UMAP(
        n_components=2,
        n_neighbors=n_neighbors,
        min_dist=min_dist,
        random_state=random_state,
        metric="precomputed",
        precomputed_knn=(knn_i, knn_d),
        **options,
    )
    threads = numba.get_num_threads()
    try:
        with warnings.catch_warnings():
            _silence_understood_warnings()
            emb = reducer.fit_transform(placeholder)
    finally:
        numba.set_num_threads(threads)
    emb = np.asarray(emb, dtype=np.float64)
    if not np.all(np.isfinite(emb)):
        return _graph_mds(idx, dist)
    return emb


def embed_manhattan(matrix: RecipeMatrix, **umap_kwargs: Any) -> np.ndarray:
    """cocktail-space: (N, 2) UMAP layout under Manhattan distance of the fractions.

    ``matrix`` is NOT rolled up. Keyword arguments go to :func:`embed_knn`.
    """
    n_neighbors = int(umap_kwargs.get("n_neighbors", 5))
    n = matrix.n_recipes
    if n < 2:
        return embed_knn(np.zeros((n, 0), np.int64), np.zeros((n, 0)), **umap_kwargs)
    idx, dist = manhattan_knn(matrix.fractions, max(n_neighbors - 1, 1))
    return embed_knn(idx, dist, **umap_kwargs)


def embed_em(result: EMResult, n_recipes: int, **umap_kwargs: Any) -> np.ndarray:
    """cocktail-space-em: (N, 2) UMAP layout of the kNN graph of the EM pair distances.

    Only the computed pairs are known; each recipe's nearest among them form the graph.
    """
    n_neighbors = int(umap_kwargs.get("n_neighbors", 5))
    idx, dist, _ = result.knn(n_recipes, max(n_neighbors - 1, 1))
    return embed_knn(idx, dist, **umap_kwargs)
