"""Two materializations of the same data publish identical artifacts (same layout too)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cocktail_assets.resources.store import AnalyticsStore
from tests.cocktail_assets.graph.conftest import Published, materialize_graph
from tests.cocktail_assets.graph.contracts import JSON_TYPES, similarity_rows

ARRAYS = ("ingredient-distances-em.npy", "ingredient-distances-em-ids.npy",
          "recipe-distances-em.npy", "recipe-distances-em-ids.npy")


def test_rerun_gives_identical_artifacts(sample_db_url: str, tmp_path: Path) -> None:
    runs = []
    for name in ("first", "second"):
        folder = tmp_path / name
        assert materialize_graph(sample_db_url, AnalyticsStore(local_dir=str(folder))).success
        runs.append((Published(local_dir=folder), similarity_rows(sample_db_url)))
    (one, sim_one), (two, sim_two) = runs
    for analytics_type in JSON_TYPES:
        first, second = one.document(analytics_type), two.document(analytics_type)
        assert first["data"] == second["data"], analytics_type  # coordinates compared exactly
        assert first["metadata"]["generated_at"] != second["metadata"]["generated_at"]
    assert len(one.data("cocktail-space")) > 100
    for name in ARRAYS:
        np.testing.assert_array_equal(one.array(name), two.array(name), strict=True)
    packed_one, packed_two = one.arrays("recipe-distances-em.npz"), two.arrays(
        "recipe-distances-em.npz")
    assert packed_one.keys() == packed_two.keys()
    for key in packed_one:
        np.testing.assert_array_equal(packed_one[key], packed_two[key], strict=True)
    assert sim_one == sim_two
