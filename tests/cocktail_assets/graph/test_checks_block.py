"""Every check is proven to fail: each test injects the defect a check guards against and shows
that nothing of that asset (nor anything downstream) is published, the run fails naming the
check and the offending rows, the check result is recorded in the instance, the run's edits stay
pending, and the next run, without the defect, publishes and settles them.

The defects are injected by wrapping the computation the asset calls (``monkeypatch`` on the
name the asset module looks up), so the check, the gate and the store are the real ones, on a
real database and a real (local or moto S3) store.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
import psycopg
import pytest
from barcart import NeighborArrays

from cocktail_assets.analytics import assets as analytics_assets
from cocktail_assets.catalog import assets as catalog_assets
from cocktail_assets.db.connection import as_url, with_dbname
from cocktail_assets.refresh.policy import Policy
from cocktail_assets.refresh.settle import settle_run
from cocktail_assets.refresh.status import status_report
from cocktail_assets.resources.database import CocktailDatabase
from cocktail_assets.resources.store import AnalyticsStore
from cocktail_assets.spaces import assets as spaces_assets
from cocktail_assets.spaces import similarity_table
from tests.cocktail_assets.graph.conftest import (
    Published,
    graph_defs,
    materialize_graph,
)
from tests.cocktail_assets.graph.contracts import check_everything
from tests.cocktail_assets.graph.oracle import expected
from tests.cocktail_assets.graph.test_awkward_data import build_site
from tests.conftest import create_database, drop_database

# A small site with a hierarchy (two parents with a substitutable child each).
GIN, LONDON_DRY, LIME, SYRUP, RUM, WHITE_RUM, TONIC = 1, 2, 3, 4, 5, 6, 7
INGREDIENTS = [
    (GIN, "Gin", "/1/", False), (LONDON_DRY, "London dry gin", "/1/2/", True),
    (LIME, "Lime juice", "/3/", False), (SYRUP, "Simple syrup", "/4/", False),
    (RUM, "Rum", "/5/", False), (WHITE_RUM, "White rum", "/5/6/", True),
    (TONIC, "Tonic", "/7/", False),
]
RECIPES = [(10, "Gimlet"), (11, "Daiquiri"), (12, "G&T"), (13, "Rum sour"), (14, "Gin sour"),
           (15, "Rum & tonic"), (16, "Dry gimlet"), (17, "Mojito-ish")]
ROWS = [
    (10, GIN, "oz", 2), (10, LIME, "oz", 1), (10, SYRUP, "oz", 0.5),
    (11, WHITE_RUM, "oz", 2), (11, LIME, "oz", 1), (11, SYRUP, "oz", 0.75),
    (12, LONDON_DRY, "oz", 2), (12, TONIC, "to top", None),
    (13, RUM, "oz", 2), (13, LIME, "oz", 1), (13, SYRUP, "oz", 1),
    (14, GIN, "oz", 2), (14, LIME, "oz", 1), (14, SYRUP, "oz", 1),
    (15, RUM, "oz", 2), (15, TONIC, "to top", None),
    (16, LONDON_DRY, "ml", 60), (16, LIME, "ml", 20),
    (17, WHITE_RUM, "ml", 50), (17, LIME, "ml", 25), (17, SYRUP, "ml", 15), (17, TONIC, "ml", 30),
]

# What each published asset writes to the store.
ARTIFACTS = {
    "analytics/ingredient_usage": ["ingredient-usage.json"],
    "analytics/recipe_complexity": ["recipe-complexity.json"],
    "analytics/ingredient_tree": ["ingredient-tree.json"],
    "spaces/em_fit": ["ingredient-distances-em.npy", "ingredient-distances-em-ids.npy",
                      "recipe-distances-em.npz", "recipe-distances-em.npy",
                      "recipe-distances-em-ids.npy"],
    "spaces/cocktail_space": ["cocktail-space.json"],
    "spaces/cocktail_space_em": ["cocktail-space-em.json"],
}
SIMILARITY = "spaces/recipe_similarity"
SIMILARITY_SQL = ("SELECT recipe_id, recipe_name, neighbors::text, created_at "
                  "FROM recipe_similarity ORDER BY recipe_id")


def _sql(db_url: str, statement: str, params: Any = None) -> list[tuple]:
    with psycopg.connect(db_url, autocommit=True) as conn:
        cur = conn.execute(statement, params)
        return cur.fetchall() if cur.description else []


def pending(db_url: str) -> dict[str, int]:
    return dict(_sql(db_url, "SELECT table_name, count(*) FROM analytics_change_log "
                             "WHERE settled_at IS NULL GROUP BY 1"))


@dataclasses.dataclass
class Site:
    """The small site, refreshed once and settled, then edited: the edits are pending."""

    db_url: str
    store: AnalyticsStore
    published: Published
    instance: dg.DagsterInstance

    def run(self, **kwargs: Any) -> dg.ExecuteInProcessResult:
        """One run of the whole graph; settled as the CLI and the settle sensor do."""
        result = materialize_graph(
            self.db_url, self.store, instance=self.instance, raise_on_error=False, **kwargs
        )
        graph = graph_defs(self.db_url, self.store).resolve_asset_graph()
        settle_run(self.instance, result.run_id, CocktailDatabase(url=self.db_url), graph)
        return result

    def status(self) -> tuple[str, int]:
        """``cocktail-assets status``'s report and exit status for this site."""
        graph = graph_defs(self.db_url, self.store).resolve_asset_graph()
        lines, code = status_report(self.instance, CocktailDatabase(url=self.db_url), graph,
                                    Policy.from_minutes(15, 60), 30)
        return "\n".join(lines), code

    def artifacts(self) -> dict[str, bytes]:
        return {name: self.published.raw(name) for names in ARTIFACTS.values() for name in names}

    def similarity(self) -> list[tuple]:
        return _sql(self.db_url, SIMILARITY_SQL)


