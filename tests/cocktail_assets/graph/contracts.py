"""Field-by-field checks of every published artifact against ``oracle.Expected``."""

from __future__ import annotations

import itertools
import math
import re
from typing import Any

import dagster as dg
import numpy as np
import psycopg
import scipy.sparse as sp

from tests.cocktail_assets.graph.conftest import GRAPH_ASSETS, Published
from tests.cocktail_assets.graph.oracle import Expected

ISO_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")
JSON_TYPES = (
    "ingredient-usage", "recipe-complexity", "ingredient-tree", "cocktail-space",
    "cocktail-space-em",
)
USAGE_KEYS = [
    "ingredient_id", "ingredient_name", "path", "parent_id", "allow_substitution",
    "direct_usage", "hierarchical_usage", "has_children",
]
SPACE_KEYS = ["recipe_id", "recipe_name", "x", "y", "ingredients"]
FLOW_KEYS = {"from_ingredient_id", "from_ingredient_name", "to_ingredient_id",
             "to_ingredient_name", "mass"}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def check_envelopes_and_keys(published: Published, *, dense: bool) -> None:
    for analytics_type in JSON_TYPES:
        document = published.document(analytics_type)
        assert set(document) == {"data", "metadata"}, analytics_type
        meta = document["metadata"]
        assert set(meta) == {"generated_at", "storage_version", "analytics_type"}
        assert ISO_Z.match(meta["generated_at"]), meta["generated_at"]
        assert meta["storage_version"] == "v1"
        assert meta["analytics_type"] == analytics_type
    expected = {f"analytics/v1/{t}.json" for t in JSON_TYPES} | {
        "analytics/v1/ingredient-distances-em.npy",
        "analytics/v1/ingredient-distances-em-ids.npy",
        "analytics/v1/recipe-distances-em.npz",
    }
    if dense:
        expected |= {"analytics/v1/recipe-distances-em.npy",
                     "analytics/v1/recipe-distances-em-ids.npy"}
    assert published.keys() == expected


def check_ingredient_usage(published: Published, exp: Expected) -> None:
    rows = published.data("ingredient-usage")
    for row in rows:
        assert list(row) == USAGE_KEYS
    assert [r["hierarchical_usage"] for r in rows] == sorted(
        (r["hierarchical_usage"] for r in rows), reverse=True)
    # ties: by name, then id (deterministic output)
    assert rows == sorted(rows, key=lambda r: (-r["hierarchical_usage"], r["ingredient_name"],
                                               r["ingredient_id"]))
    roots = {n.id: n for n in exp.roots}
    assert len(rows) == len(roots)
    assert {r["ingredient_id"] for r in rows} == set(roots)
    for row in rows:
        node = roots[row["ingredient_id"]]
        assert row == {
            "ingredient_id": node.id,
            "ingredient_name": node.name,
            "path": node.path,
            "parent_id": None,
            "allow_substitution": node.allow_substitution,
            "direct_usage": node.direct,
            "hierarchical_usage": node.hierarchical,
            "has_children": node.has_children,
        }, node.id


def check_recipe_complexity(published: Published, exp: Expected) -> None:
    rows = published.data("recipe-complexity")
    for row in rows:
        assert list(row) == ["ingredient_count", "recipe_count"]
    assert [(r["ingredient_count"], r["recipe_count"]) for r in rows] == exp.complexity


