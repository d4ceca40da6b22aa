"""Compiled selection kernels: exact L1 top-k via an inverted index, per-row top-k of pairs.

Ranking rule used everywhere in barcart: distances are compared after rounding to
``RANK_QUANTUM`` (1e-10), ties broken by the smaller recipe index. Two recipes whose distances
are equal in exact arithmetic are then ordered the same way whatever the summation order
(the reference sums |p - q|, the fast path 2 - 2 * sum(min(p, q))).
"""

from __future__ import annotations

import numba
import numpy as np
import scipy.sparse as sp
from numba import njit, prange

RANK_QUANTUM = 1e-10
FLOW_QUANTUM = 1e-12


def rank_key(d: np.ndarray) -> np.ndarray:
    """Distances rounded to the ranking quantum (float64, same shape)."""
    return np.rint(np.asarray(d, dtype=np.float64) / RANK_QUANTUM)


@njit(cache=True, parallel=True)
def _l1_topk_kernel(
    indptr, indices, data, cptr, crow, cval, n_rows, k, out_idx, out_dist, quantum, nchunks
):
    q_far = np.rint(2.0 / quantum)
    for c in prange(nchunks):
        start = c * n_rows // nchunks
        stop = (c + 1) * n_rows // nchunks
        acc = np.zeros(n_rows)
        mark = np.zeros(n_rows, dtype=np.bool_)
        touched = np.empty(n_rows, dtype=np.int64)
        keys = np.empty(n_rows, dtype=np.int64)
        chosen = np.zeros(n_rows, dtype=np.bool_)
        for i in range(start, stop):
            t = 0
            for e in range(indptr[i], indptr[i + 1]):
                col = indices[e]
                pv = data[e]
                for f in range(cptr[col], cptr[col + 1]):
                    j = crow[f]
                    if j == i:
                        continue
                    if not mark[j]:
                        mark[j] = True
                        touched[t] = j
                        t += 1
                    acc[j] += min(pv, cval[f])
            nt = 0
            for x in range(t):
                j = touched[x]
                q = np.rint((2.0 - 2.0 * acc[j]) / quantum)
                if q < q_far:
                    keys[nt] = np.int64(q) * n_rows + j
                    nt += 1
            if nt > k:
                sel = np.sort(np.partition(keys[:nt], k - 1)[:k])
            else:
                sel = np.sort(keys[:nt])
            filled = 0
            for x in range(sel.shape[0]):
                j = sel[x] % n_rows
                out_idx[i, filled] = j
                out_dist[i, filled] = max(0.0, 2.0 - 2.0 * acc[j])
                chosen[j] = True
                filled += 1
            j = 0
            while filled < k and j < n_rows:  # distance 2 (no shared ingredient): by index
                if j != i and not chosen[j]:
                    out_idx[i, filled] = j
                    out_dist[i, filled] = max(0.0, 2.0 - 2.0 * acc[j])
                    filled += 1
                j += 1
            for x in range(sel.shape[0]):
                chosen[sel[x] % n_rows] = False
            for x in range(t):
                acc[touched[x]] = 0.0
                mark[touched[x]] = False