@pytest.fixture(scope="module")
def baseline(pg_admin_url: str, template_db: str, tmp_path_factory: pytest.TempPathFactory):
    """The small site refreshed once and settled: a database to copy and the store folder it
    published (one refresh for the whole module instead of one per test)."""
    name = create_database(pg_admin_url, template_db)
    url = as_url(with_dbname(pg_admin_url, name))
    build_site(url, INGREDIENTS, RECIPES, ROWS)
    folder = tmp_path_factory.mktemp("baseline-store")
    with dg.instance_for_test() as instance:
        site = Site(url, AnalyticsStore(local_dir=str(folder)), Published(local_dir=folder),
                    instance)
        assert site.run().success
    assert pending(url) == {}
    yield name, folder
    drop_database(pg_admin_url, name)


@pytest.fixture
def site_factory(
    pg_admin_url: str, baseline: tuple[str, Path], request: pytest.FixtureRequest
) -> Iterator[Callable[[str], Site]]:
    """``make(target)``: a copy of the baseline (database and artifacts, in the local folder or
    on moto S3), then an edit that leaves two tables pending."""
    template, folder = baseline
    made: list[str] = []
    with dg.instance_for_test() as instance:
        def make(target: str) -> Site:
            name = create_database(pg_admin_url, template)
            made.append(name)
            url = as_url(with_dbname(pg_admin_url, name))
            store, published = request.getfixturevalue(target)
            for path in folder.rglob("*"):
                if path.is_file():
                    key = path.relative_to(folder).as_posix()
                    store.put_bytes(key.removeprefix(store.key("")), path.read_bytes(),
                                    "application/octet-stream")
            site = Site(url, store, published, instance)
            # An edit after the refresh: a new recipe.
            _sql(url, "INSERT INTO recipes (id, name) VALUES (18, 'Tom Collins')")
            _sql(url, "INSERT INTO recipe_ingredients (recipe_id, ingredient_id, unit_id, "
                      "amount) SELECT 18, i, (SELECT id FROM units WHERE name = 'oz'), a "
                      "FROM (VALUES (1, 2), (3, 1), (4, 0.5), (7, 2)) v(i, a)")
            assert set(pending(url)) == {"recipes", "recipe_ingredients"}
            return site

        yield make
    for name in made:
        drop_database(pg_admin_url, name)


def downstream(key: str, site: Site) -> set[str]:
    graph = graph_defs(site.db_url, site.store).resolve_asset_graph()
    keys = dg.AssetSelection.assets(dg.AssetKey.from_user_string(key)).downstream()
    return {k.to_user_string() for k in keys.resolve(graph)}


