"""The rolled-up recipes and the EM cost's ingredients on a small hand-built hierarchy."""

from __future__ import annotations

import pytest

from cocktail_assets.resources.io_manager import from_arrays
from tests.cocktail_assets.graph.conftest import materialize_graph
from tests.cocktail_assets.graph.contracts import check_everything
from tests.cocktail_assets.graph.oracle import expected
from tests.cocktail_assets.graph.test_awkward_data import build_site

INGREDIENTS = [
    (1, "Spirits", "/1/", False),
    (2, "Gin", "/1/2/", True),          # substitutable but has children: kept
    (3, "London dry", "/1/2/3/", True),  # substitutable leaf: -> Gin
    (4, "Plymouth", "/1/2/4/", False),   # leaf, not substitutable: kept
    (5, "Citrus", "/5/", False),
    (6, "Lime", "/5/6/", True),          # -> Citrus
    (7, "Lemon", "/5/7/", True),         # -> Citrus, summed with Lime
    (8, "Soda", "/8/", True),            # substitutable leaf under the root: kept
]
ROWS = [(10, 3, "ml", 30), (10, 2, "ml", 30), (10, 6, "ml", 15), (10, 7, "ml", 15),
        (11, 4, "ml", 45), (11, 6, "ml", 15), (11, 8, "ml", 30),
        (12, 2, "ml", 30), (12, 8, "ml", 60)]


def test_rollup_one_level_and_cost_ingredients(db_url: str, local_target) -> None:
    build_site(db_url, INGREDIENTS, [(10, "A"), (11, "B"), (12, "C")], ROWS)
    store, published = local_target
    result = materialize_graph(db_url, store)
    check_everything(db_url, published, result, expected(db_url))

    rolled = from_arrays(store.get_arrays("work/spaces/rolled_up_recipes.npz"))
    assert rolled.recipe_ids.tolist() == [10, 11, 12]
    assert rolled.ingredient_ids.tolist() == [2, 4, 5, 8]
    dense = rolled.fractions.toarray()
    want = {10: {2: 60 / 90, 5: 30 / 90}, 11: {4: 0.5, 5: 1 / 6, 8: 1 / 3},
            12: {2: 1 / 3, 8: 2 / 3}}
    for row, recipe in enumerate(rolled.recipe_ids.tolist()):
        got = {int(i): float(f) for i, f in zip(rolled.ingredient_ids, dense[row], strict=True)
               if f}
        assert got == pytest.approx(want[recipe], rel=1e-9), recipe
    # the cost covers the rolled-up ingredients and their ancestors, root excluded
    assert published.array("ingredient-distances-em-ids.npy").tolist() == [1, 2, 4, 5, 8]
