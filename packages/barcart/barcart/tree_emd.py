"""Earth mover's distance under a tree metric, in closed form.

When the ground cost is the path length in a weighted tree, the optimal transport cost between
two distributions is sum over edges of weight x |mass of the first below the edge - mass of the
second below it| (every unit crossing an edge must cross it, and moving the surplus of each
subtree across its edge is feasible). A recipe then becomes a sparse vector of subtree masses
(its ingredients and their ancestors: at most ingredients x depth entries) and a pair's
distance is a weighted L1 between two such vectors: exact, and no transport problem is solved.

The closed form gives the distance, not the plan, so :func:`barcart.em.fit_em` uses it in the
first iteration (the starting cost is the tree distance) to compute every pair's distance and
solves transport problems only for the pairs whose plans its M-step reads.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
import scipy.sparse as sp
from numba import njit, prange

from barcart._validate import check_col_map, check_fractions, check_pairs
from barcart.tree import IngredientTree


@dataclass(frozen=True)
class TreeMetric:
    """A tree on the rows of a cost matrix.

    parent : (p,) int64, the parent's row, -1 where the parent is the root.
    weight : (p,) float64 > 0, the weight of the edge from the row to its parent.
    The distance of rows a and b is the total weight of the edges on the path between them.
    """

    parent: np.ndarray
    weight: np.ndarray

    def __post_init__(self) -> None:
        parent = np.asarray(self.parent, dtype=np.int64)
        weight = np.asarray(self.weight, dtype=np.float64)
        object.__setattr__(self, "parent", parent)
        object.__setattr__(self, "weight", weight)
        p = parent.shape[0] if parent.ndim == 1 else -1
        if p < 0 or weight.shape != (p,):
            raise ValueError("TreeMetric parent and weight must be 1-D of equal length")
        if np.any((parent < -1) | (parent >= p)):
            raise ValueError("TreeMetric parent rows must be -1 (the root) or a row index")
        if not np.all(np.isfinite(weight)) or np.any(weight <= 0):
            raise ValueError("TreeMetric weights must be finite and > 0")
        self._chains()  # reject cycles early

    @classmethod
    def from_tree(
        cls, tree: IngredientTree, cost_ids: np.ndarray, edge_weight: float = 1.0
    ) -> TreeMetric:
        """The metric of :func:`barcart.tree_distance_matrix` on ``cost_ids`` (which must hold
        every ancestor of its ids, root excluded, as ``tree.ancestors_closure`` returns)."""
        ids = np.asarray(cost_ids, dtype=np.int64)
        parent_ids = np.asarray(tree.parent_of(ids), dtype=np.int64)
        rows = np.searchsorted(ids, parent_ids)
        inner = parent_ids >= 0
        found = np.zeros(ids.shape, dtype=bool)
        found[inner] = (rows[inner] < ids.size) & (
            ids[np.minimum(rows[inner], ids.size - 1)] == parent_ids[inner]
        )
        if np.any(inner & ~found):
            bad = int(ids[np.flatnonzero(inner & ~found)[0]])
            raise ValueError(f"the parent of ingredient {bad} is not in cost_ids")
        parent = np.where(inner, rows, -1).astype(np.int64)
        return cls(parent, np.full(ids.shape, float(edge_weight)))

    def _chains(self) -> np.ndarray:
        """(p, D) rows on the path from each row up to the top (row first), padded with -1."""
        p = self.parent.shape[0]
        chains = [np.arange(p, dtype=np.int64)]
        cur = chains[0]
        for _ in range(p + 1):
            cur = np.where(cur >= 0, self.parent[np.maximum(cur, 0)], -1)
            if not np.any(cur >= 0):
                return np.stack(chains, axis=1)
            chains.append(cur)
        raise ValueError("TreeMetric parent rows form a cycle")

    def matrix(self) -> np.ndarray:
        """(p, p) float64 path lengths (for checking a cost matrix against the metric)."""
        up_chains = self._chains()
        p, levels = up_chains.shape
        depth = (up_chains >= 0).sum(axis=1)
        top_down = np.full((p, levels), -1, dtype=np.int64)  # column d: the ancestor at depth d
        for d in range(levels):
            has = depth > d
            top_down[has, d] = up_chains[has, depth[has] - 1 - d]
        w = np.where(top_down >= 0, self.weight[np.maximum(top_down, 0)], 0.0)
        up = w.sum(axis=1)  # weight from each row up to the root
        common = np.zeros((p, p))  # weight from the lowest common ancestor up to the root
        same = np.ones((p, p), dtype=bool)
        for d in range(levels):
            col = top_down[:, d]
            same &= (col[:, None] == col[None, :]) & (col[:, None] >= 0)
            common += np.where(same, w[:, d][:, None], 0.0)
        return up[:, None] + up[None, :] - 2.0 * common


def subtree_masses(fractions: sp.csr_matrix, col_to_cost: np.ndarray, metric: TreeMetric):
    """(N, p) CSR: for each recipe and cost row, the recipe's mass in that row's subtree."""
    f = fractions.tocoo()
    chains = metric._chains()
    nodes = chains[np.asarray(col_to_cost, dtype=np.int64)[f.col]]  # (nnz, D)
    ok = nodes >= 0
    rows = np.broadcast_to(f.row[:, None], nodes.shape)[ok]
    vals = np.broadcast_to(f.data[:, None], nodes.shape)[ok]
    out = sp.csr_matrix(
        (vals.astype(np.float64), (rows, nodes[ok])), shape=(f.shape[0], metric.parent.shape[0])
    )
    out.sum_duplicates()
    return out


@njit(cache=True, parallel=True)
def _weighted_l1_pairs(indptr, cols, vals, weight, pi, pj, out, nchunks):
    P = pi.shape[0]
    for c in prange(nchunks):
        for q in range(c * P // nchunks, (c + 1) * P // nchunks):
            x = indptr[pi[q]]
            xe = indptr[pi[q] + 1]
            y = indptr[pj[q]]
            ye = indptr[pj[q] + 1]
            total = 0.0
            while x < xe or y < ye:
                if y >= ye or (x < xe and cols[x] < cols[y]):
                    total += weight[cols[x]] * vals[x]
                    x += 1
                elif x >= xe or cols[y] < cols[x]:
                    total += weight[cols[y]] * vals[y]
                    y += 1
                else:
                    total += weight[cols[x]] * abs(vals[x] - vals[y])
                    x += 1
                    y += 1
            out[q] = total


def tree_emd_pairs(
    fractions: sp.csr_matrix,
    col_to_cost: np.ndarray,
    metric: TreeMetric,
    pair_i: np.ndarray,
    pair_j: np.ndarray,
) -> np.ndarray:
    """(P,) exact EMD of each pair of rows of ``fractions`` under the metric's path lengths.

    ``col_to_cost`` maps each column of ``fractions`` to its row in the metric (as for
    :func:`barcart.emd.emd_pairs`); rows are probability vectors. Inputs are checked as
    :func:`barcart.emd.emd_pairs` checks them (ValueError naming the row, pair or column).
    """
    f = fractions.tocsr() if sp.issparse(fractions) else fractions
    check_fractions(f)
    cols = check_col_map(col_to_cost, f.shape[1], metric.parent.shape[0], "the metric")
    pi, pj = check_pairs(pair_i, pair_j, f.shape[0])
    masses = subtree_masses(f, cols, metric)
    out = np.zeros(pi.shape[0])
    if pi.size:
        _weighted_l1_pairs(
            masses.indptr.astype(np.int64),
            masses.indices.astype(np.int64),
            masses.data,
            np.asarray(metric.weight, dtype=np.float64),
            pi,
            pj,
            out,
            min(pi.size, 16 * numba.get_num_threads()),
        )
    return out
