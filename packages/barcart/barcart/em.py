"""EM fit of ingredient costs from recipe transport plans.

The algorithm, its parameters and the reasons for them are in
docs/analytics.md#em-learned-ingredient-cost. Exactness: every E-step distance and plan is an
exact optimum (see :mod:`barcart.emd`); the candidate search is exact (no approximate nearest
neighbours, no N x N matrix). Choices the algorithm itself leaves open, made the same way in
:mod:`barcart.reference`:

- ranking: distances are compared after rounding to 1e-10, ties go to the smaller recipe index;
  flow masses are compared after rounding to 1e-12, ties keep (source, target) order;
- later iterations read "each recipe's top-K by the previous iteration's EMD" as: among the
  pairs computed in the previous iteration (other distances are unknown), so the pair set
  never grows after iteration 1;
- the first E-step, when the caller passes the tree of the starting cost, takes every distance
  from the closed form on the tree (:mod:`barcart.tree_emd`) and solves transport problems only
  for the pairs whose plans the M-step reads (the k nearest of each recipe); later E-steps
  (learned costs are no tree metric) solve every pair;
- when a pair has several optimal plans (common: the starting tree cost has many ties), the
  plan is the optimal one minimising a fixed secondary cost (:func:`barcart.emd.tie_break`),
  so the learned cost does not depend on the solver's pivoting order. With this rule the fast
  path and the reference agree to round-off.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import scipy.sparse as sp

from barcart import _select
from barcart._validate import check_cost, check_fractions, check_pairs
from barcart.emd import emd_pairs
from barcart.tree_emd import TreeMetric, tree_emd_pairs
from barcart.volumes import RecipeMatrix

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class EMParams:
    """EM settings (defaults and reasons: docs/analytics.md#em-learned-ingredient-cost).

    ``k_candidates`` is a fixed count, not a fraction of N, so the pairs per iteration (at most
    N x K) and the fit's work grow linearly with the number of recipes.

    max_iter : iterations at most (>= 1).
    tol : stop when ||new - old||_F / ||old||_F < tol (>= 0).
    k_candidates : K, candidate recipes per recipe each iteration (>= 1), independent of N.
    k_neighbors : k, nearest computed pairs per recipe used by the M-step (>= 1).
    beta : Boltzmann inverse temperature (>= 0).
    top_flows : flows kept per plan (>= 1).
    min_flow_fraction : a kept flow has mass >= this x the plan's largest flow, in [0, 1].
    alpha : Laplace pseudo-count (> 0).
    median_target : median off-diagonal learned cost (> 0).
    """

    max_iter: int = 5
    tol: float = 1e-3
    k_candidates: int = 100
    k_neighbors: int = 10
    beta: float = 1.0
    top_flows: int = 3
    min_flow_fraction: float = 0.05
    alpha: float = 1.0
    median_target: float = 1.0

    def __post_init__(self) -> None:
        for name in ("max_iter", "k_candidates", "k_neighbors", "top_flows"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
                raise ValueError(f"EMParams.{name} must be an integer >= 1, got {value!r}")
        checks = {
            "tol": lambda x: x >= 0,
            "beta": lambda x: x >= 0,
            "min_flow_fraction": lambda x: 0 <= x <= 1,
            "alpha": lambda x: x > 0,
            "median_target": lambda x: x > 0,
        }
        for name, ok in checks.items():
            value = getattr(self, name)
            if (
                not isinstance(value, int | float | np.floating)
                or not np.isfinite(value)
                or not ok(value)
            ):
                raise ValueError(f"EMParams.{name} is out of range: {value!r}")


@dataclass(frozen=True)
class TransportPlans:
    """Optimal plans of P pairs in CSR form: flows of pair q are ``[ptr[q], ptr[q + 1])``.

    source, target : int32 row indices into ``EMResult.cost_ids``; mass : float64 > 0.
    """

    ptr: np.ndarray
    source: np.ndarray
    target: np.ndarray
    mass: np.ndarray

    def plan(self, q: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        s, e = int(self.ptr[q]), int(self.ptr[q + 1])
        return self.source[s:e], self.target[s:e], self.mass[s:e]


@dataclass(frozen=True)
class EMResult:
    """Learned cost and the last iteration's pair distances and plans.

    cost_ids : (p,) int64 ingredient ids of the cost rows. cost : (p, p) float64 learned cost.
    pair_i, pair_j : (P,) int32 recipe row indices, i < j, sorted by (i, j).
    distances : (P,) float64 exact EMD of each pair under the cost of the last E-step.
    plans : plan of pair q moves mass from an ingredient of recipe pair_i[q] to one of pair_j[q].
    iterations : iterations run; converged : stopped by ``tol``; history : relative Frobenius
    change of the cost per iteration.
    """

    cost_ids: np.ndarray
    cost: np.ndarray
    pair_i: np.ndarray
    pair_j: np.ndarray
    distances: np.ndarray
    plans: TransportPlans
    iterations: int
    converged: bool
    history: tuple[float, ...] = field(default=())

    @classmethod
    def unfitted(cls, cost_ids: np.ndarray, cost: np.ndarray) -> EMResult:
        """The result when there is no pair to learn from (fewer than 2 recipes): the
        starting cost, unchanged, and no distances or plans."""
        empty = np.zeros(0, dtype=np.int32)
        plans = TransportPlans(np.zeros(1, dtype=np.int64), empty, empty, np.zeros(0))
        return cls(cost_ids, cost.copy(), empty, empty, np.zeros(0), plans, 0, True, ())

    def neighbor_graph(self, n_recipes: int) -> sp.csr_matrix:
        """Symmetric (N, N) CSR of the known distances, unknown pairs absent.

        Known distances of 0 (identical recipes) are kept as *explicit* stored zeros: read the
        structure (``indptr``/``indices``), never call ``eliminate_zeros`` on it.
        """
        n = _count("n_recipes", n_recipes, 0)
        i, j = check_pairs(self.pair_i, self.pair_j, n, "the recipes")
        rows = np.concatenate([i, j])
        cols = np.concatenate([j, i])
        data = np.concatenate([self.distances, self.distances])
        g = sp.csr_matrix((data, (rows, cols)), shape=(n, n))
        g.sort_indices()
        return g

    def knn(self, n_recipes: int, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per recipe its k nearest among the computed pairs (by rank key, then index).

        Returns indices (N, k) int64, distances (N, k) float64 and pair (N, k) int64 (index of
        the pair), padded with -1 / inf / -1 where a recipe has fewer than k computed pairs.
        ValueError if a pair names a recipe row outside ``n_recipes`` (the compiled kernels
        would write past their arrays).
        """
        n = _count("n_recipes", n_recipes, 0)
        k = _count("k", k, 1)
        pi, pj = check_pairs(self.pair_i, self.pair_j, n, "the recipes")
        if self.distances.shape != pi.shape:
            raise ValueError(
                f"distances has {self.distances.shape[0]} entries but there are {pi.shape[0]} pairs"
            )
        near = nearest_known(pi, pj, self.distances, n, k)
        idx = np.full((n, k), -1, dtype=np.int64)
        dist = np.full((n, k), np.inf)
        pq = np.full((n, k), -1, dtype=np.int64)
        rows = near.rows()
        slot = np.arange(rows.size) - near.ptr[rows]
        idx[rows, slot] = near.neighbor
        pq[rows, slot] = near.pair
        dist[rows, slot] = self.distances[near.pair]
        return idx, dist, pq


def _count(name: str, value: object, least: int) -> int:
    """``value`` as an int >= ``least`` (bools and fractional numbers refused)."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < least:
        raise ValueError(f"{name} must be an integer >= {least}, got {value!r}")
    return int(value)


def cost_from_counts(t: np.ndarray, alpha: float, median_target: float) -> np.ndarray:
    """M-step closing formula: symmetric counts T (p, p) -> learned cost (p, p).

    E = (R + alpha m)(C + alpha m)^T / (N + alpha m^2); cost = -log((T + alpha) / E), shifted to
    minimum 0, zero diagonal, scaled so the median off-diagonal entry is ``median_target``
    (left unscaled when that median is 0 or there is no off-diagonal entry).
    """
    m = t.shape[0]
    r = t.sum(axis=1)
    c = t.sum(axis=0)
    e = np.outer(r + alpha * m, c + alpha * m) / (t.sum() + alpha * m * m)
    cost = -np.log((t + alpha) / e)
    cost = (cost + cost.T) / 2.0  # R and C differ only by rounding; keep the cost symmetric
    cost -= cost.min()
    np.fill_diagonal(cost, 0.0)
    if m > 1:
        med = float(np.median(cost[~np.eye(m, dtype=bool)]))
        if med > 0:
            cost *= median_target / med
    return cost


def relative_change(new: np.ndarray, old: np.ndarray) -> float:
    """||new - old||_F / ||old||_F (0 if both are zero, inf if only old is zero)."""
    den = float(np.linalg.norm(old))
    num = float(np.linalg.norm(new - old))
    if den == 0.0:
        return 0.0 if num == 0.0 else float("inf")
    return num / den


def check_em_inputs(
    matrix: RecipeMatrix, cost_ids: np.ndarray, cost: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validate and return (cost_ids int64, cost float64, col_to_cost int64)."""
    check_fractions(matrix.fractions, "matrix.fractions")
    ids = np.asarray(cost_ids, dtype=np.int64)
    if ids.ndim != 1 or (ids.size > 1 and np.any(np.diff(ids) <= 0)):
        raise ValueError("cost_ids must be 1-D, sorted ascending and unique")
    c = check_cost(cost, ids.shape[0])
    col_to_cost = np.searchsorted(ids, matrix.ingredient_ids)
    missing = (col_to_cost >= ids.size) | (
        ids[np.minimum(col_to_cost, max(ids.size - 1, 0))] != matrix.ingredient_ids
        if ids.size
        else np.ones(matrix.ingredient_ids.shape, dtype=bool)
    )
    if np.any(missing):
        bad = int(matrix.ingredient_ids[np.flatnonzero(missing)[0]])
        raise ValueError(f"ingredient {bad} of the matrix is not in cost_ids")
    return ids, c, col_to_cost.astype(np.int64)


def _unique_pairs(rows: np.ndarray, cols: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    lo = np.minimum(rows, cols).astype(np.int64)
    hi = np.maximum(rows, cols).astype(np.int64)
    keep = lo != hi
    code = np.sort(lo[keep] * n + hi[keep])  # np.sort + diff: much faster than np.unique here
    if code.size:
        code = code[np.concatenate(([True], code[1:] != code[:-1]))]
    return (code // n).astype(np.int64), (code % n).astype(np.int64)


def candidate_pairs_l1(fractions: sp.csr_matrix, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Iteration-1 pairs: union of each recipe's exact top-k by L1, as sorted (i < j) arrays."""
    n = fractions.shape[0]
    idx, _ = _select.l1_topk(fractions, k)
    rows = np.repeat(np.arange(n, dtype=np.int64), idx.shape[1])
    return _unique_pairs(rows, idx.ravel(), n)


class NearestKnown(NamedTuple):
    """Per recipe its k nearest computed pairs, as CSR: recipe r's entries are
    ``[ptr[r], ptr[r + 1])``, nearest first; ``neighbor`` the other recipe, ``pair`` the pair."""

    ptr: np.ndarray
    neighbor: np.ndarray
    pair: np.ndarray

    def rows(self) -> np.ndarray:
        """The recipe of each entry."""
        return np.repeat(np.arange(self.ptr.shape[0] - 1, dtype=np.int64), np.diff(self.ptr))


def nearest_known(
    pair_i: np.ndarray, pair_j: np.ndarray, distances: np.ndarray, n: int, k: int
) -> NearestKnown:
    """Each recipe's k nearest among the computed pairs (by rank key, then neighbour index)."""
    indptr, nbr, pair = _select.directed_csr(pair_i, pair_j, n)
    out_ptr, pos = _select.row_topk(indptr, _select.rank_key(distances[pair]), k)
    return NearestKnown(out_ptr, nbr[pos], pair[pos])


def candidate_pairs_known(
    pair_i: np.ndarray, pair_j: np.ndarray, distances: np.ndarray, n: int, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Later-iteration pairs: union of each recipe's top-k among the known pairs by distance."""
    near = nearest_known(pair_i, pair_j, distances, n, k)
    return _unique_pairs(near.rows(), near.neighbor, n)


def m_step_counts(
    pair_i: np.ndarray,
    pair_j: np.ndarray,
    distances: np.ndarray,
    ptr: np.ndarray,
    source: np.ndarray,
    target: np.ndarray,
    mass: np.ndarray,
    n: int,
    p: int,
    params: EMParams,
    near: NearestKnown | None = None,
) -> np.ndarray:
    """Symmetrised weighted flow counts T (p, p) of the M-step.

    Reads the plans of each recipe's ``k_neighbors`` nearest pairs (``near``, computed here
    unless the caller has it) and no other.
    """
    if near is None:
        near = nearest_known(pair_i, pair_j, distances, n, params.k_neighbors)
    rows, q, out_ptr = near.rows(), near.pair, near.ptr
    d = distances[q]
    dmin = np.full(n, np.inf)
    nonempty = np.diff(out_ptr) > 0
    if d.size:
        dmin[nonempty] = np.minimum.reduceat(d, out_ptr[:-1][nonempty])
    w = np.exp(-params.beta * (d - dmin[rows]))
    wsum = np.bincount(rows, weights=w, minlength=n)
    w = w / wsum[rows]
    fs, ft, fm = _select.top_flows(
        ptr, source, target, mass, params.top_flows, params.min_flow_fraction, False
    )
    s = fs[q].ravel().astype(np.int64)
    t = ft[q].ravel().astype(np.int64)
    val = (fm[q] * w[:, None]).ravel()
    ok = s >= 0
    counts = np.bincount(s[ok] * p + t[ok], weights=val[ok], minlength=p * p).reshape(p, p)
    return (counts + counts.T) / 2.0


def _tree_e_step(
    f: sp.csr_matrix,
    col_to_cost: np.ndarray,
    cost: np.ndarray,
    metric: TreeMetric,
    pi: np.ndarray,
    pj: np.ndarray,
    n: int,
    k_neighbors: int,
) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray], NearestKnown]:
    """First E-step under the tree cost: every distance in closed form, plans (exact
    transport) only for the pairs the M-step reads (returned too); the others' plans are empty."""
    dist = tree_emd_pairs(f, col_to_cost, metric, pi, pj)
    near = nearest_known(pi, pj, dist, n, k_neighbors)
    read = np.unique(near.pair)
    d_read, ptr_read, src, tgt, mass = emd_pairs(f, col_to_cost, cost, pi[read], pj[read])
    scale = max(1.0, float(np.abs(dist[read]).max(initial=0.0)))
    if read.size and np.abs(d_read - dist[read]).max() > 1e-9 * scale:
        worst = int(read[np.argmax(np.abs(d_read - dist[read]))])
        raise RuntimeError(
            f"tree closed form and transport solver disagree on pair {worst}: the starting "
            "cost is not the tree metric's distance"
        )
    counts = np.zeros(pi.shape[0], dtype=np.int64)
    counts[read] = np.diff(ptr_read)
    ptr = np.zeros(pi.shape[0] + 1, dtype=np.int64)
    np.cumsum(counts, out=ptr[1:])
    return dist, (ptr, src, tgt, mass), near


def fit_em(
    matrix: RecipeMatrix,
    cost_ids: np.ndarray,
    cost: np.ndarray,
    params: EMParams = EMParams(),  # noqa: B008 - frozen dataclass, safe as default
    progress: Progress | None = None,
    *,
    timings: dict[str, float] | None = None,
    tree_metric: TreeMetric | None = None,
) -> EMResult:
    """Learn ingredient costs by alternating exact EMD (E) and flow statistics (M).

    Parameters
    ----------
    matrix : RecipeMatrix, the rolled-up recipes (N recipes, fractions rows sum to 1).
    cost_ids : (p,) sorted unique ingredient ids, a superset of ``matrix.ingredient_ids``.
    cost : (p, p) starting cost (the tree distance): square, symmetric, finite, >= 0.
    params : EMParams.
    progress : called as ``progress(stage, done, total)`` after each stage ("candidates",
        "e-step", "m-step") of each iteration, ``done`` being the 1-based iteration.
    timings : if given, seconds per stage are accumulated into it under the same names.
    tree_metric : the tree whose path lengths ``cost`` is (the usual starting cost, the tree
        distance of docs/analytics.md#tree-distance, is one). Given, the first E-step computes
        every distance in closed form (:mod:`barcart.tree_emd`) and solves transport problems
        only for the pairs whose plans the M-step reads; the result is the same. ``cost`` must
        equal ``tree_metric.matrix()`` (ValueError otherwise).

    Returns
    -------
    EMResult
        Pairs are chosen as documented in the module: iteration 1 by exact L1 top-K, later
        iterations by top-K of the previous EMD among the pairs computed before. With fewer
        than 2 recipes there is no pair: the starting cost is returned, ``iterations == 0``.
    """
    ids, cur, col_to_cost = check_em_inputs(matrix, cost_ids, cost)
    if tree_metric is not None:
        expected = tree_metric.matrix()
        if expected.shape != cur.shape or not np.allclose(
            expected, cur, rtol=1e-12, atol=1e-12 * max(1.0, float(cur.max(initial=0.0)))
        ):
            raise ValueError("cost is not the distance matrix of tree_metric")
    n = matrix.n_recipes
    p = ids.shape[0]
    f = matrix.fractions
    clock = timings if timings is not None else {}

    def tick(stage: str, t0: float, it: int) -> float:
        clock[stage] = clock.get(stage, 0.0) + time.perf_counter() - t0
        if progress is not None:
            progress(stage, it, params.max_iter)
        return time.perf_counter()

    if n < 2:  # no pair, nothing to learn from: keep the starting cost
        return EMResult.unfitted(ids, cur)
    start = cur
    history: list[float] = []
    pi = pj = np.zeros(0, dtype=np.int64)
    dist = np.zeros(0)
    plans: tuple[np.ndarray, ...] = (
        np.zeros(1, dtype=np.int64), np.zeros(0, np.int32), np.zeros(0, np.int32), dist
    )
    converged = False
    partial = False
    it = 0
    for it in range(1, params.max_iter + 1):
        t0 = time.perf_counter()
        if it == 1:
            pi, pj = candidate_pairs_l1(f, params.k_candidates)
        else:
            pi, pj = candidate_pairs_known(pi, pj, dist, n, params.k_candidates)
        t0 = tick("candidates", t0, it)
        partial = it == 1 and tree_metric is not None and params.max_iter > 1
        near = None
        # The previous plans are read no more: released before the E-step makes the next
        # (both at once were a GB more at 100,000 recipes).
        plans = ()
        if partial:
            dist, plans, near = _tree_e_step(
                f, col_to_cost, cur, tree_metric, pi, pj, n, params.k_neighbors
            )
        else:
            dist, *flows = emd_pairs(f, col_to_cost, cur, pi, pj)
            plans = tuple(flows)
            del flows
        t0 = tick("e-step", t0, it)
        counts = m_step_counts(pi, pj, dist, *plans, n, p, params, near)
        new = cost_from_counts(counts, params.alpha, params.median_target)
        change = relative_change(new, cur)
        history.append(change)
        cur = new
        tick("m-step", t0, it)
        if change < params.tol:
            converged = True
            break
    if partial:  # stopped after the first iteration: the result holds every pair's plan
        plans = ()
        _, *flows = emd_pairs(f, col_to_cost, start, pi, pj)
        plans = tuple(flows)
    return EMResult(
        cost_ids=ids,
        cost=cur,
        pair_i=pi.astype(np.int32),
        pair_j=pj.astype(np.int32),
        distances=dist,
        plans=TransportPlans(*plans),
        iterations=it,
        converged=converged,
        history=tuple(history),
    )