def assert_blocked(
    site: Site, result: dg.ExecuteInProcessResult, key: str, check: str, named: list[Any],
    before: dict[str, bytes], similarity_before: list[tuple], also: tuple[str, ...] = (),
) -> None:
    """The run failed at ``key`` naming ``check`` and ``named``; nothing of ``key`` or its
    downstream was written; the check's failure is recorded; the edits are pending."""
    assert not result.success
    failures = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    steps = {k.replace("/", "__"): k for k in (key, *also)}
    assert sorted(e.step_key for e in failures) == sorted(steps)
    message = next(e for e in failures if e.step_key == key.replace("/", "__")
                   ).step_failure_data.error.message
    assert f"{key} not published: check {check} failed" in message, message
    for value in named:
        assert str(value) in message, (value, message)
    assert len(message.strip().splitlines()) == 1, message

    blocked = set().union(*(downstream(k, site) for k in (key, *also)))
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert not materialized & blocked, materialized & blocked
    after = site.artifacts()
    for asset in blocked & set(ARTIFACTS):
        for name in ARTIFACTS[asset]:
            assert after[name] == before[name], f"{name} was rewritten"
    if SIMILARITY in blocked:
        assert site.similarity() == similarity_before
    # the check's result, with its metadata, is recorded in the instance
    check_key = dg.AssetCheckKey(dg.AssetKey.from_user_string(key), check)
    record = site.instance.event_log_storage.get_latest_asset_check_execution_by_key(
        [check_key])[check_key]
    assert record.run_id == result.run_id and record.status.value == "FAILED"
    evaluation = record.event.dagster_event.event_specific_data
    assert evaluation.blocking and evaluation.severity == dg.AssetCheckSeverity.ERROR
    offending = evaluation.metadata["offending"].value
    assert [str(v) for v in named] == [str(v) for v in offending][:len(named)] or all(
        str(v) in str(offending) for v in named), offending
    assert evaluation.metadata["offending_count"].value >= 1
    assert set(pending(site.db_url)) == {"recipes", "recipe_ingredients"}
    text, code = site.status()
    assert code == 1, text
    verdict = next(line for line in text.splitlines() if line.startswith("monitoring: "))
    assert verdict.startswith("monitoring: FAILING: ") and f"{key} check {check} failed" in \
        verdict, text
    assert f"{check} FAILED (ERROR, run {result.run_id[:8]})" in text, text
    assert "pending changes:" in text and "  recipe_ingredients " in text, text


def assert_fixed(site: Site) -> None:
    """Without the defect, the next run publishes everything (checked field by field against
    SQL) and settles the edits."""
    result = site.run()
    check_everything(site.db_url, site.published, result, expected(site.db_url))
    assert 18 in {r["recipe_id"] for r in site.published.data("cocktail-space")}
    assert pending(site.db_url) == {}
    text, code = site.status()
    assert code == 0 and "monitoring: OK" in text and "pending changes: none" in text, text


def wrap(monkeypatch: pytest.MonkeyPatch, module: Any, name: str,
         corrupt: Callable[..., Any]) -> None:
    """Replace ``module.name`` by a function that corrupts what the original returns."""
    original = getattr(module, name)

    def corrupted(*args: Any, **kwargs: Any) -> Any:
        return corrupt(original(*args, **kwargs), *args)

    monkeypatch.setattr(module, name, corrupted)


def _bump_root(rows, *_: Any):
    gin = next(r for r in rows if r["ingredient_id"] == GIN)
    gin["direct_usage"] += 1
    gin["hierarchical_usage"] += 1
    return rows


def _child_above_parent(counts, *_: Any):
    direct, hierarchical = (c.copy() for c in counts)
    hierarchical[LONDON_DRY - 1] = 1000  # a child, not published as a row: only monotony sees it
    return direct, hierarchical


def _skew_complexity(rows, *_: Any):
    return [{**r, "recipe_count": r["recipe_count"] + 1} for r in rows]


def _drop_tree_child(document, *_: Any):
    gin = next(c for c in document["children"] if c["id"] == str(GIN))
    gin["children"] = []  # London dry gin goes missing
    return document


def _bump_tree_count(document, *_: Any):
    rum = next(c for c in document["children"] if c["id"] == str(RUM))
    rum["recipe_count"] += 5
    return document


def _negative_cost(result, *_: Any):
    cost = result.cost.copy()
    cost[0, 1] = cost[1, 0] = -1.0
    return dataclasses.replace(result, cost=cost)


def _foreign_cost_id(result, *_: Any):
    ids = result.cost_ids.copy()
    ids[-1] = 999
    return dataclasses.replace(result, cost_ids=ids)


