"""Usage counts and the artifacts' JSON shapes on small hand-computed trees."""

from __future__ import annotations

import numpy as np
import pytest
from barcart import IngredientTree

from cocktail_assets.analytics.compute import (
    has_children,
    ingredient_tree_document,
    ingredient_usage_rows,
    recipe_complexity_rows,
    tree_depth,
    usage_counts,
)
from cocktail_assets.catalog.load import IngredientCatalog
from cocktail_assets.errors import DataError

# 1 Spirits / 2 Gin / 3 London dry;  4 Citrus / 5 Lime;  6 Bitters (no children)
TREE = {1: ("Spirits", "/1/"), 2: ("Gin", "/1/2/"), 3: ("London dry", "/1/2/3/"),
        4: ("Citrus", "/4/"), 5: ("Lime", "/4/5/"), 6: ("Bitters", "/6/")}


def catalog(tree: dict[int, tuple[str, str]] = TREE) -> IngredientCatalog:
    ids = sorted(tree)
    return IngredientCatalog(
        tree=IngredientTree.from_paths(ids, [tree[i][1] for i in ids]),
        names=np.array([tree[i][0] for i in ids], dtype=str),
        paths=np.array([tree[i][1] for i in ids], dtype=str),
        allow_substitution=np.zeros(len(ids), dtype=bool),
    )


# recipe 10: London dry twice (duplicate rows) and Gin; 11: Spirits itself and Lime; 12: Lime
RECIPES = np.array([10, 10, 10, 11, 11, 12])
INGREDIENTS = np.array([3, 3, 2, 1, 5, 5])


def test_usage_counts_by_hand() -> None:
    direct, hierarchical = usage_counts(catalog(), RECIPES, INGREDIENTS)
    #                                    1  2  3  4  5  6
    assert direct.tolist() == [1, 1, 1, 0, 2, 0]
    assert hierarchical.tolist() == [2, 1, 1, 2, 2, 0]


def test_unknown_ingredient_is_a_data_error() -> None:
    with pytest.raises(DataError, match="names ingredient 99, which is not in the ingredient tree"):
        usage_counts(catalog(), np.array([10]), np.array([99]))
    with pytest.raises(DataError, match="ingredient 99"):
        catalog().name_of(np.array([1, 99]))


def test_usage_rows_roots_only_in_order() -> None:
    cat = catalog()
    rows = ingredient_usage_rows(cat, *usage_counts(cat, RECIPES, INGREDIENTS))
    # hierarchical 2, 2, 0; the tie between Citrus and Spirits goes by name
    assert rows == [
        {"ingredient_id": 4, "ingredient_name": "Citrus", "path": "/4/", "parent_id": None,
         "allow_substitution": False, "direct_usage": 0, "hierarchical_usage": 2,
         "has_children": True},
        {"ingredient_id": 1, "ingredient_name": "Spirits", "path": "/1/", "parent_id": None,
         "allow_substitution": False, "direct_usage": 1, "hierarchical_usage": 2,
         "has_children": True},
        {"ingredient_id": 6, "ingredient_name": "Bitters", "path": "/6/", "parent_id": None,
         "allow_substitution": False, "direct_usage": 0, "hierarchical_usage": 0,
         "has_children": False},
    ]
    assert has_children(cat).tolist() == [True, True, False, True, False, False]


def test_recipe_complexity_counts_distinct_ingredients() -> None:
    # 10 has {2, 3}, 11 has {1, 5}, 12 has {5}
    assert recipe_complexity_rows(RECIPES, INGREDIENTS) == [
        {"ingredient_count": 1, "recipe_count": 1},
        {"ingredient_count": 2, "recipe_count": 2},
    ]
    assert recipe_complexity_rows(np.zeros(0, np.int64), np.zeros(0, np.int64)) == []


def test_tree_document_nested_and_sorted() -> None:
    cat = catalog()
    document = ingredient_tree_document(cat, *usage_counts(cat, RECIPES, INGREDIENTS),
                                        total_recipes=3)

    def node(i: int, direct: int, hier: int, children: list) -> dict:
        return {"id": str(i), "name": TREE[i][0], "recipe_count": direct,
                "hierarchical_recipe_count": hier, "edge_weight": 1.0, "children": children}

    assert document == {
        "id": "root", "name": "All Ingredients", "recipe_count": 0,
        "hierarchical_recipe_count": 3,
        "children": [  # by name: Bitters, Citrus, Spirits
            node(6, 0, 0, []),
            node(4, 0, 2, [node(5, 2, 2, [])]),
            node(1, 1, 2, [node(2, 1, 1, [node(3, 1, 1, [])])]),
        ],
    }
    assert tree_depth(document) == 3


def test_empty_catalog() -> None:
    cat = catalog({})
    direct, hierarchical = usage_counts(cat, np.zeros(0, np.int64), np.zeros(0, np.int64))
    assert direct.size == hierarchical.size == 0
    assert ingredient_usage_rows(cat, direct, hierarchical) == []
    document = ingredient_tree_document(cat, direct, hierarchical, total_recipes=0)
    assert document["children"] == [] and tree_depth(document) == 0