def l1_topk(fractions: sp.csr_matrix, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact k nearest rows by L1 distance, self excluded, no dense N x N matrix.

    Uses L1(p, q) = 2 - 2 * sum_a min(p_a, q_a) for probability vectors, accumulated over the
    recipes sharing an ingredient (inverted index); recipes sharing none are at distance 2.

    Returns
    -------
    indices : (N, k') int64, k' = min(k, N - 1), ordered by (rank_key(distance), index).
    distances : (N, k') float64.
    """
    f = fractions.tocsr()
    f.sort_indices()
    n = f.shape[0]
    kk = max(min(int(k), n - 1), 0)
    out_idx = np.zeros((n, kk), dtype=np.int64)
    out_dist = np.zeros((n, kk), dtype=np.float64)
    if n < 2 or kk == 0:
        return out_idx, out_dist
    csc = f.tocsc()
    csc.sort_indices()
    _l1_topk_kernel(
        f.indptr.astype(np.int64),
        f.indices.astype(np.int64),
        f.data.astype(np.float64),
        csc.indptr.astype(np.int64),
        csc.indices.astype(np.int64),
        csc.data.astype(np.float64),
        n,
        kk,
        out_idx,
        out_dist,
        RANK_QUANTUM,
        min(n, 8 * numba.get_num_threads()),
    )
    return out_idx, out_dist


@njit(cache=True)
def directed_csr(pi, pj, n):
    """Both directions of the pairs (sorted by (i, j), i < j) as row CSR, neighbours ascending.

    Returns indptr (n + 1,), nbr (2P,), pair (2P,) index of the pair of each entry.
    """
    P = pi.shape[0]
    indptr = np.zeros(n + 1, dtype=np.int64)
    for q in range(P):
        indptr[pi[q] + 1] += 1
        indptr[pj[q] + 1] += 1
    for r in range(n):
        indptr[r + 1] += indptr[r]
    fill = indptr[:-1].copy()
    nbr = np.empty(2 * P, dtype=np.int64)
    pair = np.empty(2 * P, dtype=np.int64)
    for q in range(P):  # entries (j -> i) first: for row r these have i < r, ascending
        r = pj[q]
        nbr[fill[r]] = pi[q]
        pair[fill[r]] = q
        fill[r] += 1
    for q in range(P):  # then (i -> j): j > r, ascending
        r = pi[q]
        nbr[fill[r]] = pj[q]
        pair[fill[r]] = q
        fill[r] += 1
    return indptr, nbr, pair


@njit(cache=True, parallel=True)
def row_topk(indptr, keys, k):
    """Per row the positions of its k smallest keys, stable (so ties keep neighbour order).

    Returns out_ptr (n + 1,), pos (sum of min(k, row length),) positions into the row arrays.
    """
    n = indptr.shape[0] - 1
    out_ptr = np.zeros(n + 1, dtype=np.int64)
    for r in range(n):
        out_ptr[r + 1] = out_ptr[r] + min(k, indptr[r + 1] - indptr[r])
    pos = np.empty(out_ptr[n], dtype=np.int64)
    for r in prange(n):
        s = indptr[r]
        order = np.argsort(keys[s : indptr[r + 1]], kind="mergesort")
        for x in range(out_ptr[r + 1] - out_ptr[r]):
            pos[out_ptr[r] + x] = s + order[x]
    return out_ptr, pos


@njit(cache=True, parallel=True)
def top_flows(ptr, src, tgt, mass, top, min_fraction, different_only):
    """Per plan its ``top`` largest flows with mass >= min_fraction * (its largest flow).

    Masses are compared after rounding to FLOW_QUANTUM (so solver round-off cannot reorder
    flows that are equal in exact arithmetic); ties keep the stored (source, target) order.
    With ``different_only`` flows with source == target are ignored (for similarity).
    Returns (P, top) src, tgt (-1 padded) and mass.
    """
    P = ptr.shape[0] - 1
    osrc = np.full((P, top), -1, dtype=np.int32)
    otgt = np.full((P, top), -1, dtype=np.int32)
    omass = np.zeros((P, top))
    for q in prange(P):
        s = ptr[q]
        e = ptr[q + 1]
        qmax = 0.0
        for f in range(s, e):
            if (not different_only or src[f] != tgt[f]) and mass[f] > 0.0:
                qmax = max(qmax, np.rint(mass[f] / FLOW_QUANTUM))
        thr = np.rint(min_fraction * qmax)
        taken = np.zeros(e - s, dtype=np.bool_)
        for t in range(top):
            best = -1
            bq = 0.0
            for f in range(s, e):
                if taken[f - s] or (different_only and src[f] == tgt[f]):
                    continue
                qm = np.rint(mass[f] / FLOW_QUANTUM)
                if qm > 0.0 and qm >= thr and qm > bq:
                    bq = qm
                    best = f
            if best < 0:
                break
            taken[best - s] = True
            osrc[q, t] = src[best]
            otgt[q, t] = tgt[best]
            omass[q, t] = mass[best]
    return osrc, otgt, omass