def _nan_distance(result, *_: Any):
    distances = result.distances.copy()
    distances[0] = np.nan
    return dataclasses.replace(result, distances=distances)


def _nan_coordinate(coords, *_: Any):
    coords = np.array(coords, dtype=np.float64)
    coords[0, 1] = np.nan
    return coords


def _collapsed(coords, *_: Any):
    return np.zeros_like(coords)


def _drop_last_row(rows, *_: Any):
    return rows[:-1]


def _similarity_rows(table, positions):
    """The similarity table with only (or repeated) rows ``positions``."""
    nb = table.neighbors
    return dataclasses.replace(table, rows=table.rows[positions], neighbors=NeighborArrays(
        *(getattr(nb, f.name)[positions].copy() for f in dataclasses.fields(nb))))


def _row_of(table, recipe_id: int) -> int:
    return int(np.flatnonzero(table.recipe_ids[table.rows] == recipe_id)[0])


def _repeat_first_similarity_row(table, *_: Any):
    return _similarity_rows(table, np.concatenate([[0], np.arange(table.rows.size)]))


def _self_neighbour(table, *_: Any):
    table = _similarity_rows(table, np.arange(table.rows.size))
    r = _row_of(table, 13)
    table.neighbors.index[r, 0] = table.rows[r]
    return table


def _heavy_mass(table, *_: Any):
    table = _similarity_rows(table, np.arange(table.rows.size))
    nb, r = table.neighbors, _row_of(table, 11)
    if nb.flow_from[r, 0, 0] < 0:
        nb.flow_from[r, 0, 0], nb.flow_to[r, 0, 0] = LIME, GIN
    nb.flow_mass[r, 0][nb.flow_from[r, 0] >= 0] = 1.5
    return table


def _drop_recipe(volumes, *_: Any):
    matrix = volumes.matrix
    ids = matrix.recipe_ids.copy()
    ids[ids == 14] = 10  # recipe 14 lost, recipe 10 twice
    return dataclasses.replace(volumes, matrix=dataclasses.replace(matrix, recipe_ids=ids))


# A run of the small graph takes seconds, a defect test three of them: one defect per asset
# runs in the default suite, the others with -m slow.
SLOW = pytest.mark.slow

# (asset, check, module, function, corruption, what the message must name, other assets whose
# checks catch the same defect)
DEFECTS = [
    pytest.param("catalog/recipe_volumes", "every_recipe_with_volume_present", catalog_assets,
                 "load_recipe_volumes", _drop_recipe, [10, 14], (), id="volumes-recipe-lost"),
    pytest.param("analytics/ingredient_usage", "counts_match_sql", analytics_assets,
                 "ingredient_usage_rows", _bump_root, [GIN], (), id="usage-counts"),
    pytest.param("analytics/ingredient_usage", "hierarchy_monotone", analytics_assets,
                 "usage_counts", _child_above_parent, [GIN], ("analytics/ingredient_tree",),
                 id="usage-monotone", marks=SLOW),
    pytest.param("analytics/recipe_complexity", "counts_match_sql", analytics_assets,
                 "recipe_complexity_rows", _skew_complexity, ["[2, 4, 3]"], (), id="complexity"),
    pytest.param("analytics/ingredient_tree", "every_ingredient_once", analytics_assets,
                 "ingredient_tree_document", _drop_tree_child, [LONDON_DRY], (), id="tree-missing"),
    pytest.param("analytics/ingredient_tree", "counts_match_sql", analytics_assets,
                 "ingredient_tree_document", _bump_tree_count, [RUM], (), id="tree-counts", marks=SLOW),
    pytest.param("spaces/em_fit", "cost_valid", spaces_assets, "fit_em", _negative_cost,
                 [GIN, LIME], (), id="em-cost"),  # London dry gin is rolled up into gin
    pytest.param("spaces/em_fit", "cost_ids_match_rollup", spaces_assets, "fit_em",
                 _foreign_cost_id, [999], (), id="em-cost-ids", marks=SLOW),
    pytest.param("spaces/em_fit", "distances_valid", spaces_assets, "fit_em", _nan_distance,
                 ["[10, "], (), id="em-distances", marks=SLOW),
    pytest.param("spaces/cocktail_space", "coordinates_finite", spaces_assets, "embed_knn",
                 _nan_coordinate, [10], (), id="space-nan"),
    pytest.param("spaces/cocktail_space", "coordinates_spread", spaces_assets, "embed_knn",
                 _collapsed, ["all at one point"], (), id="space-collapsed", marks=SLOW),
    pytest.param("spaces/cocktail_space_em", "coordinates_finite", spaces_assets, "embed_em",
                 _nan_coordinate, [10], (), id="space-em-nan", marks=SLOW),
    pytest.param("spaces/cocktail_space_em", "coordinates_spread", spaces_assets, "embed_em",
                 _collapsed, ["all at one point"], (), id="space-em-collapsed"),
    pytest.param("spaces/recipe_similarity", "each_recipe_once", similarity_table,
                 "similarity_table", _repeat_first_similarity_row, [10], (),
                 id="similarity-repeated", marks=SLOW),
    pytest.param("spaces/recipe_similarity", "neighbors_valid", similarity_table,
                 "similarity_table", _self_neighbour, [13], (), id="similarity-self"),
    pytest.param("spaces/recipe_similarity", "neighbors_valid", similarity_table,
                 "similarity_table", _heavy_mass, [11], (), id="similarity-mass", marks=SLOW),
]


