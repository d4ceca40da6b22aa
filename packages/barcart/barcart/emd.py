"""Exact earth mover's distance for many tiny problems at once (compiled with numba).

Recipes hold 3-8 ingredients, so each transport problem is a dense m x n problem with
m, n <= ~16 once restricted to the two supports. For problems that small a general LP/network
solver spends most of its time in set-up; here a transportation simplex (least-cost start,
u-v duals on the spanning-tree basis, Dantzig pricing, Bland's rule after a bounded number of
pivots so degenerate problems cannot cycle) runs inside one compiled loop over all pairs,
in parallel over blocks of pairs. It returns the optimal cost and an optimal basic plan.
"""

from __future__ import annotations

import numba
import numpy as np
import scipy.sparse as sp
from numba import njit, prange

from barcart._validate import (
    ROW_SUM_TOL,
    as_1d,
    check_col_map,
    check_cost,
    check_fractions,
    check_pairs,
)

# Reduced costs above -REDUCED_COST_RTOL * max|C| count as optimal. Dual values are exact up to
# ~(m + n) * eps * max|C| (< 1e-14 relative here), so this never stops early by more than that.
REDUCED_COST_RTOL = 1e-11
# Non-basic cells with reduced cost <= TIGHT_RTOL * max(max|C|, 1) are tight (optimal face);
# absolute below 1 because POT's duals carry ~1e-16 absolute error (barcart costs are O(1)).
TIGHT_RTOL = 1e-10
_DANTZIG_PIVOTS_PER_NODE = 10
_MAX_PIVOTS = 1_000_000


@njit(cache=True, nogil=True)
def tie_break(a, b):
    """Secondary cost between cost rows a and b: 0 on the diagonal, else a fixed value in
    [1, 2) from a hash of the unordered pair. Generic, so the optimal plan minimising it over
    all optimal plans is unique (and transposes with the pair)."""
    if a == b:
        return 0.0
    lo = min(a, b)
    hi = max(a, b)
    h = ((lo * 73856093) ^ (hi * 19349663)) % 1000003
    return 1.0 + h / 1000003.0


@njit(cache=True, nogil=True)
def _least_cost_start(a, b, m, n, C, X, basic, sa, sb, rdone, cdone):
    for i in range(m):
        sa[i] = a[i]
        rdone[i] = False
        for j in range(n):
            X[i, j] = 0.0
            basic[i, j] = False
    for j in range(n):
        sb[j] = b[j]
        cdone[j] = False
    # Least-cost start: every allocation crosses exactly one line (both on the last), which
    # yields m + n - 1 basic cells forming a spanning tree even when the start is degenerate.
    rows_left = m
    cols_left = n
    for _ in range(m + n - 1):
        best = np.inf
        bi = -1
        bj = -1
        for i in range(m):
            if rdone[i]:
                continue
            for j in range(n):
                if not cdone[j] and C[i, j] < best:
                    best = C[i, j]
                    bi = i
                    bj = j
        q = min(sa[bi], sb[bj])
        X[bi, bj] = q
        basic[bi, bj] = True
        sa[bi] -= q
        sb[bj] -= q
        if rows_left == 1 and cols_left == 1:
            break
        if (sa[bi] <= 0.0 and rows_left > 1) or cols_left == 1:
            rdone[bi] = True
            rows_left -= 1
        else:
            cdone[bj] = True
            cols_left -= 1


