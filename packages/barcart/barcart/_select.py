"""Compiled selection kernels: exact L1 top-k by a threshold search, per-row top-k of pairs.

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
L1_STEP = 0.05  # largest drop of the search bound planned per step (see l1_topk)


def rank_key(d: np.ndarray) -> np.ndarray:
    """Distances rounded to the ranking quantum (float64, same shape)."""
    return np.rint(np.asarray(d, dtype=np.float64) / RANK_QUANTUM)


@njit(cache=True, nogil=True)
def _heap_offer(heap, size, key):
    """Offer ``key`` to a max-heap of the smallest keys seen (capacity ``heap.shape[0]``).

    Returns the new size; a full heap keeps ``key`` only if it beats its largest entry.
    """
    cap = heap.shape[0]
    if size < cap:
        x = size
        heap[x] = key
        while x > 0:
            up = (x - 1) >> 1
            if heap[up] >= heap[x]:
                break
            heap[up], heap[x] = heap[x], heap[up]
            x = up
        return size + 1
    if key >= heap[0]:
        return size
    heap[0] = key
    x = 0
    while True:
        c = 2 * x + 1
        if c >= cap:
            break
        if c + 1 < cap and heap[c + 1] > heap[c]:
            c += 1
        if heap[c] <= heap[x]:
            break
        heap[c], heap[x] = heap[x], heap[c]
        x = c
    return size


@njit(cache=True, nogil=True)
def _overlap(pv, cols, vals, lo, hi):
    """sum(min(p, q)) over q's entries [lo, hi) in column order (p dense in ``pv``)."""
    o = 0.0
    for e in range(lo, hi):
        o += min(pv[cols[e]], vals[e])
    return o


@njit(cache=True, parallel=True)
def _l1_topk_kernel(
    indptr,
    indices,
    data,
    cptr,
    crow,
    cval,
    pptr,
    pcol,
    pval,
    n_rows,
    n_cols,
    k,
    out_idx,
    out_dist,
    quantum,
    step,
    nchunks,
):
    q_far = np.rint(2.0 / quantum)
    for c in prange(nchunks):
        start = c * n_rows // nchunks
        stop = (c + 1) * n_rows // nchunks
        widest = 0
        for i in range(start, stop):
            widest = max(widest, indptr[i + 1] - indptr[i])
        pv = np.zeros(n_cols)
        seen = np.zeros(n_rows, dtype=np.bool_)
        chosen = np.zeros(n_rows, dtype=np.bool_)
        met = np.empty(n_rows, dtype=np.int64)
        heap = np.empty(k, dtype=np.int64)
        mass = np.empty(widest)
        cur = np.empty(widest, dtype=np.int64)
        end = np.empty(widest, dtype=np.int64)
        for i in range(start, stop):
            s0 = indptr[i]
            s = indptr[i + 1] - s0
            for x in range(s):
                col = indices[s0 + x]
                pv[col] = data[s0 + x]
                mass[x] = data[s0 + x]
                cur[x] = cptr[col]
                end[x] = cptr[col + 1]
            n_met = 0
            size = 0
            o_min = -1.0  # a full heap rejects any overlap below this (stale = conservative)
            while True:
                bound = 0.0  # a recipe not met yet overlaps p by at most this
                for x in range(s):
                    if cur[x] < end[x]:
                        bound += min(mass[x], cval[cur[x]])
                if bound <= 0.0:
                    break
                drop = step
                if size == k:
                    kth = heap[0] // n_rows
                    if (2.0 - 2.0 * bound) / quantum > kth + 2.0:
                        break  # every recipe not met yet ranks after the k-th: done
                    o_min = (2.0 - (kth + 2.0) * quantum) / 2.0
                    drop = min(max(bound - o_min, quantum), step)  # > 0
                # the list that lowers the bound by ``drop`` (or all it can) in fewest postings
                best = -1
                best_rate = 0.0
                best_to = 0
                for x in range(s):
                    if cur[x] >= end[x]:
                        continue
                    part = min(mass[x], cval[cur[x]])
                    if part <= 0.0:
                        continue
                    d = min(drop, part)
                    lo = cur[x]
                    hi = end[x]
                    while lo < hi:  # first posting at or below part - d (values descending)
                        mid = (lo + hi) >> 1
                        if cval[mid] > part - d:
                            lo = mid + 1
                        else:
                            hi = mid
                    rate = (lo - cur[x]) / d
                    if best < 0 or rate < best_rate:
                        best = x
                        best_rate = rate
                        best_to = lo
                if best < 0:
                    break
                for f in range(cur[best], best_to):
                    j = crow[f]
                    if j == i or seen[j]:
                        continue
                    seen[j] = True
                    met[n_met] = j
                    n_met += 1
                    o = _overlap(pv, pcol, pval, pptr[f], pptr[f + 1])
                    if size == k and o < o_min:
                        continue
                    q = np.rint((2.0 - 2.0 * o) / quantum)
                    if q < q_far:
                        size = _heap_offer(heap, size, np.int64(q) * n_rows + j)
                cur[best] = best_to
            sel = np.sort(heap[:size])
            filled = 0
            for x in range(size):
                j = sel[x] % n_rows
                o = _overlap(pv, indices, data, indptr[j], indptr[j + 1])
                out_idx[i, filled] = j
                out_dist[i, filled] = max(0.0, 2.0 - 2.0 * o)
                chosen[j] = True
                filled += 1
            j = 0
            while filled < k and j < n_rows:  # distance 2 (no shared ingredient): by index
                if j != i and not chosen[j]:
                    o = _overlap(pv, indices, data, indptr[j], indptr[j + 1])
                    out_idx[i, filled] = j
                    out_dist[i, filled] = max(0.0, 2.0 - 2.0 * o)
                    filled += 1
                j += 1
            for x in range(size):
                chosen[sel[x] % n_rows] = False
            for x in range(n_met):
                seen[met[x]] = False
            for x in range(s):
                pv[indices[s0 + x]] = 0.0