def check_ingredient_tree(published: Published, exp: Expected) -> None:
    root = published.data("ingredient-tree")
    assert root["id"] == "root" and root["name"] == "All Ingredients"
    assert root["hierarchical_recipe_count"] == len(exp.recipes_with_rows)
    seen: list[int] = []
    stack: list[tuple[dict[str, Any], int | None]] = [
        (child, None) for child in root["children"]]
    assert [c["name"] for c in root["children"]] == sorted(c["name"] for c in root["children"])
    while stack:
        node, parent = stack.pop()
        assert set(node) == {"id", "name", "recipe_count", "hierarchical_recipe_count",
                             "edge_weight", "children"}
        assert isinstance(node["id"], str)
        iid = int(node["id"])
        seen.append(iid)
        want = exp.nodes[iid]
        assert want.parent == parent, f"ingredient {iid} is under {parent}, not {want.parent}"
        assert node["name"] == want.name
        assert node["recipe_count"] == want.direct
        assert node["hierarchical_recipe_count"] == want.hierarchical
        assert node["edge_weight"] == 1.0
        names = [c["name"] for c in node["children"]]
        assert names == sorted(names), iid
        assert {int(c["id"]) for c in node["children"]} == {
            c.id for c in exp.children(iid)}
        stack.extend((child, iid) for child in node["children"])
    assert sorted(seen) == sorted(exp.nodes), "every ingredient exactly once"


def check_space(published: Published, exp: Expected, analytics_type: str) -> np.ndarray:
    rows = published.data(analytics_type)
    for row in rows:
        assert list(row) == SPACE_KEYS
    ids = [r["recipe_id"] for r in rows]
    assert sorted(ids) == exp.space_recipes and len(set(ids)) == len(ids)
    for row in rows:
        assert row["recipe_name"] == exp.recipe_names[row["recipe_id"]]
        assert row["ingredients"] == exp.ingredient_list(row["recipe_id"]), row["recipe_id"]
        assert isinstance(row["x"], float) and isinstance(row["y"], float)
        assert math.isfinite(row["x"]) and math.isfinite(row["y"])
    by_id = {r["recipe_id"]: (r["x"], r["y"]) for r in rows}
    return np.array([by_id[r] for r in exp.space_recipes], dtype=np.float64).reshape(-1, 2)


def check_em_arrays(published: Published, exp: Expected, *, dense: bool) -> sp.csr_matrix:
    cost = published.array("ingredient-distances-em.npy")
    ids = published.array("ingredient-distances-em-ids.npy")
    p = len(exp.cost_ids())
    assert ids.tolist() == exp.cost_ids()
    assert cost.shape == (p, p) and cost.dtype == np.float64
    assert np.all(np.isfinite(cost))
    np.testing.assert_allclose(cost, cost.T, atol=1e-12)
    assert np.all(cost >= 0) and np.all(np.diag(cost) == 0)
    if p > 2:
        off = cost[~np.eye(p, dtype=bool)]
        # the learned cost (median off-diagonal = the median target 1), not the tree distances
        assert math.isclose(float(np.median(off)), 1.0, rel_tol=1e-9)
        tree = np.array([[exp.tree_distance(a, b) for b in ids] for a in ids])
        assert not np.allclose(cost, tree), "the starting tree distances were published"

    packed = published.arrays("recipe-distances-em.npz")
    assert set(packed) == {"data", "indices", "indptr", "shape", "recipe_ids"}
    n = len(exp.space_recipes)
    assert packed["recipe_ids"].tolist() == exp.space_recipes
    assert packed["shape"].tolist() == [n, n]
    graph = sp.csr_matrix((packed["data"], packed["indices"], packed["indptr"]), shape=(n, n))
    assert np.all(np.isfinite(graph.data)) and np.all(graph.data >= 0)
    coo = graph.tocoo()
    assert np.all(coo.row != coo.col), "no diagonal entries"
    structure = sp.csr_matrix((np.ones_like(graph.data), graph.indices, graph.indptr),
                              shape=(n, n))
    assert (structure != structure.T).nnz == 0, "symmetric structure"
    assert abs(graph - graph.T).max() <= 1e-12 if graph.nnz else True
    if n > 1:
        assert all(graph.indptr[r + 1] > graph.indptr[r] for r in range(n)), (
            "every recipe has at least one computed pair")
    if dense:
        full = published.array("recipe-distances-em.npy")
        assert full.shape == (n, n)
        assert published.array("recipe-distances-em-ids.npy").tolist() == exp.space_recipes
        assert np.all(np.diag(full) == 0)
        known = structure.toarray().astype(bool)
        np.testing.assert_allclose(full[known], graph.toarray()[known], atol=0)
        off_unknown = ~known & ~np.eye(n, dtype=bool)
        assert np.all(np.isnan(full[off_unknown]))
    return graph