@njit(cache=True, nogil=True)
def _pivot(m, n, C, tol, X, basic, u, v, visited, par, queue):
    """Transportation simplex from the current basis; on return u, v are its duals."""
    pivots = 0
    bland_after = _DANTZIG_PIVOTS_PER_NODE * (m + n)
    ok = True
    nodes = m + n
    while True:
        # duals from the basis tree rooted at row 0 (u[0] = 0); par[] gives the rooted tree
        for k in range(nodes):
            visited[k] = False
        u[0] = 0.0
        visited[0] = True
        par[0] = -1
        queue[0] = 0
        head = 0
        tail = 1
        while head < tail:
            node = queue[head]
            head += 1
            if node < m:
                for j in range(n):
                    if basic[node, j] and not visited[m + j]:
                        v[j] = C[node, j] - u[node]
                        visited[m + j] = True
                        par[m + j] = node
                        queue[tail] = m + j
                        tail += 1
            else:
                j = node - m
                for i in range(m):
                    if basic[i, j] and not visited[i]:
                        u[i] = C[i, j] - v[j]
                        visited[i] = True
                        par[i] = node
                        queue[tail] = i
                        tail += 1
        # pricing
        ei = -1
        ej = -1
        bland = pivots >= bland_after
        best = -tol
        for i in range(m):
            for j in range(n):
                if basic[i, j]:
                    continue
                r = C[i, j] - u[i] - v[j]
                if r < best:
                    ei = i
                    ej = j
                    if bland:
                        break
                    best = r
            if bland and ei >= 0:
                break
        if ei < 0:
            break
        pivots += 1
        if pivots > _MAX_PIVOTS:
            ok = False
            break
        # cycle = entering cell + tree paths from row ei and column ej to their common ancestor
        for k in range(nodes):
            visited[k] = False
        x = ei
        while x >= 0:
            visited[x] = True
            x = par[x]
        lca = m + ej
        while not visited[lca]:
            lca = par[lca]
        theta = np.inf
        li = -1
        lj = -1
        for side in range(2):
            x = ei if side == 0 else m + ej
            sign = -1
            while x != lca:
                p = par[x]
                if x < m:
                    ci = x
                    cj = p - m
                else:
                    ci = p
                    cj = x - m
                if sign < 0:
                    val = X[ci, cj]
                    if val < theta or (bland and val == theta and ci * n + cj < li * n + lj):
                        theta = val
                        li = ci
                        lj = cj
                sign = -sign
                x = p
        for side in range(2):
            x = ei if side == 0 else m + ej
            sign = -1
            while x != lca:
                p = par[x]
                if x < m:
                    ci = x
                    cj = p - m
                else:
                    ci = p
                    cj = x - m
                if sign < 0:
                    X[ci, cj] -= theta
                else:
                    X[ci, cj] += theta
                sign = -sign
                x = p
        X[ei, ej] = theta
        basic[ei, ej] = True
        basic[li, lj] = False
        X[li, lj] = 0.0
    return ok


@njit(cache=True, nogil=True)
def _transport_small(
    a, b, m, n, C, C2, rid, cid, X, basic, u, v, sa, sb, rdone, cdone, visited, par, queue
):
    """Solve min <C, X> s.t. X 1 = a[:m], X^T 1 = b[:n], X >= 0 in place; return (cost, ok).

    Among all optimal plans the one minimising :func:`tie_break` (by cost rows ``rid``,
    ``cid``) is returned, so the plan does not depend on pivoting order: phase 2 re-optimises
    the secondary cost over the cells that are tight (reduced cost ~ 0) for phase 1's optimal
    duals, which is exactly the set of optimal plans (complementary slackness).
    Work arrays are at least (L, L) / (2L,) with L >= max(m, n); only [:m, :n] is touched.
    """
    scale = 0.0
    for i in range(m):
        for j in range(n):
            if C[i, j] > scale:
                scale = C[i, j]
    _least_cost_start(a, b, m, n, C, X, basic, sa, sb, rdone, cdone)
    ok = _pivot(m, n, C, REDUCED_COST_RTOL * scale, X, basic, u, v, visited, par, queue)
    tight_tol = TIGHT_RTOL * max(scale, 1.0)
    big = 4.0 * (m + n)
    ties = False
    for i in range(m):
        for j in range(n):
            if basic[i, j]:
                C2[i, j] = tie_break(rid[i], cid[j])
            elif C[i, j] - u[i] - v[j] <= tight_tol:
                C2[i, j] = tie_break(rid[i], cid[j])
                ties = True
            else:
                C2[i, j] = big
    if ties:
        ok = _pivot(m, n, C2, 1e-9, X, basic, u, v, visited, par, queue) and ok
    total = 0.0
    for i in range(m):
        for j in range(n):
            if basic[i, j] and X[i, j] > 0.0:
                total += X[i, j] * C[i, j]
    return total, ok


