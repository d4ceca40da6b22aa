"""Defined behaviour for awkward data, each case on a small hand-built site."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import dagster as dg
import numpy as np
import psycopg
import pytest

from cocktail_assets.resources.io_manager import from_arrays
from cocktail_assets.resources.store import AnalyticsStore
from tests.cocktail_assets.graph.conftest import materialize_graph
from tests.cocktail_assets.graph.contracts import check_everything, similarity_rows
from tests.cocktail_assets.graph.oracle import expected

UNITS = [("ml", 1.0), ("oz", 30.0), ("dash", None), ("to top", None), ("to rinse", None),
         ("each", None), ("Each", None)]
GIN, LIME, SYRUP, RUM, TONIC = 1, 2, 3, 4, 5


def build_site(
    db_url: str,
    ingredients: Sequence[tuple[int, str, str, bool]],
    recipes: Sequence[tuple[int, str]],
    rows: Sequence[tuple[int, int, str | None, float | None]],
) -> None:
    """Units as in UNITS; ingredients (id, name, path, allow_substitution) with parent_id the
    path's second-last id when that one exists; rows (recipe, ingredient, unit, amount)."""
    with psycopg.connect(db_url) as conn:
        unit_ids = {}
        for name, conversion in UNITS:
            unit_ids[name] = conn.execute(
                "INSERT INTO units (name, conversion_to_ml) VALUES (%s, %s) RETURNING id",
                (name, conversion)).fetchone()[0]
        known = {i for i, *_ in ingredients}
        for iid, name, path, allow in ingredients:
            conn.execute("INSERT INTO ingredients (id, name, path, allow_substitution) "
                         "VALUES (%s, %s, %s, %s)", (iid, name, path, allow))
        for iid, _, path, _ in ingredients:
            chain = [int(x) for x in path.strip("/").split("/")]
            parent = chain[-2] if len(chain) > 1 and chain[-2] in known else None
            if parent is not None:
                conn.execute("UPDATE ingredients SET parent_id = %s WHERE id = %s",
                             (parent, iid))
        for rid, name in recipes:
            conn.execute("INSERT INTO recipes (id, name) VALUES (%s, %s)", (rid, name))
        for rid, iid, unit, amount in rows:
            conn.execute("INSERT INTO recipe_ingredients (recipe_id, ingredient_id, unit_id, "
                         "amount) VALUES (%s, %s, %s, %s)",
                         (rid, iid, unit_ids[unit] if unit else None, amount))


FLAT = [(GIN, "Gin", f"/{GIN}/", False), (LIME, "Lime juice", f"/{LIME}/", False),
        (SYRUP, "Simple syrup", f"/{SYRUP}/", False), (RUM, "Rum", f"/{RUM}/", False),
        (TONIC, "Tonic", f"/{TONIC}/", False)]


def run(db_url: str, local_target, **kwargs: Any) -> tuple[dg.ExecuteInProcessResult, Any]:
    store, published = local_target
    return materialize_graph(db_url, store, **kwargs), published


def fractions(store: AnalyticsStore) -> dict[int, dict[int, float]]:
    """The recipe_volumes intermediate as {recipe: {ingredient: fraction}}."""
    volumes = from_arrays(store.get_arrays("work/catalog/recipe_volumes.npz"))
    m = volumes.matrix
    dense = m.fractions.toarray()
    return {int(r): {int(i): float(f) for i, f in zip(m.ingredient_ids, dense[k], strict=True)
                     if f} for k, r in enumerate(m.recipe_ids)}


def test_empty_database(db_url: str, local_target) -> None:
    result, published = run(db_url, local_target)
    exp = expected(db_url)
    check_everything(db_url, published, result, exp)
    for analytics_type in ("ingredient-usage", "recipe-complexity", "cocktail-space",
                           "cocktail-space-em"):
        assert published.data(analytics_type) == []
    assert published.data("ingredient-tree") == {
        "id": "root", "name": "All Ingredients", "recipe_count": 0,
        "hierarchical_recipe_count": 0, "children": []}
    assert published.array("ingredient-distances-em.npy").shape == (0, 0)
    assert published.arrays("recipe-distances-em.npz")["shape"].tolist() == [0, 0]
    assert similarity_rows(db_url) == {}


