"""recipe_similarity rows from a hand-made EM result: order, direction and names of flows."""

from __future__ import annotations

import numpy as np
from barcart import EMResult, IngredientTree, RecipeMatrix, TransportPlans

from cocktail_assets.catalog.load import IngredientCatalog, RecipeVolumes
from cocktail_assets.spaces.shape import similarity_rows

GIN, VODKA, LIME = 7, 8, 9


def _fixtures() -> tuple[EMResult, RecipeVolumes, IngredientCatalog]:
    ids = [GIN, VODKA, LIME]
    catalog = IngredientCatalog(
        tree=IngredientTree.from_paths(ids, [f"/{i}/" for i in ids]),
        names=np.array(["Gin", "Vodka 'Ñ' 🍸", "Lime"]),
        paths=np.array([f"/{i}/" for i in ids]),
        allow_substitution=np.zeros(3, dtype=bool),
    )
    volumes = RecipeVolumes(
        matrix=RecipeMatrix(recipe_ids=np.array([100, 101, 102]),
                            ingredient_ids=np.array(ids), fractions=None),  # not read
        recipe_names=np.array(["Gimlet", "Kamikaze", "Lime water"]),
        list_ptr=np.zeros(4, dtype=np.int64), list_names=np.array([], dtype=str),
        expected_recipe_ids=np.array([100, 101, 102]),
    )
    # pairs (0,1) 0.5, (0,2) 0.2, (1,2) 0.9; plan rows index cost_ids
    plans = TransportPlans(
        ptr=np.array([0, 3, 5, 6]),
        source=np.array([0, 2, 0, 0, 2, 1], dtype=np.int32),
        target=np.array([1, 2, 0, 2, 2, 2], dtype=np.int32),
        mass=np.array([0.3, 0.5, 0.2, 0.2, 0.8, 0.7]),
    )
    fit = EMResult(
        cost_ids=np.array(ids), cost=np.zeros((3, 3)),
        pair_i=np.array([0, 0, 1], dtype=np.int32), pair_j=np.array([1, 2, 2], dtype=np.int32),
        distances=np.array([0.5, 0.2, 0.9]), plans=plans, iterations=1, converged=True,
    )
    return fit, volumes, catalog


def test_neighbours_sorted_and_flows_from_the_recipe() -> None:
    fit, volumes, catalog = _fixtures()
    rows = {r: (name, nbs) for r, name, nbs in similarity_rows(fit, volumes, catalog, n=20)}
    assert rows.keys() == {100, 101, 102}
    name, neighbours = rows[101]
    assert name == "Kamikaze"
    assert [(nb["neighbor_recipe_id"], nb["distance"]) for nb in neighbours] == [
        (100, 0.5), (102, 0.9)]
    # pair (0, 1) moves Gin -> Vodka 0.3 from Gimlet's side; from Kamikaze it is Vodka -> Gin
    assert neighbours[0]["neighbor_name"] == "Gimlet"
    assert neighbours[0]["transport_plan"] == [
        {"from_ingredient_id": VODKA, "from_ingredient_name": "Vodka 'Ñ' 🍸",
         "to_ingredient_id": GIN, "to_ingredient_name": "Gin", "mass": 0.3}]
    assert neighbours[1]["transport_plan"] == [
        {"from_ingredient_id": VODKA, "from_ingredient_name": "Vodka 'Ñ' 🍸",
         "to_ingredient_id": LIME, "to_ingredient_name": "Lime", "mass": 0.7}]
    _, neighbours = rows[100]
    assert [nb["neighbor_recipe_id"] for nb in neighbours] == [102, 101]
    assert [f["mass"] for f in neighbours[0]["transport_plan"]] == [0.2]  # identity dropped
    assert neighbours[1]["transport_plan"][0]["from_ingredient_id"] == GIN


def test_neighbour_count_is_capped() -> None:
    fit, volumes, catalog = _fixtures()
    rows = similarity_rows(fit, volumes, catalog, n=1)
    assert [[nb["neighbor_recipe_id"] for nb in nbs] for _, _, nbs in rows] == [
        [102], [100], [100]]