@njit(cache=True, parallel=True)
def _emd_pairs_kernel(
    indptr, cols, vals, cost, pi, pj, slot_ptr, dist, fsrc, ftgt, fmass, fcount, nchunks
):
    P = pi.shape[0]
    L = 1
    for r in range(indptr.shape[0] - 1):
        L = max(L, indptr[r + 1] - indptr[r])
    failed = np.zeros(max(nchunks, 1), dtype=np.int64)
    for c in prange(nchunks):
        start = c * P // nchunks
        stop = (c + 1) * P // nchunks
        C = np.empty((L, L))
        C2 = np.empty((L, L))
        X = np.empty((L, L))
        basic = np.empty((L, L), dtype=np.bool_)
        u = np.empty(L)
        v = np.empty(L)
        sa = np.empty(L)
        sb = np.empty(L)
        rdone = np.empty(L, dtype=np.bool_)
        cdone = np.empty(L, dtype=np.bool_)
        visited = np.empty(2 * L, dtype=np.bool_)
        par = np.empty(2 * L, dtype=np.int64)
        queue = np.empty(2 * L, dtype=np.int64)
        for q in range(start, stop):
            i0 = indptr[pi[q]]
            m = indptr[pi[q] + 1] - i0
            j0 = indptr[pj[q]]
            n = indptr[pj[q] + 1] - j0
            for x in range(m):
                for y in range(n):
                    C[x, y] = cost[cols[i0 + x], cols[j0 + y]]
            d, ok = _transport_small(
                vals[i0 : i0 + m],
                vals[j0 : j0 + n],
                m,
                n,
                C,
                C2,
                cols[i0 : i0 + m],
                cols[j0 : j0 + n],
                X,
                basic,
                u,
                v,
                sa,
                sb,
                rdone,
                cdone,
                visited,
                par,
                queue,
            )
            if not ok:
                failed[c] += 1
            dist[q] = d
            k = slot_ptr[q]
            for x in range(m):
                for y in range(n):
                    if basic[x, y] and X[x, y] > 0.0:
                        fsrc[k] = cols[i0 + x]
                        ftgt[k] = cols[j0 + y]
                        fmass[k] = X[x, y]
                        k += 1
            fcount[q] = k - slot_ptr[q]
    return failed.sum()


@njit(cache=True)
def _compact(slot_ptr, fcount, fsrc, ftgt, fmass):
    k = 0
    for q in range(fcount.shape[0]):
        s = slot_ptr[q]
        for t in range(fcount[q]):
            fsrc[k] = fsrc[s + t]
            ftgt[k] = ftgt[s + t]
            fmass[k] = fmass[s + t]
            k += 1
    return k