def l1_topk(fractions: sp.csr_matrix, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact k nearest rows by L1 distance, self excluded, no dense N x N matrix.

    For probability vectors L1(p, q) = 2 - 2 * sum_a min(p_a, q_a), summed over p's
    ingredients. A threshold search (Fagin's threshold algorithm, on that overlap) reads, for
    each of p's ingredients, the recipes using it from the largest amount down. A recipe not
    met yet in list a uses at most the list's current amount f_a of it, so it overlaps p by at
    most sum_a min(p_a, f_a); the search stops once that bound ranks after the k-th best
    distance found (with a two-quantum margin for round-off), so the result equals a full scan:
    exact, ties by index. Each step reads the list that lowers the bound by up to
    ``L1_STEP`` in the fewest postings. Every posting carries a copy of its recipe's row, so
    a recipe met is scored from memory read in sequence; that copy costs sum over recipes of
    (row length)^2 entries. Recipes sharing no ingredient (distance 2) fill up by index.

    Why not an inverted index accumulating every posting: its work is the sum of squared
    posting-list lengths, quadratic in N when some ingredients are in a third of all recipes;
    the threshold search reads a few percent of those postings at 100,000 recipes.

    Returns
    -------
    indices : (N, k') int64, k' = min(k, N - 1), ordered by (rank_key(distance), index).
    distances : (N, k') float64.
    """
    f = sp.csr_matrix(fractions, dtype=np.float64, copy=True)
    f.sum_duplicates()
    n, m = f.shape
    kk = max(min(int(k), n - 1), 0)
    out_idx = np.zeros((n, kk), dtype=np.int64)
    out_dist = np.zeros((n, kk), dtype=np.float64)
    if n < 2 or kk == 0:
        return out_idx, out_dist
    indptr = f.indptr.astype(np.int64)
    rows = np.repeat(np.arange(n, dtype=np.int64), np.diff(indptr))
    order = np.lexsort((rows, -f.data, f.indices))  # by column, amount descending, row
    crow = rows[order]
    cval = f.data[order]
    cptr = np.zeros(m + 1, dtype=np.int64)
    np.cumsum(np.bincount(f.indices, minlength=m), out=cptr[1:])
    lens = np.diff(indptr)[crow]
    pptr = np.zeros(crow.size + 1, dtype=np.int64)
    np.cumsum(lens, out=pptr[1:])
    src = np.repeat(indptr[crow] - pptr[:-1], lens) + np.arange(pptr[-1])
    _l1_topk_kernel(
        indptr,
        f.indices.astype(np.int64),
        f.data,
        cptr,
        crow,
        cval,
        pptr,
        f.indices[src].astype(np.int32),
        f.data[src],
        n,
        m,
        kk,
        out_idx,
        out_dist,
        RANK_QUANTUM,
        L1_STEP,
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


@njit(cache=True, nogil=True)
def _plan_top_flows(s, e, src, tgt, mass, top, min_fraction, different_only, osrc, otgt,
                    omass, row):
    """The largest flows of the plan stored in ``[s, e)`` into row ``row`` of the outputs
    (see :func:`top_flows`)."""
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
        osrc[row, t] = src[best]
        otgt[row, t] = tgt[best]
        omass[row, t] = mass[best]


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
        _plan_top_flows(ptr[q], ptr[q + 1], src, tgt, mass, top, min_fraction, different_only,
                        osrc, otgt, omass, q)
    return osrc, otgt, omass


@njit(cache=True, parallel=True)
def top_flows_of(ptr, src, tgt, mass, plans, top, min_fraction, different_only):
    """:func:`top_flows` of the plans listed in ``plans`` only: row t is plan ``plans[t]``
    (entries may repeat). Returns (len(plans), top) src, tgt (-1 padded) and mass."""
    n = plans.shape[0]
    osrc = np.full((n, top), -1, dtype=np.int32)
    otgt = np.full((n, top), -1, dtype=np.int32)
    omass = np.zeros((n, top))
    for t in prange(n):
        q = plans[t]
        _plan_top_flows(ptr[q], ptr[q + 1], src, tgt, mass, top, min_fraction, different_only,
                        osrc, otgt, omass, t)
    return osrc, otgt, omass
