"""Per-recipe nearest recipes by EM distance, with the main ingredient flows."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from barcart import _select
from barcart._validate import check_plans
from barcart.em import EMResult


@dataclass(frozen=True)
class Neighbor:
    """One similar recipe.

    index : recipe row index of the neighbour. distance : EM distance.
    flows : up to ``top_flows`` (from_ingredient_id, to_ingredient_id, mass) of the optimal
        plan between two different ingredients, largest first, stated from the recipe towards
        the neighbour (mass is a fraction of the recipe's volume).
    """

    index: int
    distance: float
    flows: tuple[tuple[int, int, float], ...]


def nearest_neighbors(
    result: EMResult, n_recipes: int, n: int = 20, top_flows: int = 3
) -> list[list[Neighbor]]:
    """For each recipe row, its ``n`` nearest recipes among the computed pairs.

    Sorted by distance then index (distances rounded to 1e-10 first). Flow ties keep the
    (from, to) cost-row order. A recipe with fewer computed pairs gets fewer neighbours.
    ValueError if the result's pairs or plans are inconsistent (the compiled kernels that
    read them do not bounds-check).
    """
    idx, dist, pair = _checked_knn(result, n_recipes, n, top_flows)
    fs, ft, fm = _flows(result, int(top_flows))
    ids = result.cost_ids
    out: list[list[Neighbor]] = []
    for r in range(int(n_recipes)):
        row: list[Neighbor] = []
        for x in range(idx.shape[1]):
            s = int(idx[r, x])
            if s < 0:
                break
            q = int(pair[r, x])
            forward = int(result.pair_i[q]) == r
            flows = []
            for t in range(fs.shape[1]):
                if fs[q, t] < 0:
                    break
                a, b = int(ids[fs[q, t]]), int(ids[ft[q, t]])
                flows.append((a, b, float(fm[q, t])) if forward else (b, a, float(fm[q, t])))
            row.append(Neighbor(index=s, distance=float(dist[r, x]), flows=tuple(flows)))
        out.append(row)
    return out


def _checked_knn(
    result: EMResult, n_recipes: int, n: int, top_flows: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validate the arguments and the result's plans (the compiled kernels that read them do
    not bounds-check), then each recipe's ``n`` nearest computed pairs (``EMResult.knn``)."""
    for name, value in (("n", n), ("top_flows", top_flows)):
        if isinstance(value, bool) or int(value) != value or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    plans = result.plans
    check_plans(plans.ptr, plans.source, plans.target, plans.mass,
                result.pair_i.shape[0], result.cost_ids.shape[0])
    return result.knn(n_recipes, int(n))


@dataclass(frozen=True)
class NeighborArrays:
    """What :func:`nearest_neighbors` lists, as arrays (no object per neighbour or flow).

    With N recipes, n neighbours and f flows per neighbour at most:

    index : (N, n) int64 recipe row of each neighbour, sorted as in ``nearest_neighbors``;
        -1 after a recipe's last neighbour.
    distance : (N, n) float64 EM distance; inf after the last neighbour.
    flow_from, flow_to : (N, n, f) int64 ingredient ids (values of ``EMResult.cost_ids``) of
        each neighbour's flows, largest first, stated from the recipe towards the neighbour;
        -1 after its last flow (and for every flow of a missing neighbour).
    flow_mass : (N, n, f) float64 mass of each flow; 0 where ``flow_from`` is -1.
    """

    index: np.ndarray
    distance: np.ndarray
    flow_from: np.ndarray
    flow_to: np.ndarray
    flow_mass: np.ndarray


def neighbor_arrays(
    result: EMResult, n_recipes: int, n: int = 20, top_flows: int = 3
) -> NeighborArrays:
    """:func:`nearest_neighbors` as arrays, with the same neighbours, order, flows and masses.

    The flows are selected only for the N x n pairs listed (``nearest_neighbors`` selects
    them for every computed pair), so time and memory follow N x n, not the number of pairs.
    ValueError as for ``nearest_neighbors``.
    """
    idx, dist, pair = _checked_knn(result, n_recipes, n, top_flows)
    k = int(top_flows)
    plans = result.plans
    listed = np.flatnonzero(pair.ravel() >= 0)
    q = pair.ravel()[listed]
    fs, ft, fm = _select.top_flows_of(
        plans.ptr, plans.source, plans.target, plans.mass, q, k, 0.0, True
    )
    ids = np.asarray(result.cost_ids, dtype=np.int64)
    kept = fs >= 0
    source = np.where(kept, ids[np.maximum(fs, 0)], -1)
    target = np.where(kept, ids[np.maximum(ft, 0)], -1)
    # plans run from pair_i to pair_j: reversed for the recipe that is pair_j
    forward = (result.pair_i[q] == listed // idx.shape[1])[:, None]
    flow_from = np.full((idx.size, k), -1, dtype=np.int64)
    flow_to = np.full((idx.size, k), -1, dtype=np.int64)
    flow_mass = np.zeros((idx.size, k))
    flow_from[listed] = np.where(forward, source, target)
    flow_to[listed] = np.where(forward, target, source)
    flow_mass[listed] = fm
    shape = (*idx.shape, k)
    return NeighborArrays(
        index=idx, distance=dist, flow_from=flow_from.reshape(shape),
        flow_to=flow_to.reshape(shape), flow_mass=flow_mass.reshape(shape),
    )


def _flows(result: EMResult, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    plans = result.plans
    return _select.top_flows(plans.ptr, plans.source, plans.target, plans.mass, k, 0.0, True)
