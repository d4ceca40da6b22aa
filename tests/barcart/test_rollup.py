import numpy as np
import pytest
from barcart import IngredientTree, rollup, volume_fractions


@pytest.fixture
def tree() -> IngredientTree:
    return IngredientTree.from_paths(
        [1, 10, 17, 11, 2], ["/1/", "/1/10/", "/1/10/17/", "/1/11/", "/2/"]
    )


def test_one_level_rollup_sums_fractions(tree):
    # allow: 1 yes, 2 yes (top level: stays), 10 yes (not a leaf: stays), 11 yes, 17 yes
    allow = np.array([True, True, True, True, True])  # order of tree.ids = [1, 2, 10, 11, 17]
    m = volume_fractions(
        np.array([5, 5, 5, 6]), np.array([17, 10, 2, 11]), np.array([10.0, 20.0, 10.0, 7.0])
    )
    out = rollup(m, tree, allow)
    np.testing.assert_array_equal(out.recipe_ids, [5, 6])
    np.testing.assert_array_equal(out.ingredient_ids, [1, 2, 10])  # 17 -> 10, 11 -> 1
    np.testing.assert_allclose(out.fractions.toarray(), [[0, 0.25, 0.75], [1.0, 0, 0]])
    np.testing.assert_allclose(out.fractions.sum(axis=1), 1.0)


def test_not_allowed_leaf_stays(tree):
    allow = np.array([False, False, False, False, False])
    m = volume_fractions(np.array([5, 5]), np.array([17, 11]), np.array([1.0, 3.0]))
    out = rollup(m, tree, allow)
    np.testing.assert_array_equal(out.ingredient_ids, [11, 17])
    np.testing.assert_allclose(out.fractions.toarray(), [[0.75, 0.25]])


def test_allow_must_match_tree(tree):
    m = volume_fractions(np.array([5]), np.array([17]), np.array([1.0]))
    with pytest.raises(ValueError, match="allow_substitution"):
        rollup(m, tree, np.array([True]))
