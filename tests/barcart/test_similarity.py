import numpy as np
import pytest
from barcart import EMParams, fit_em, nearest_neighbors, neighbor_arrays


@pytest.fixture(scope="module")
def fitted():
    from tests.barcart.conftest import make_em_case

    matrix, ids, cost = make_em_case(150, n_ingredients=80, seed=11)
    return matrix, fit_em(matrix, ids, cost, EMParams(k_candidates=25, max_iter=2))


def test_sorted_limited_and_oriented(fitted):
    matrix, res = fitted
    nn = nearest_neighbors(res, matrix.n_recipes, n=20)
    assert len(nn) == matrix.n_recipes
    g = res.neighbor_graph(matrix.n_recipes)
    ids = res.cost_ids
    f = matrix.fractions.toarray()
    col = {int(i): c for c, i in enumerate(matrix.ingredient_ids)}
    for r, row in enumerate(nn):
        assert len(row) == min(20, g.indptr[r + 1] - g.indptr[r])
        keys = [(round(x.distance, 9), x.index) for x in row]
        assert keys == sorted(keys)
        sl = slice(g.indptr[r], g.indptr[r + 1])
        known = dict(zip(g.indices[sl], g.data[sl], strict=True))
        for x in row:
            assert x.index != r and known[x.index] == x.distance
            assert len(x.flows) <= 3
            masses = [round(m, 11) for _, _, m in x.flows]  # ties within round-off
            assert masses == sorted(masses, reverse=True)
            for a, b, m in x.flows:
                assert a != b and a in ids and b in ids and m > 0
                # stated from the recipe: it holds at least that much of the source ingredient
                assert f[r, col[a]] >= m - 1e-12 and f[x.index, col[b]] >= m - 1e-12


def test_n_and_top_flows(fitted):
    matrix, res = fitted
    nn = nearest_neighbors(res, matrix.n_recipes, n=3, top_flows=1)
    assert all(len(row) <= 3 and all(len(x.flows) <= 1 for x in row) for row in nn)
    with pytest.raises(ValueError, match="top_flows"):
        nearest_neighbors(res, matrix.n_recipes, top_flows=0)
    with pytest.raises(ValueError, match="n must"):
        nearest_neighbors(res, matrix.n_recipes, n=0)


@pytest.mark.parametrize(("n", "top"), [(20, 3), (3, 1), (200, 5)])
def test_arrays_list_what_nearest_neighbors_lists(fitted, n, top):
    """neighbor_arrays selects flows only for the listed pairs: the same neighbours, order,
    distances, flows and masses as nearest_neighbors, which selects them for every pair."""
    matrix, res = fitted
    nn = nearest_neighbors(res, matrix.n_recipes, n=n, top_flows=top)
    arrays = neighbor_arrays(res, matrix.n_recipes, n=n, top_flows=top)
    width = max(len(row) for row in nn)
    assert arrays.index.shape == (matrix.n_recipes, min(n, arrays.index.shape[1]))
    assert arrays.flow_from.shape == (*arrays.index.shape, top)
    for r, row in enumerate(nn):
        k = len(row)
        assert arrays.index[r, :k].tolist() == [x.index for x in row]
        assert (arrays.index[r, k:] == -1).all() and np.isinf(arrays.distance[r, k:]).all()
        assert arrays.distance[r, :k].tolist() == [x.distance for x in row]
        for x, nb in enumerate(row):
            f = len(nb.flows)
            got = list(zip(arrays.flow_from[r, x, :f].tolist(), arrays.flow_to[r, x, :f].tolist(),
                           arrays.flow_mass[r, x, :f].tolist(), strict=True))
            assert got == list(nb.flows)
            assert (arrays.flow_from[r, x, f:] == -1).all()
            assert (arrays.flow_mass[r, x, f:] == 0).all()
    assert width <= arrays.index.shape[1]


def test_arrays_validate_like_nearest_neighbors(fitted):
    matrix, res = fitted
    with pytest.raises(ValueError, match="top_flows"):
        neighbor_arrays(res, matrix.n_recipes, top_flows=0)
    with pytest.raises(ValueError, match="n must"):
        neighbor_arrays(res, matrix.n_recipes, n=0)
