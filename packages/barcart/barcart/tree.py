"""The ingredient tree (from materialized paths) and tree distances."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

ROOT = -1
_PATH_RE = re.compile(r"^/(?:\d+/)+$")


class TreeError(ValueError):
    """The ingredient paths do not describe a tree; the message names the ingredient."""


@dataclass(frozen=True)
class IngredientTree:
    """Ingredients as a forest under a synthetic root.

    Attributes
    ----------
    ids : (n,) int64, sorted ascending, unique.
    parent_ids : (n,) int64, the parent's id; -1 where the parent is the synthetic root.
    """

    ids: np.ndarray
    parent_ids: np.ndarray

    def __post_init__(self) -> None:
        ids = np.asarray(self.ids, dtype=np.int64)
        parents = np.asarray(self.parent_ids, dtype=np.int64)
        if ids.ndim != 1 or parents.shape != ids.shape:
            raise TreeError("ids and parent_ids must be 1-D of equal length")
        if ids.size and np.any(np.diff(ids) <= 0):
            raise TreeError("ids must be sorted ascending and unique")
        if ids.size and ids[0] < 0:
            raise TreeError(f"ingredient {int(ids[0])}: ids must be non-negative")
        object.__setattr__(self, "ids", ids)
        object.__setattr__(self, "parent_ids", parents)
        pos = self._positions(parents[parents != ROOT], strict=False)
        if np.any(pos < 0):
            bad = int(ids[parents != ROOT][pos < 0][0])
            raise TreeError(f"ingredient {bad}: parent is not a known ingredient")
        self._compute_depth()  # raises on cycles

    @classmethod
    def from_paths(cls, ids: Sequence[int], paths: Sequence[str]) -> IngredientTree:
        """Build the tree from ``ingredients.path`` ('/1/10/17/': top -> down, ending in self).

        Raises
        ------
        TreeError
            Naming the ingredient id whose path is malformed, does not end in its own id,
            names an unknown id, repeats an id, or disagrees with its parent's path.
        """
        id_list = [int(i) for i in ids]
        path_list = list(paths)
        if len(id_list) != len(path_list):
            raise TreeError(f"{len(id_list)} ids but {len(path_list)} paths")
        parsed: dict[int, tuple[int, ...]] = {}
        for iid, path in zip(id_list, path_list, strict=True):
            if iid in parsed:
                raise TreeError(f"ingredient {iid}: duplicate id")
            if not isinstance(path, str) or not _PATH_RE.match(path):
                raise TreeError(f"ingredient {iid}: malformed path {path!r}")
            parts = tuple(int(x) for x in path.strip("/").split("/"))
            if parts[-1] != iid:
                raise TreeError(f"ingredient {iid}: path {path!r} does not end in its own id")
            if len(set(parts)) != len(parts):
                raise TreeError(f"ingredient {iid}: path {path!r} repeats an id (cycle)")
            parsed[iid] = parts
        for iid, parts in parsed.items():
            for anc in parts[:-1]:
                if anc not in parsed:
                    raise TreeError(f"ingredient {iid}: path names missing ingredient {anc}")
            if len(parts) > 1 and parsed[parts[-2]] != parts[:-1]:
                raise TreeError(
                    f"ingredient {iid}: path {'/'.join(map(str, parts))} disagrees with its "
                    f"parent {parts[-2]}'s path (cycle or inconsistent paths)"
                )
        order = sorted(parsed)
        parents = [parsed[i][-2] if len(parsed[i]) > 1 else ROOT for i in order]
        return cls(np.array(order, dtype=np.int64), np.array(parents, dtype=np.int64))

    # ------------------------------------------------------------------ queries
    def _positions(self, ingredient_ids: np.ndarray, strict: bool = True) -> np.ndarray:
        q = np.asarray(ingredient_ids, dtype=np.int64)
        pos = np.searchsorted(self.ids, q)
        pos_c = np.minimum(pos, max(len(self.ids) - 1, 0))
        found = (pos < len(self.ids)) & (self.ids[pos_c] == q) if len(self.ids) else q != q
        if strict and not np.all(found):
            bad = int(np.atleast_1d(q)[~np.atleast_1d(found)][0])
            raise ValueError(f"ingredient {bad} is not in the tree")
        return np.where(found, pos_c, -1)

    def _parent_pos(self) -> np.ndarray:
        out = np.full(len(self.ids), -1, dtype=np.int64)
        has = self.parent_ids != ROOT
        out[has] = np.searchsorted(self.ids, self.parent_ids[has])
        return out

    def _compute_depth(self) -> np.ndarray:
        ppos = self._parent_pos()
        depth = np.zeros(len(self.ids), dtype=np.int64)
        cur = np.arange(len(self.ids))
        alive = np.ones(len(self.ids), dtype=bool)
        for _ in range(len(self.ids) + 1):
            if not alive.any():
                return depth
            depth[alive] += 1
            cur = np.where(alive, ppos[np.maximum(cur, 0)], -1)
            alive &= cur >= 0
        bad = int(self.ids[alive][0])
        raise TreeError(f"ingredient {bad}: parent chain has a cycle")

    def depth(self) -> np.ndarray:
        """(n,) int64 number of edges to the root (a top-level ingredient has depth 1)."""
        return self._compute_depth()

    def is_leaf(self) -> np.ndarray:
        """(n,) bool, True where no ingredient names this one as parent."""
        return ~np.isin(self.ids, self.parent_ids)

    def parent_of(self, ingredient_id: int | np.ndarray) -> int | np.ndarray:
        """Parent id(s) of the given id(s); -1 for the root."""
        pos = self._positions(np.asarray(ingredient_id))
        out = self.parent_ids[pos]
        return int(out) if np.ndim(out) == 0 else out

    def ancestors_closure(self, ingredient_ids: np.ndarray) -> np.ndarray:
        """The given ids plus all their ancestors (root excluded), sorted ascending, int64."""
        pos = np.unique(self._positions(np.asarray(ingredient_ids, dtype=np.int64).ravel()))
        ppos = self._parent_pos()
        seen = np.zeros(len(self.ids), dtype=bool)
        cur = pos
        while cur.size:
            cur = cur[~seen[cur]]
            seen[cur] = True
            cur = np.unique(ppos[cur])
            cur = cur[cur >= 0]
        return self.ids[seen]

    def paths_matrix(self, ingredient_ids: np.ndarray) -> np.ndarray:
        """(p, D) int64 ancestor chains top -> down (row i ends in id i), padded with -1."""
        pos = self._positions(np.asarray(ingredient_ids, dtype=np.int64))
        depth = self._compute_depth()
        ppos = self._parent_pos()
        dmax = int(depth[pos].max(initial=0))
        out = np.full((len(pos), dmax), -1, dtype=np.int64)
        cur = pos.copy()
        level = depth[pos] - 1
        while np.any(cur >= 0):
            ok = cur >= 0
            out[np.flatnonzero(ok), level[ok]] = self.ids[cur[ok]]
            level = level - 1
            cur = np.where(ok, ppos[np.maximum(cur, 0)], -1)
        return out


def tree_distance_matrix(
    tree: IngredientTree, ingredient_ids: np.ndarray, edge_weight: float = 1.0
) -> np.ndarray:
    """Tree distances between ingredients (the EM starting cost).

    Parameters
    ----------
    tree : IngredientTree
    ingredient_ids : (p,) int ids in the tree (callers pass ``tree.ancestors_closure(used)``).
    edge_weight : float, > 0. Weight of every edge, including top-level -> root.

    Returns
    -------
    (p, p) float64; entry (a, b) = edge_weight * (depth a + depth b - 2 * depth of their lowest
    common ancestor), the root being the common ancestor of all (depth 0).
    """
    if not np.isfinite(edge_weight) or edge_weight <= 0:
        raise ValueError(f"edge_weight must be finite and > 0, got {edge_weight!r}")
    chains = tree.paths_matrix(np.asarray(ingredient_ids, dtype=np.int64))
    p, dmax = chains.shape
    depth = (chains >= 0).sum(axis=1)
    common = np.zeros((p, p), dtype=np.int64)
    same = np.ones((p, p), dtype=bool)
    for level in range(dmax):
        col = chains[:, level]
        same &= (col[:, None] == col[None, :]) & (col[:, None] >= 0)
        common += same
    return (edge_weight * (depth[:, None] + depth[None, :] - 2 * common)).astype(np.float64)
