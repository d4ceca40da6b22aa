"""Tunable parameters of the analytics, as one resource bound per environment."""

from __future__ import annotations

from barcart import EMParams
from dagster import ConfigurableResource


class AnalyticsParams(ConfigurableResource):
    """The analytics parameters (docs/analytics.md#parameters); changing one is a deliberate
    deployment choice."""

    similarity_neighbors: int = 20
    dense_distance_limit: int = 5000
    em_k_candidates: int = 100
    em_k_neighbors: int = 10
    em_max_iter: int = 5
    em_tol: float = 1e-3
    edge_weight: float = 1.0
    manhattan_neighbors: int = 15

    def em_params(self) -> EMParams:
        return EMParams(
            max_iter=self.em_max_iter, tol=self.em_tol, k_candidates=self.em_k_candidates,
            k_neighbors=self.em_k_neighbors,
        )