def emd_pairs(
    fractions: sp.csr_matrix,
    col_to_cost: np.ndarray,
    cost: np.ndarray,
    pair_i: np.ndarray,
    pair_j: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Exact EMD and an optimal plan for each pair of rows of ``fractions``.

    Parameters
    ----------
    fractions : (N, m) CSR, rows are probability vectors (no explicit zeros needed, but allowed).
    col_to_cost : (m,) int, row of ``cost`` for each column of ``fractions``.
    cost : (p, p) float64 ground cost (any non-negative finite square matrix).
    pair_i, pair_j : (P,) int row indices.

    Returns
    -------
    dist : (P,) float64 optimal transport cost.
    ptr : (P + 1,) int64; flows of pair q are ``[ptr[q], ptr[q + 1])``.
    source, target : int32 cost-row indices (source in row pair_i, target in row pair_j).
    mass : float64 > 0, the plan's non-zero entries (a basic optimal plan), ordered by
        (source position, target position) within the pair.

    Raises
    ------
    ValueError
        Naming the offending row, pair or column: the compiled kernel does not bounds-check,
        so fractions (CSR structure, rows summing to 1), ``cost`` (square, finite, >= 0),
        ``col_to_cost`` and the pair indices are checked here, in O(nnz + P + p^2).
    """
    f = fractions.tocsr() if sp.issparse(fractions) else fractions
    check_fractions(f)
    if not f.has_sorted_indices:
        f = f.sorted_indices()  # a sorted copy: the caller's matrix is left as it was
    costc = check_cost(cost, None, symmetric=False)
    col_map = check_col_map(col_to_cost, f.shape[1], costc.shape[0])
    pi, pj = check_pairs(pair_i, pair_j, f.shape[0])
    indptr = f.indptr.astype(np.int64)
    cols = col_map.astype(np.int32)[f.indices]
    vals = f.data.astype(np.float64)
    P = pi.shape[0]
    sizes = np.diff(indptr)
    slots = np.maximum(sizes[pi] + sizes[pj] - 1, 0) if P else np.zeros(0, dtype=np.int64)
    slot_ptr = np.zeros(P + 1, dtype=np.int64)
    np.cumsum(slots, out=slot_ptr[1:])
    dist = np.empty(P, dtype=np.float64)
    fsrc = np.empty(slot_ptr[-1], dtype=np.int32)
    ftgt = np.empty(slot_ptr[-1], dtype=np.int32)
    fmass = np.empty(slot_ptr[-1], dtype=np.float64)
    fcount = np.zeros(P, dtype=np.int64)
    if P:
        failed = _emd_pairs_kernel(
            indptr,
            cols,
            vals,
            costc,
            pi,
            pj,
            slot_ptr,
            dist,
            fsrc,
            ftgt,
            fmass,
            fcount,
            min(P, 16 * numba.get_num_threads()),
        )
        if failed:
            raise RuntimeError(f"transport simplex hit the pivot limit on {failed} pairs")
    total = _compact(slot_ptr, fcount, fsrc, ftgt, fmass) if P else 0
    ptr = np.zeros(P + 1, dtype=np.int64)
    np.cumsum(fcount, out=ptr[1:])
    return dist, ptr, _truncated(fsrc, total), _truncated(ftgt, total), _truncated(fmass, total)


def _truncated(a: np.ndarray, n: int) -> np.ndarray:
    """``a[:n]`` as an array of its own, without copying it: the slots past the flows go back
    to the allocator (a copy would hold both, a GB more at 100,000 recipes). ``a`` must own
    its data and have no views; ``emd_pairs``' slot arrays are only its own."""
    a.resize(n, refcheck=False)
    return a


def emd_dense(
    a: np.ndarray,
    b: np.ndarray,
    cost: np.ndarray,
    row_ids: np.ndarray | None = None,
    col_ids: np.ndarray | None = None,
) -> tuple[float, np.ndarray]:
    """Exact EMD between two dense histograms (zeros allowed) and an optimal (m, n) plan.

    A wrapper over the same compiled solver, for tests and small problems. ``row_ids`` /
    ``col_ids`` (default: positions) name the ingredients for the plan tie-break. ``a`` and
    ``b`` must be non-empty, finite, >= 0 and of equal total mass; ``cost`` (m, n) finite and
    >= 0 (ValueError naming the entry otherwise: the compiled solver checks nothing).
    """
    a = np.ascontiguousarray(as_1d("a", a, np.float64))
    b = np.ascontiguousarray(as_1d("b", b, np.float64))
    m, n = a.shape[0], b.shape[0]
    for name, h in (("a", a), ("b", b)):
        if h.size == 0:
            raise ValueError(f"{name} must have at least one entry")
        bad = ~np.isfinite(h) | (h < 0)
        if bad.any():
            pos = int(np.flatnonzero(bad)[0])
            raise ValueError(f"{name}[{pos}] = {float(h[pos])!r} is negative or non-finite")
    if abs(a.sum() - b.sum()) > ROW_SUM_TOL * max(1.0, float(a.sum())):
        raise ValueError(f"a and b differ in total mass: {float(a.sum())!r} and {float(b.sum())!r}")
    C = np.ascontiguousarray(cost, dtype=np.float64)
    if C.shape != (m, n):
        raise ValueError(f"cost has shape {C.shape}, expected {(m, n)}")
    if not np.all(np.isfinite(C) & (C >= 0)):
        row = int(np.argwhere(~(np.isfinite(C) & (C >= 0)))[0, 0])
        raise ValueError(f"cost row {row} has a negative or non-finite entry")
    row_ids = np.arange(m) if row_ids is None else as_1d("row_ids", row_ids, np.int64)
    col_ids = np.arange(n) if col_ids is None else as_1d("col_ids", col_ids, np.int64)
    if row_ids.shape != (m,) or col_ids.shape != (n,):
        raise ValueError(
            f"row_ids and col_ids must have {m} and {n} entries, got {row_ids.shape[0]} "
            f"and {col_ids.shape[0]}"
        )
    L = max(m, n, 1)
    X = np.zeros((L, L))
    basic = np.zeros((L, L), dtype=np.bool_)
    Cw = np.zeros((L, L))
    Cw[:m, :n] = C
    work = [np.empty(L) for _ in range(4)]
    d, ok = _transport_small(
        a,
        b,
        m,
        n,
        Cw,
        np.zeros((L, L)),
        np.asarray(row_ids, dtype=np.int64),
        np.asarray(col_ids, dtype=np.int64),
        X,
        basic,
        work[0],
        work[1],
        work[2],
        work[3],
        np.empty(L, dtype=np.bool_),
        np.empty(L, dtype=np.bool_),
        np.empty(2 * L, dtype=np.bool_),
        np.empty(2 * L, dtype=np.int64),
        np.empty(2 * L, dtype=np.int64),
    )
    if not ok:
        raise RuntimeError("transport simplex hit the pivot limit")
    plan = np.where(basic[:m, :n], X[:m, :n], 0.0)
    return float(d), plan