def similarity_rows(db_url: str) -> dict[int, tuple[str, list[dict[str, Any]]]]:
    with psycopg.connect(db_url) as conn:
        return {r: (name, neighbors) for r, name, neighbors in conn.execute(
            "SELECT recipe_id, recipe_name, neighbors FROM recipe_similarity")}


def check_similarity(db_url: str, exp: Expected, graph: sp.csr_matrix, n_max: int = 20) -> None:
    table = similarity_rows(db_url)
    recipes = exp.space_recipes
    assert sorted(table) == recipes
    position = {r: k for k, r in enumerate(recipes)}
    for recipe_id, (name, neighbors) in table.items():
        assert name == exp.recipe_names[recipe_id]
        row = position[recipe_id]
        known = dict(zip(graph.indices[graph.indptr[row]:graph.indptr[row + 1]].tolist(),
                         graph.data[graph.indptr[row]:graph.indptr[row + 1]].tolist(),
                         strict=True))
        assert len(neighbors) == min(n_max, len(known)), recipe_id
        distances = [nb["distance"] for nb in neighbors]
        assert distances == sorted(distances)
        ids = [nb["neighbor_recipe_id"] for nb in neighbors]
        assert len(set(ids)) == len(ids) and recipe_id not in ids
        chosen = {position[i] for i in ids}
        # the nearest among the computed pairs, each at its published distance
        rest = [d for s, d in known.items() if s not in chosen]
        if rest and distances:
            assert max(distances) <= min(rest) + 1e-9, recipe_id
        mine = exp.rolled_ingredients(recipe_id)
        for nb in neighbors:
            # jsonb keeps keys in its own order: compare the key set
            assert set(nb) == {"neighbor_recipe_id", "neighbor_name", "distance",
                               "transport_plan"}
            other = nb["neighbor_recipe_id"]
            assert nb["neighbor_name"] == exp.recipe_names[other]
            assert math.isclose(nb["distance"], known[position[other]], rel_tol=0,
                                abs_tol=1e-12)
            flows = nb["transport_plan"]
            assert len(flows) <= 3
            masses = [f["mass"] for f in flows]
            assert all(a >= b - 1e-9 for a, b in itertools.pairwise(masses)), masses
            assert sum(masses) <= 1 + 1e-9
            theirs = exp.rolled_ingredients(other)
            for flow in flows:
                assert set(flow) == FLOW_KEYS
                a, b = flow["from_ingredient_id"], flow["to_ingredient_id"]
                assert a != b
                assert flow["from_ingredient_name"] == exp.nodes[a].name
                assert flow["to_ingredient_name"] == exp.nodes[b].name
                assert a in mine, f"flow of {recipe_id} starts at {a}, not one of {mine}"
                assert b in theirs, f"flow of {recipe_id} ends at {b}, not one of {theirs}"
                assert 0 < flow["mass"] <= 1 + 1e-12


def declared_checks() -> set[dg.AssetCheckKey]:
    return {spec.key for a in GRAPH_ASSETS if isinstance(a, dg.AssetsDefinition)
            for spec in a.check_specs}


def check_asset_checks(result: dg.ExecuteInProcessResult) -> None:
    """Every declared check was evaluated once, against its materialization; none failed
    (a WARN check may: it reports, it does not stop, and says so in its severity)."""
    evaluations = result.get_asset_check_evaluations()
    keys = [dg.AssetCheckKey(e.asset_key, e.check_name) for e in evaluations]
    assert sorted(keys, key=str) == sorted(declared_checks(), key=str)
    failed = [(k, e.metadata) for k, e in zip(keys, evaluations, strict=True)
              if not e.passed and e.severity == dg.AssetCheckSeverity.ERROR]
    assert not failed
    for evaluation in evaluations:
        assert evaluation.target_materialization_data is not None, evaluation.check_name
        if not evaluation.passed:
            assert evaluation.severity == dg.AssetCheckSeverity.WARN, evaluation.check_name


