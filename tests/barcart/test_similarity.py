import pytest
from barcart import EMParams, fit_em, nearest_neighbors


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
