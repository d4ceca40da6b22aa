import numpy as np
import pytest
from barcart import IngredientTree, TreeError, tree_distance_matrix

IDS = [1, 10, 17, 11, 2]
PATHS = ["/1/", "/1/10/", "/1/10/17/", "/1/11/", "/2/"]


@pytest.fixture
def tree() -> IngredientTree:
    return IngredientTree.from_paths(IDS, PATHS)


def test_structure(tree):
    np.testing.assert_array_equal(tree.ids, [1, 2, 10, 11, 17])
    np.testing.assert_array_equal(tree.parent_ids, [-1, -1, 1, 1, 10])
    np.testing.assert_array_equal(tree.depth(), [1, 1, 2, 2, 3])
    np.testing.assert_array_equal(tree.is_leaf(), [False, True, False, True, True])
    assert tree.parent_of(17) == 10
    assert tree.parent_of(1) == -1
    np.testing.assert_array_equal(tree.ancestors_closure([17, 2]), [1, 2, 10, 17])


def test_distances_by_hand(tree):
    ids = np.array([1, 2, 10, 11, 17])
    d = tree_distance_matrix(tree, ids)
    # 17-11: 17->10->1<-11 = 3; 17-2: up to root 3 + down 1 = 4; 10-1 = 1; 1-2 = 2 (via root)
    assert d[4, 3] == 3 and d[4, 1] == 4 and d[2, 0] == 1 and d[0, 1] == 2
    np.testing.assert_array_equal(np.diag(d), 0)
    np.testing.assert_array_equal(d, d.T)
    np.testing.assert_array_equal(tree_distance_matrix(tree, ids, edge_weight=2.5), 2.5 * d)


def test_bad_edge_weight(tree):
    with pytest.raises(ValueError, match="edge_weight"):
        tree_distance_matrix(tree, np.array([1]), edge_weight=0.0)


@pytest.mark.parametrize("path", ["/1/x/", "1/10/", "/1//10/", "", "/1/10", None])
def test_malformed_path_names_ingredient(path):
    with pytest.raises(TreeError, match="ingredient 10"):
        IngredientTree.from_paths([1, 10], ["/1/", path])


def test_path_must_end_in_own_id():
    with pytest.raises(TreeError, match=r"ingredient 10.*own id"):
        IngredientTree.from_paths([1, 10], ["/1/", "/1/"])


def test_missing_id_named():
    with pytest.raises(TreeError, match=r"ingredient 10.*missing ingredient 5"):
        IngredientTree.from_paths([1, 10], ["/1/", "/5/10/"])


def test_cycle_named():
    with pytest.raises(TreeError, match=r"ingredient (1|2)"):
        IngredientTree.from_paths([1, 2], ["/2/1/", "/1/2/"])


def test_inconsistent_parent_path():
    with pytest.raises(TreeError, match="ingredient 17"):
        IngredientTree.from_paths([1, 10, 17], ["/1/", "/1/10/", "/10/17/"])


def test_duplicate_id():
    with pytest.raises(TreeError, match="ingredient 1"):
        IngredientTree.from_paths([1, 1], ["/1/", "/1/"])


def test_direct_construction_cycle():
    with pytest.raises(TreeError, match="cycle"):
        IngredientTree(np.array([1, 2]), np.array([2, 1]))


def test_unknown_id_query(tree):
    with pytest.raises(ValueError, match="ingredient 99"):
        tree.ancestors_closure([99])