def materialization_metadata(result: dg.ExecuteInProcessResult) -> dict[str, dict[str, Any]]:
    out = {}
    for event in result.get_asset_materialization_events():
        mat = event.event_specific_data.materialization
        out[mat.asset_key.to_user_string()] = {
            k: getattr(v, "value", v) for k, v in mat.metadata.items()}
    return out


def preview_png(markdown: str, published: Published) -> bytes:
    """The picture a preview's Markdown shows: a short image link (the UI renders Markdown of
    under 1,000 characters inline) to the webserver's route for the stored preview."""
    assert len(markdown) < 1000, len(markdown)
    found = re.fullmatch(r"!\[[^\]]*\]\(/logs/previews/([a-z0-9-]+)/png\)", markdown)
    assert found, markdown[:80]
    return published.raw(f"work/previews/{found.group(1)}.png")


def check_metadata(result: dg.ExecuteInProcessResult, published: Published,
                   exp: Expected) -> None:
    meta = materialization_metadata(result)
    rows = {
        "analytics/ingredient_usage": ("ingredient-usage", len(exp.roots)),
        "analytics/recipe_complexity": ("recipe-complexity", len(exp.complexity)),
        "analytics/ingredient_tree": ("ingredient-tree", len(exp.nodes)),
        "spaces/cocktail_space": ("cocktail-space", len(exp.space_recipes)),
        "spaces/cocktail_space_em": ("cocktail-space-em", len(exp.space_recipes)),
    }
    for key, (analytics_type, count) in rows.items():
        assert meta[key]["dagster/row_count"] == count, key
        assert meta[key]["dagster/uri"] == published.uri(f"{analytics_type}.json"), key
        assert isinstance(meta[key]["duration_s"], float) and meta[key]["duration_s"] >= 0
    for key in ("spaces/cocktail_space", "spaces/cocktail_space_em", "analytics/ingredient_tree"):
        png = preview_png(meta[key]["preview"], published)
        assert png.startswith(PNG_SIGNATURE)
        assert int.from_bytes(png[16:20], "big") == 800, key  # IHDR width: readable inline
    assert meta["analytics/ingredient_tree"]["depth"] == exp.depth
    assert meta["analytics/ingredient_tree"]["size"] == len(exp.nodes) + 1
    assert meta["spaces/recipe_similarity"]["dagster/row_count"] == len(exp.space_recipes)
    assert meta["spaces/recipe_similarity"]["dagster/table_name"] == "recipe_similarity"
    assert meta["spaces/em_fit"]["dagster/row_count"] == len(exp.space_recipes)
    assert meta["spaces/em_fit"]["dagster/uri"] == published.uri("recipe-distances-em.npz")
    assert meta["spaces/em_fit"]["recipe_distances_uri"] == published.uri(
        "recipe-distances-em.npz")
    assert meta["spaces/em_fit"]["ingredient_distances_uri"] == published.uri(
        "ingredient-distances-em.npy")


def check_everything(db_url: str, published: Published, result: dg.ExecuteInProcessResult,
                     exp: Expected, *, dense: bool = True) -> sp.csr_matrix:
    assert result.success
    check_envelopes_and_keys(published, dense=dense)
    check_ingredient_usage(published, exp)
    check_recipe_complexity(published, exp)
    check_ingredient_tree(published, exp)
    check_space(published, exp, "cocktail-space")
    check_space(published, exp, "cocktail-space-em")
    graph = check_em_arrays(published, exp, dense=dense)
    check_similarity(db_url, exp, graph)
    check_asset_checks(result)
    check_metadata(result, published, exp)
    return graph
