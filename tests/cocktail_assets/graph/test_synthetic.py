"""The whole graph on a synthetic site of 1,000 recipes (600 ingredients, five levels)."""

from __future__ import annotations

import numpy as np
import psycopg

from cocktail_assets.db.synth import synthesize
from tests.cocktail_assets.graph.conftest import materialize_graph
from tests.cocktail_assets.graph.contracts import check_everything
from tests.cocktail_assets.graph.oracle import expected

N_RECIPES = 1000


def test_synthetic_contracts(db_url: str, local_target) -> None:
    with psycopg.connect(db_url) as conn:
        synthesize(conn, N_RECIPES, seed=7)
    store, published = local_target
    result = materialize_graph(db_url, store)
    exp = expected(db_url)
    assert len(exp.space_recipes) == N_RECIPES
    graph = check_everything(db_url, published, result, exp)

    # sizes: K = 100 candidates per recipe, so every recipe has at least 100 computed pairs
    degrees = np.diff(graph.indptr)
    assert degrees.min() >= 100
    assert graph.nnz <= N_RECIPES * 2 * 100
    cost = published.array("ingredient-distances-em.npy")
    assert cost.shape[0] == len(exp.cost_ids()) > 20
    # the layout is a spread-out map, not a collapsed point
    for analytics_type in ("cocktail-space", "cocktail-space-em"):
        xy = np.array([[r["x"], r["y"]] for r in published.data(analytics_type)])
        assert np.unique(xy.round(6), axis=0).shape[0] > 0.9 * N_RECIPES
        assert xy.std(axis=0).min() > 0.5
