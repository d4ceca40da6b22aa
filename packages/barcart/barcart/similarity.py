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
    for name, value in (("n", n), ("top_flows", top_flows)):
        if isinstance(value, bool) or int(value) != value or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    plans = result.plans
    check_plans(
        plans.ptr,
        plans.source,
        plans.target,
        plans.mass,
        result.pair_i.shape[0],
        result.cost_ids.shape[0],
    )
    idx, dist, pair = result.knn(n_recipes, int(n))
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


def _flows(result: EMResult, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    plans = result.plans
    return _select.top_flows(plans.ptr, plans.source, plans.target, plans.mass, k, 0.0, True)