@pytest.mark.parametrize(("key", "check", "module", "name", "corrupt", "named", "also"), DEFECTS)
def test_a_failing_check_publishes_nothing(
    site_factory, monkeypatch: pytest.MonkeyPatch, key: str, check: str, module: Any,
    name: str, corrupt: Callable[..., Any], named: list[Any], also: tuple[str, ...],
) -> None:
    site = site_factory("local_target")
    before, similarity_before = site.artifacts(), site.similarity()
    with monkeypatch.context() as patch:
        wrap(patch, module, name, corrupt)
        result = site.run()
    assert_blocked(site, result, key, check, named, before, similarity_before, also)
    assert_fixed(site)


def test_each_recipe_once_fails_both_spaces_and_keeps_s3_objects(
    site_factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``space_rows`` shapes both spaces: a lost row fails each, on S3 (moto) this time."""
    site = site_factory("s3_target")
    before, similarity_before = site.artifacts(), site.similarity()
    with monkeypatch.context() as patch:
        wrap(patch, spaces_assets, "space_rows", _drop_last_row)
        result = site.run()
    assert not result.success
    failed = sorted(e.step_key for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert failed == ["spaces__cocktail_space", "spaces__cocktail_space_em"]
    for event in result.all_events:
        if event.event_type_value == "STEP_FAILURE":
            message = event.step_failure_data.error.message
            assert "check each_recipe_once failed: recipes missing, repeated or unexpected: [18]" \
                in message, message
    after = site.artifacts()
    assert after["cocktail-space.json"] == before["cocktail-space.json"]
    assert after["cocktail-space-em.json"] == before["cocktail-space-em.json"]
    # the rest of the graph did publish (the analytics, the EM arrays, the similarity table)
    assert after["ingredient-usage.json"] != before["ingredient-usage.json"]
    assert site.similarity() != similarity_before
    assert set(pending(site.db_url)) == {"recipes", "recipe_ingredients"}
    assert_fixed(site)


@pytest.mark.slow
def test_em_cost_check_keeps_every_s3_array(site_factory, monkeypatch: pytest.MonkeyPatch) -> None:
    site = site_factory("s3_target")
    before, similarity_before = site.artifacts(), site.similarity()
    with monkeypatch.context() as patch:
        wrap(patch, spaces_assets, "fit_em", _negative_cost)
        result = site.run()
    assert_blocked(site, result, "spaces/em_fit", "cost_valid", [GIN, LIME], before,
                   similarity_before)
    assert_fixed(site)


def test_a_warn_check_reports_and_still_publishes(
    site_factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = site_factory("local_target")
    before = site.artifacts()
    with monkeypatch.context() as patch:
        wrap(patch, spaces_assets, "fit_em",
             lambda result, *_: dataclasses.replace(result, converged=False))
        result = site.run()
    assert result.success
    warned = [e for e in result.get_asset_check_evaluations() if not e.passed]
    assert [(e.check_name, e.severity) for e in warned] == [
        ("converged", dg.AssetCheckSeverity.WARN)]
    assert "not converged within 5 iterations" in (warned[0].description or "")
    assert site.artifacts()["ingredient-distances-em.npy"] != before[
        "ingredient-distances-em.npy"] or site.artifacts()["recipe-distances-em.npz"] != before[
        "recipe-distances-em.npz"]
    assert pending(site.db_url) == {}


@pytest.mark.parametrize(
    ("statement", "table", "column"),
    [
        ("UPDATE recipe_ingredients SET amount = 'NaN' WHERE recipe_id = 18 AND ingredient_id = 3",
         "recipe_ingredients", "amount"),
        pytest.param("UPDATE units SET conversion_to_ml = 'NaN' WHERE name = 'oz'", "units",
                     "conversion_to_ml", marks=SLOW),
    ],
    ids=["amount", "conversion"],
)
def test_nan_is_a_data_error_naming_table_row_and_column(
    site_factory, statement: str, table: str, column: str
) -> None:
    site = site_factory("local_target")
    before, similarity_before = site.artifacts(), site.similarity()
    _sql(site.db_url, statement)
    if table == "units":
        row_id = _sql(site.db_url, "SELECT id FROM units WHERE name = 'oz'")[0][0]
    else:
        row_id = _sql(site.db_url, "SELECT id FROM recipe_ingredients WHERE recipe_id = 18 "
                                   "AND ingredient_id = 3")[0][0]
    result = site.run()
    assert not result.success
    failures = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert [e.step_key for e in failures] == ["catalog__recipe_volumes"]
    error = failures[0].step_failure_data.error
    while error.cause is not None and error.cls_name != "DataError":
        error = error.cause
    assert error.cls_name == "DataError"
    assert f"{table} row {row_id}" in error.message and f"column {column} is NaN" in \
        error.message, error.message
    assert site.artifacts()["cocktail-space.json"] == before["cocktail-space.json"]
    assert site.artifacts()["recipe-distances-em.npz"] == before["recipe-distances-em.npz"]
    assert site.similarity() == similarity_before
    assert {"recipe_ingredients"} <= set(pending(site.db_url))
    # the fix: a number again
    if table == "units":
        _sql(site.db_url, "UPDATE units SET conversion_to_ml = 30 WHERE name = 'oz'")
    else:
        _sql(site.db_url, "UPDATE recipe_ingredients SET amount = 1 WHERE recipe_id = 18 "
                          "AND ingredient_id = 3")
    assert_fixed(site)


def test_every_published_check_is_proven_to_fail() -> None:
    """Each ERROR check of a published asset (and the volumes') has a defect test above."""
    proven = {(p.values[0], p.values[1]) for p in DEFECTS} | {
        ("spaces/cocktail_space", "each_recipe_once"),
        ("spaces/cocktail_space_em", "each_recipe_once"),
    }
    from tests.cocktail_assets.graph.conftest import GRAPH_ASSETS

    declared = {
        (spec.asset_key.to_user_string(), spec.name)
        for a in GRAPH_ASSETS if isinstance(a, dg.AssetsDefinition) for spec in a.check_specs
        if spec.blocking
    }
    assert declared - proven == set()


def test_status_reports_an_asset_behind_by_the_freshness_windows(site_factory) -> None:
    """Behind is measured from the oldest pending edit an asset reads (database clock): WARN
    after max-wait (60 min), FAIL, and exit status 1, after max-wait + debounce (75 min)."""
    site = site_factory("local_target")
    text, code = site.status()
    assert code == 0 and "monitoring: OK" in text, text
    assert "published assets (behind: WARN after 1h00m, FAIL after 1h15m of a pending edit" \
        in text, text
    assert "    freshness: PASS (recipe_ingredients edit pending for" in text, text

    def age(minutes: int) -> None:
        _sql(site.db_url, "UPDATE analytics_change_log SET changed_at = changed_at - "
                          "make_interval(mins => %s) WHERE settled_at IS NULL", (minutes,))

    age(65)
    text, code = site.status()
    assert code == 0 and "    freshness: WARN (recipe" in text, text
    age(15)
    text, code = site.status()
    assert code == 1, text
    assert "    freshness: FAIL (recipe" in text, text
    assert "monitoring: FAILING: analytics/ingredient_tree is behind (recipe" in text, text
    # the freshness policy Dagster shows in the UI has the same windows
    graph = graph_defs(site.db_url, site.store).resolve_asset_graph()
    policy = graph.get(dg.AssetKey(["spaces", "cocktail_space"])).freshness_policy
    assert policy.fail_window.to_timedelta().total_seconds() == 75 * 60
    assert policy.warn_window.to_timedelta().total_seconds() == 60 * 60
    assert graph.get(dg.AssetKey(["spaces", "cocktail_space"])).owners == [
        "team:cocktail-analytics"]
