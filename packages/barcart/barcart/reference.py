"""Plain reference implementation of the EM fit, step by step as
docs/analytics.md#em-learned-ingredient-cost states it.

One ``ot.emd`` call per pair, dense N x N L1 matrix for the first candidates, Python loops
for the M-step. It is the oracle for tests and the benchmark baseline; the assets never use it.
It shares only the result types, the input checks and the ranking rule with the fast path.

Two plan rules:

- ``tie_break=False`` (the benchmark baseline, exactly one ``ot.emd`` call per pair):
  the plan is whichever optimal plan POT's network simplex returns;
- ``tie_break=True`` (the default, the test oracle): among the optimal plans the one minimising
  the fixed secondary cost of :func:`barcart.emd.tie_break`, found by a second ``ot.emd``
  restricted to the optimal face, which is the fast path's rule. Distances are identical under
  both rules; only plans (hence learned costs) can differ where several plans are optimal.
"""

from __future__ import annotations

import time

import numpy as np
import ot
from scipy.spatial.distance import cdist

from barcart._select import FLOW_QUANTUM, rank_key
from barcart.em import EMParams, EMResult, Progress, TransportPlans, check_em_inputs
from barcart.volumes import RecipeMatrix


def _ranked(row_keys: np.ndarray, candidates: np.ndarray, k: int) -> np.ndarray:
    """The k candidates with the smallest keys, ties by smaller index."""
    order = np.lexsort((candidates, row_keys[candidates]))
    return candidates[order[:k]]


def reference_candidates_l1(dense: np.ndarray, k: int) -> set[tuple[int, int]]:
    """Iteration-1 pairs: each recipe's top-k by L1 (sum |p - q|), unordered, as a set."""
    n = dense.shape[0]
    keys = rank_key(cdist(dense, dense, "cityblock")) if n else np.zeros((0, 0))
    pairs: set[tuple[int, int]] = set()
    for i in range(n):
        others = np.array([j for j in range(n) if j != i], dtype=np.int64)
        for j in _ranked(keys[i], others, k):
            pairs.add((min(i, int(j)), max(i, int(j))))
    return pairs


def _known_topk(known: dict[int, dict[int, float]], i: int, k: int) -> list[tuple[int, float]]:
    items = sorted(known[i].items(), key=lambda kv: (float(rank_key(kv[1])), kv[0]))
    return items[:k]


def tie_break_matrix(row_ids: np.ndarray, col_ids: np.ndarray) -> np.ndarray:
    """The secondary cost of :func:`barcart.emd.tie_break` for all (row, col) id pairs."""
    a = np.asarray(row_ids, dtype=np.int64)[:, None]
    b = np.asarray(col_ids, dtype=np.int64)[None, :]
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    h = ((lo * 73856093) ^ (hi * 19349663)) % 1000003
    return np.where(a == b, 0.0, 1.0 + h / 1000003.0)


def plain_emd(a: np.ndarray, b: np.ndarray, cost: np.ndarray) -> tuple[float, np.ndarray]:
    """POT's exact network simplex on one pair, one call: (distance, POT's optimal plan)."""
    plan = ot.emd(a, b, cost)
    return float(np.sum(plan * cost)), plan


def reference_emd(
    a: np.ndarray, b: np.ndarray, cost: np.ndarray, row_ids: np.ndarray, col_ids: np.ndarray
) -> tuple[float, np.ndarray]:
    """POT's exact network simplex on one pair: (distance, canonical plan).

    Same plan rule as the fast path: among the optimal plans (cells tight for POT's optimal
    duals) the one minimising the tie-break cost, found by a second ``ot.emd``.
    """
    plan, log = ot.emd(a, b, cost, log=True)
    reduced = cost - log["u"][:, None] - log["v"][None, :]
    tight = (reduced <= 1e-10 * max(cost.max(initial=0.0), 1.0)) | (plan > 0)
    secondary = np.where(tight, tie_break_matrix(row_ids, col_ids), 1e3)
    plan = ot.emd(a, b, secondary)
    return float(np.sum(plan * cost)), plan


