"""The whole graph on the bundled sample, into a local folder and into S3 (moto), checked
field by field against SQL."""

from __future__ import annotations

import pytest

from tests.cocktail_assets.graph.conftest import execute, materialize_graph, query
from tests.cocktail_assets.graph.contracts import check_everything, similarity_rows
from tests.cocktail_assets.graph.oracle import expected


@pytest.mark.parametrize("target", ["local_target", "s3_target"])
def test_sample_contracts(sample_db_url: str, target: str, request: pytest.FixtureRequest) -> None:
    store, published = request.getfixturevalue(target)
    result = materialize_graph(sample_db_url, store)
    exp = expected(sample_db_url)
    assert len(exp.space_recipes) > 100  # the sample, not an accident of an empty load
    check_everything(sample_db_url, published, result, exp)


def test_similarity_table_is_replaced(sample_db_url: str, local_target) -> None:
    store, published = local_target
    materialize_graph(sample_db_url, store)
    gone, = query(sample_db_url, "SELECT min(recipe_id) FROM recipe_similarity")[0]
    before = similarity_rows(sample_db_url)
    assert any(gone in {nb["neighbor_recipe_id"] for nb in n} for _, n in before.values())
    execute(sample_db_url, "DELETE FROM recipes WHERE id = %s", (gone,))
    # the cascade already removed its own row; its mentions as a neighbour remain until rerun
    result = materialize_graph(sample_db_url, store)
    after = similarity_rows(sample_db_url)
    assert gone not in after
    assert all(gone not in {nb["neighbor_recipe_id"] for nb in n} for _, n in after.values())
    check_everything(sample_db_url, published, result, expected(sample_db_url))
