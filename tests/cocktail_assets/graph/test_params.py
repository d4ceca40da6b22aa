"""The analytics parameters reach the artifacts: similarity size and the tree's edge weight."""

from __future__ import annotations

import psycopg
import scipy.sparse as sp

from cocktail_assets.db.seed import seed_sample
from cocktail_assets.resources.params import AnalyticsParams
from tests.cocktail_assets.graph.conftest import materialize_graph
from tests.cocktail_assets.graph.contracts import check_similarity, similarity_rows
from tests.cocktail_assets.graph.oracle import expected


def test_similarity_size_and_edge_weight_are_configurable(db_url: str, local_target) -> None:
    with psycopg.connect(db_url) as conn:
        seed_sample(conn)
    store, published = local_target
    params = AnalyticsParams(similarity_neighbors=3, edge_weight=2.0)
    assert materialize_graph(db_url, store, params=params).success
    rows = similarity_rows(db_url)
    assert rows and all(len(neighbors) == 3 for _, neighbors in rows.values())
    packed = published.arrays("recipe-distances-em.npz")

    n = int(packed["shape"][0])
    graph = sp.csr_matrix((packed["data"], packed["indices"], packed["indptr"]), shape=(n, n))
    check_similarity(db_url, expected(db_url), graph, n_max=3)

    stack = list(published.data("ingredient-tree")["children"])
    assert stack
    while stack:
        node = stack.pop()
        assert node["edge_weight"] == 2.0
        stack.extend(node["children"])