def fit_em_reference(
    matrix: RecipeMatrix,
    cost_ids: np.ndarray,
    cost: np.ndarray,
    params: EMParams = EMParams(),  # noqa: B008
    progress: Progress | None = None,
    *,
    timings: dict[str, float] | None = None,
    tie_break: bool = True,
) -> EMResult:
    """Same contract as :func:`barcart.em.fit_em`, computed the obvious way.

    ``tie_break=False`` is the literal plain implementation (exactly one ``ot.emd`` per
    pair, POT's plan); ``True`` picks the canonical optimal plan like the fast path (a second
    ``ot.emd`` per pair), so that learned costs can be compared to round-off.
    """
    ids, cur, col_to_cost = check_em_inputs(matrix, cost_ids, cost)
    n = matrix.n_recipes
    p = ids.shape[0]
    clock = timings if timings is not None else {}
    dense = matrix.fractions.toarray()
    supports = [np.flatnonzero(dense[i] > 0) for i in range(n)]
    if n < 2:
        return EMResult.unfitted(ids, cur)
    history: list[float] = []
    known: dict[int, dict[int, float]] = {}
    pairs: list[tuple[int, int]] = []
    dists: list[float] = []
    flows: list[list[tuple[int, int, float]]] = []
    converged = False
    it = 0
    for it in range(1, params.max_iter + 1):
        t0 = time.perf_counter()
        # 1. candidates
        if it == 1:
            cand = reference_candidates_l1(dense, params.k_candidates)
        else:
            cand = set()
            for i in range(n):
                for j, _ in _known_topk(known, i, params.k_candidates):
                    cand.add((min(i, j), max(i, j)))
        pairs = sorted(cand)
        clock["candidates"] = clock.get("candidates", 0.0) + time.perf_counter() - t0
        if progress:
            progress("candidates", it, params.max_iter)
        # 2. E-step
        t0 = time.perf_counter()
        dists, flows = [], []
        known = {i: {} for i in range(n)}
        for i, j in pairs:
            si, sj = supports[i], supports[j]
            sub = cur[np.ix_(col_to_cost[si], col_to_cost[sj])]
            if tie_break:
                d, plan = reference_emd(
                    dense[i, si], dense[j, sj], sub, col_to_cost[si], col_to_cost[sj]
                )
            else:
                d, plan = plain_emd(dense[i, si], dense[j, sj], sub)
            dists.append(d)
            a_idx, b_idx = np.nonzero(plan > 0)
            flows.append(
                [
                    (int(col_to_cost[si[a]]), int(col_to_cost[sj[b]]), float(plan[a, b]))
                    for a, b in zip(a_idx, b_idx, strict=True)
                ]
            )
            known[i][j] = d
            known[j][i] = d
        clock["e-step"] = clock.get("e-step", 0.0) + time.perf_counter() - t0
        if progress:
            progress("e-step", it, params.max_iter)
        # 3. M-step
        t0 = time.perf_counter()
        pair_index = {pq: q for q, pq in enumerate(pairs)}
        t = np.zeros((p, p))
        for r in range(n):
            nearest = _known_topk(known, r, params.k_neighbors)
            if not nearest:
                continue
            d = np.array([dd for _, dd in nearest])
            w = np.exp(-params.beta * (d - d.min()))
            w /= w.sum()
            for (s, _), ws in zip(nearest, w, strict=True):
                plan_flows = flows[pair_index[(min(r, s), max(r, s))]]
                # masses compared after rounding (FLOW_QUANTUM), like the fast path
                qmass = [float(np.rint(fl[2] / FLOW_QUANTUM)) for fl in plan_flows]
                threshold = np.rint(params.min_flow_fraction * max(qmass))
                kept = [
                    (qm, fl)
                    for qm, fl in zip(qmass, plan_flows, strict=True)
                    if qm > 0 and qm >= threshold
                ]
                kept.sort(key=lambda x: (-x[0], x[1][0], x[1][1]))
                kept = [fl for _, fl in kept]
                for a, b, mass in kept[: params.top_flows]:
                    t[a, b] += ws * mass
        t = (t + t.T) / 2
        m = p
        rs = t.sum(axis=1)
        cs = t.sum(axis=0)
        e = np.outer(rs + params.alpha * m, cs + params.alpha * m) / (
            t.sum() + params.alpha * m * m
        )
        new = -np.log((t + params.alpha) / e)
        new = (new + new.T) / 2
        new = new - new.min()
        np.fill_diagonal(new, 0.0)
        if m > 1:
            med = np.median(new[~np.eye(m, dtype=bool)])
            if med > 0:
                new = new * (params.median_target / med)
        change = (
            np.linalg.norm(new - cur) / np.linalg.norm(cur)
            if np.linalg.norm(cur)
            else (0.0 if np.linalg.norm(new) == 0 else np.inf)
        )
        history.append(float(change))
        cur = new
        clock["m-step"] = clock.get("m-step", 0.0) + time.perf_counter() - t0
        if progress:
            progress("m-step", it, params.max_iter)
        if change < params.tol:
            converged = True
            break
    ptr = np.zeros(len(pairs) + 1, dtype=np.int64)
    ptr[1:] = np.cumsum([len(fl) for fl in flows])
    flat = [fl for plan in flows for fl in plan]
    return EMResult(
        cost_ids=ids,
        cost=cur,
        pair_i=np.array([i for i, _ in pairs], dtype=np.int32),
        pair_j=np.array([j for _, j in pairs], dtype=np.int32),
        distances=np.array(dists, dtype=np.float64),
        plans=TransportPlans(
            ptr=ptr,
            source=np.array([a for a, _, _ in flat], dtype=np.int32),
            target=np.array([b for _, b, _ in flat], dtype=np.int32),
            mass=np.array([c for _, _, c in flat], dtype=np.float64),
        ),
        iterations=it,
        converged=converged,
        history=tuple(history),
    )