def test_recipe_without_ingredients_is_counted_nowhere(db_url: str, local_target) -> None:
    build_site(db_url, FLAT, [(10, "A"), (11, "B"), (12, "C"), (13, "D"), (14, "Empty"),
                              (15, "Zero")],
               [(10, GIN, "oz", 2), (10, LIME, "oz", 1), (11, RUM, "oz", 2),
                (11, LIME, "oz", 1), (12, GIN, "oz", 2), (12, TONIC, "to top", None),
                (13, RUM, "ml", 50), (13, SYRUP, "dash", 2), (15, GIN, "ml", 0),
                (15, LIME, "ml", 0)])
    result, published = run(db_url, local_target)
    check_everything(db_url, published, result, expected(db_url))
    for analytics_type in ("cocktail-space", "cocktail-space-em"):
        ids = [r["recipe_id"] for r in published.data(analytics_type)]
        assert sorted(ids) == [10, 11, 12, 13]  # no rows: absent; volumes sum to 0: absent
    # 'Empty' is counted nowhere; 'Zero' has rows, so it counts in the usage and complexity
    assert published.data("recipe-complexity") == [{"ingredient_count": 2, "recipe_count": 5}]
    assert published.data("ingredient-tree")["hierarchical_recipe_count"] == 5
    usage = {r["ingredient_id"]: r["direct_usage"] for r in published.data("ingredient-usage")}
    assert usage == {GIN: 3, LIME: 3, RUM: 2, SYRUP: 1, TONIC: 1}
    assert sorted(similarity_rows(db_url)) == [10, 11, 12, 13]


def test_null_amounts_and_null_conversions(db_url: str, local_target) -> None:
    names = ["Gin", "Tonic", "Angostura", "Salt", "Lime wedge", "Mint sprig", "Absinthe",
             "Soda", "Egg white"]
    build_site(db_url, [(k, n, f"/{k}/", False) for k, n in enumerate(names, start=1)],
               [(10, "Everything"), (11, "G&T")],
               [(10, 1, "oz", 2),          # amount x conversion: 60
                (10, 2, "to top", 4),      # 'to top' wins over the amount: 90
                (10, 3, "dash", 2),        # no conversion: the raw amount, 2
                (10, 4, None, None),       # no unit, no amount: 1
                (10, 5, "each", 3),        # 'each': 1 whatever the amount
                (10, 6, "Each", None),     # 'each' in any case: 1
                (10, 7, "to rinse", None),  # 5
                (10, 8, None, 10),         # no unit: the raw amount, 10
                (10, 9, "dash", None),     # no amount: 1
                (11, 1, "oz", 1), (11, 2, "oz", 3)])
    result, published = run(db_url, local_target)
    check_everything(db_url, published, result, expected(db_url))
    got = fractions(local_target[0])
    total = 60 + 90 + 2 + 1 + 1 + 1 + 5 + 10 + 1
    want = {1: 60, 2: 90, 3: 2, 4: 1, 5: 1, 6: 1, 7: 5, 8: 10, 9: 1}
    assert got[10].keys() == want.keys()
    for iid, ml in want.items():
        assert got[10][iid] == pytest.approx(ml / total, rel=1e-9), names[iid - 1]
    assert got[11] == pytest.approx({1: 0.25, 2: 0.75}, rel=1e-9)
    lists = {r["recipe_id"]: r["ingredients"] for r in published.data("cocktail-space")}
    # by volume descending, ties by name, 'each' items last
    assert lists[10] == ["Tonic", "Gin", "Soda", "Absinthe", "Angostura", "Egg white", "Salt",
                         "Lime wedge", "Mint sprig"]
    assert lists[11] == ["Tonic", "Gin"]


@pytest.mark.parametrize(
    ("ingredients", "named"),
    [
        pytest.param([(1, "Gin", "/1/", False), (5, "Orphan", "/99/5/", False)], ["5", "99"],
                     id="path-names-missing-id"),
        pytest.param([(1, "Gin", "/1/", False), (2, "Loop A", "/3/2/", False),
                      (3, "Loop B", "/2/3/", False)], None, id="cycle"),
        pytest.param([(1, "Gin", "/1/", False), (2, "Self", "/2/1/2/", False)], ["2"],
                     id="path-repeats-id"),
    ],
)
def test_broken_paths_fail_naming_the_ingredient(
    db_url: str, local_target, ingredients, named: list[str] | None
) -> None:
    build_site(db_url, ingredients, [(10, "A")], [(10, 1, "oz", 2)])
    result, _ = run(db_url, local_target, raise_on_error=False)
    assert not result.success
    failures = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert [e.step_key for e in failures] == ["catalog__ingredient_catalog"]
    error = failures[0].step_failure_data.error
    while error.cause is not None and error.cls_name != "DataError":
        error = error.cause
    assert error.cls_name == "DataError"
    message = error.message
    assert "ingredients table" in message
    if named is None:  # a cycle: either member may be reported
        named = ["2"] if "ingredient 2" in message else ["3"]
    assert f"ingredient {named[0]}" in message, message
    assert all(n in message for n in named), message
    # nothing downstream of the catalog published a space
    published = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert not published & {"spaces/cocktail_space", "spaces/cocktail_space_em",
                            "analytics/ingredient_usage", "analytics/ingredient_tree"}


def test_duplicate_rows_are_summed(db_url: str, local_target) -> None:
    build_site(db_url, FLAT, [(10, "Doubled"), (11, "Plain")],
               [(10, GIN, "ml", 20), (10, LIME, "ml", 30), (10, GIN, "ml", 20),
                (11, GIN, "ml", 30), (11, SYRUP, "ml", 30)])
    result, published = run(db_url, local_target)
    check_everything(db_url, published, result, expected(db_url))
    assert fractions(local_target[0])[10] == pytest.approx({GIN: 40 / 70, LIME: 30 / 70})
    lists = {r["recipe_id"]: r["ingredients"] for r in published.data("cocktail-space")}
    assert lists[10] == ["Gin", "Lime juice"]  # 40 ml of gin (summed) before 30 of lime
    assert published.data("recipe-complexity") == [{"ingredient_count": 2, "recipe_count": 2}]
    usage = {r["ingredient_id"]: r["direct_usage"] for r in published.data("ingredient-usage")}
    assert usage[GIN] == 2


TINY = [(10, [(GIN, 30)]), (11, [(GIN, 15), (LIME, 15)]), (12, [(LIME, 30)])]


@pytest.mark.parametrize("n", [1, 2, 3])
def test_tiny_sites_still_publish(db_url: str, local_target, n: int) -> None:
    recipes = TINY[:n]
    build_site(db_url, FLAT, [(r, f"Recipe {r}") for r, _ in recipes],
               [(r, i, "ml", ml) for r, items in recipes for i, ml in items])
    result, published = run(db_url, local_target)
    check_everything(db_url, published, result, expected(db_url))
    for analytics_type in ("cocktail-space", "cocktail-space-em"):
        rows = sorted(published.data(analytics_type), key=lambda r: r["recipe_id"])
        xy = np.array([[r["x"], r["y"]] for r in rows])
        if n == 1:
            assert xy.tolist() == [[0.0, 0.0]]
        elif n == 2:
            assert sorted(map(tuple, xy.tolist())) == [(-1.0, 0.0), (1.0, 0.0)]
        elif analytics_type == "cocktail-space":
            # the fallback, classical MDS of the graph distances, keeps the Manhattan
            # distances: 1, 1 and 2 apart
            for (a, pa), (b, pb) in itertools.combinations(enumerate(xy), 2):
                want = {(0, 1): 1.0, (1, 2): 1.0, (0, 2): 2.0}[(a, b)]
                assert np.linalg.norm(pa - pb) == pytest.approx(want, abs=1e-9)
    sim = similarity_rows(db_url)
    assert sorted(sim) == [r for r, _ in recipes]
    assert all(len(neighbors) == n - 1 for _, neighbors in sim.values())


def test_names_survive_the_round_trip(db_url: str, local_target) -> None:
    cassis, aguardiente = "Crème de cassis 'Bob' 🫐", 'Aguardiente "Añejo" — ½'
    recipe_names = {10: 'Piña Colada 🍍 "Jo\'s"', 11: "L'Été ☀️", 12: "Crème brûlée \\ 𝔐artini"}
    build_site(db_url, [(GIN, "Gin", f"/{GIN}/", False), (20, cassis, "/20/", False),
                        (21, aguardiente, "/21/", False)],
               list(recipe_names.items()),
               [(10, GIN, "ml", 30), (10, 20, "ml", 30), (11, GIN, "ml", 30),
                (11, 21, "ml", 30), (12, 20, "ml", 60)])
    result, published = run(db_url, local_target)
    check_everything(db_url, published, result, expected(db_url))
    for analytics_type in ("cocktail-space", "cocktail-space-em"):
        rows = {r["recipe_id"]: r for r in published.data(analytics_type)}
        assert {r: rows[r]["recipe_name"] for r in rows} == recipe_names
        assert sorted(rows[10]["ingredients"]) == sorted(["Gin", cassis])
        assert rows[12]["ingredients"] == [cassis]
    usage_names = {r["ingredient_name"] for r in published.data("ingredient-usage")}
    assert usage_names == {"Gin", cassis, aguardiente}
    tree_names = {c["name"] for c in published.data("ingredient-tree")["children"]}
    assert tree_names == usage_names
    sim = similarity_rows(db_url)
    assert {r: name for r, (name, _) in sim.items()} == recipe_names
    neighbor_names = {nb["neighbor_name"] for _, ns in sim.values() for nb in ns}
    assert neighbor_names == set(recipe_names.values())
    flow_names = {f[k] for _, ns in sim.values() for nb in ns for f in nb["transport_plan"]
                  for k in ("from_ingredient_name", "to_ingredient_name")}
    assert {cassis, aguardiente} <= flow_names
