"""Which artifacts a change makes stale, as Dagster itself reports it (what the UI shows).

The sources are observed through the observable source assets or the site observer sensor
(their data version is the newest change-log id of their table). Every asset depends directly
on each table it reads (``site/lineage.py``), so Dagster's own resolution marks the whole
affected subgraph STALE, each asset with a root cause that is the table, and nothing else.
"""

from __future__ import annotations

import dagster as dg
import pytest

import cocktail_assets.resources.database as database_module
from cocktail_assets.environments import read_settings
from cocktail_assets.resources.database import CocktailDatabase
from cocktail_assets.resources.site_versions import SOURCE_TABLES, site_table_key
from cocktail_assets.site.sensors import build_observe_sensor
from cocktail_assets.tags import CODE_LOCATION, CODE_LOCATION_TAG
from tests.cocktail_assets.graph.conftest import (
    GRAPH_ASSETS,
    execute,
    materialize_graph,
    query,
)
from tests.dagster_private import StaleStatus, get_stale_status_resolver

SOURCES = dg.AssetSelection.assets(*(site_table_key(t) for t in SOURCE_TABLES))
SPACES = {"spaces/rolled_up_recipes", "spaces/em_fit", "spaces/cocktail_space",
          "spaces/cocktail_space_em", "spaces/manhattan_neighbors", "spaces/recipe_similarity"}
NO_VOLUMES = {"analytics/ingredient_usage", "analytics/recipe_complexity",
              "analytics/ingredient_tree", "catalog/ingredient_catalog"}
MATERIALIZABLE = {
    key.to_user_string() for a in GRAPH_ASSETS if isinstance(a, dg.AssetsDefinition)
    for key in a.keys if a.is_materializable
}
READERS_KEYS = MATERIALIZABLE - {"analytics/recipe_complexity"}  # what reads the ingredients
READERS = dg.AssetSelection.assets(*(dg.AssetKey.from_user_string(k) for k in READERS_KEYS))


def _status(instance: dg.DagsterInstance) -> dict[str, StaleStatus]:
    resolver = get_stale_status_resolver(instance, GRAPH_ASSETS)
    return {k: resolver.get_status(dg.AssetKey.from_user_string(k)) for k in MATERIALIZABLE}


def stale(instance: dg.DagsterInstance) -> set[str]:
    return {k for k, s in _status(instance).items() if s == StaleStatus.STALE}


def root_causes(instance: dg.DagsterInstance, key: str) -> set[str]:
    """The assets the UI names as the reason ``key`` is stale (the end of each cause chain)."""
    resolver = get_stale_status_resolver(instance, GRAPH_ASSETS)
    causes = resolver.get_stale_root_causes(dg.AssetKey.from_user_string(key))
    return {c.asset_key.to_user_string() for c in causes}


def _versions(db_url: str) -> dict[str, int]:
    return dict(query(db_url, "SELECT table_name, max(id) FROM analytics_change_log GROUP BY 1"))


@pytest.fixture
def observed(sample_db_url: str, local_target):
    """An instance on which the whole graph was materialized (sources observed first), and a
    function that observes the sources again."""
    store, _ = local_target
    with dg.DagsterInstance.ephemeral() as instance:
        assert materialize_graph(sample_db_url, store, instance=instance).success

        def observe() -> None:
            result = materialize_graph(sample_db_url, store, instance=instance,
                                       selection=SOURCES)
            assert len(result.get_asset_observation_events()) == len(SOURCE_TABLES)

        yield instance, observe


def test_everything_fresh_after_materializing(observed) -> None:
    instance, observe = observed
    observe()
    status = _status(instance)
    assert status.keys() >= SPACES | NO_VOLUMES | {"catalog/recipe_volumes"}
    assert stale(instance) == set()


def test_ratings_and_tags_tables_leave_everything_fresh(observed, sample_db_url: str) -> None:
    """A change that only the ratings, tags and recipe_tags tables see (the site's rating
    trigger, which also rewrites recipes.avg_rating, is off: see the next test)."""
    instance, observe = observed
    before = _versions(sample_db_url)
    execute(sample_db_url, "ALTER TABLE ratings DISABLE TRIGGER ratings_update_recipe_rating")
    execute(sample_db_url, "INSERT INTO ratings (cognito_user_id, recipe_id, rating) "
            "SELECT 'staleness-test', min(id), 5 FROM recipes")
    execute(sample_db_url, "INSERT INTO tags (name) VALUES ('staleness-test')")
    execute(sample_db_url, "INSERT INTO recipe_tags (recipe_id, tag_id) SELECT "
            "(SELECT max(id) FROM recipes), (SELECT max(id) FROM tags)")
    after = _versions(sample_db_url)
    assert {t for t in after if after[t] != before.get(t)} == {"ratings", "tags", "recipe_tags"}
    observe()
    assert stale(instance) == set()


def test_a_new_rating_leaves_everything_fresh(observed, sample_db_url: str) -> None:
    """The site's ratings trigger rewrites recipes.avg_rating; that is no recipes change."""
    instance, observe = observed
    execute(sample_db_url, "INSERT INTO ratings (cognito_user_id, recipe_id, rating) "
            "SELECT 'staleness-test', min(id), 5 FROM recipes")
    observe()
    assert stale(instance) == set()


def test_units_change_makes_the_volumes_and_every_space_stale(
    observed, sample_db_url: str
) -> None:
    instance, observe = observed
    execute(sample_db_url, "UPDATE units SET conversion_to_ml = conversion_to_ml * 1.01 "
            "WHERE name = 'oz'")
    observe()
    # the units feed the volume fractions, so they and everything computed from them are
    # stale in Dagster's own view, each because of the table...
    assert stale(instance) == SPACES | {"catalog/recipe_volumes"}
    for key in SPACES | {"catalog/recipe_volumes"}:
        assert root_causes(instance, key) == {"site/units"}, key
    # ...nothing that reads no volume (usage counts, complexity, the tree) is
    assert all(_status(instance)[k] == StaleStatus.FRESH for k in NO_VOLUMES)


def test_ingredients_change_makes_every_reader_stale_and_rematerializing_clears_it(
    observed, sample_db_url: str, local_target
) -> None:
    instance, observe = observed
    execute(sample_db_url, "UPDATE ingredients SET allow_substitution = NOT allow_substitution "
            "WHERE id = (SELECT min(id) FROM ingredients)")
    observe()
    readers = MATERIALIZABLE - {"analytics/recipe_complexity"}
    assert stale(instance) == readers
    assert root_causes(instance, "spaces/cocktail_space_em") == {"site/ingredients"}
    # "Materialize unsynced": recomputing exactly the stale assets leaves nothing stale
    store, _ = local_target
    selection = dg.AssetSelection.assets(*(dg.AssetKey.from_user_string(k) for k in readers))
    assert materialize_graph(sample_db_url, store, instance=instance, selection=selection).success
    assert stale(instance) == set()


def _observer_tick(instance: dg.DagsterInstance, db_url: str) -> dg.SensorResult:
    sensor = build_observe_sensor(read_settings({}))
    context = dg.build_sensor_context(
        instance=instance, resources={"database": CocktailDatabase(url=db_url)})
    result = sensor(context)
    assert isinstance(result, dg.SensorResult)
    return result


def test_the_observer_sensor_records_new_versions_once(sample_db_url: str, local_target) -> None:
    """No click: the sensor's observations alone make the readers of an edited table stale,
    with the change's metadata; a second tick records nothing; a run of the code location in
    progress postpones the observation."""
    store, _ = local_target
    with dg.DagsterInstance.ephemeral() as instance:
        first = _observer_tick(instance, sample_db_url)
        assert {e.asset_key.to_user_string() for e in first.asset_events} == {
            f"site/{t}" for t in SOURCE_TABLES}
        for event in first.asset_events:
            instance.report_runless_asset_event(event)
        selection = dg.AssetSelection.groups("catalog", "analytics", "spaces")
        assert materialize_graph(sample_db_url, store, instance=instance,
                                 selection=selection).success
        assert stale(instance) == set()
        again = _observer_tick(instance, sample_db_url)
        assert not again.asset_events
        assert "no site table changed" in (again.skip_reason.skip_message or "")

        execute(sample_db_url, "UPDATE recipe_ingredients SET amount = amount * 2 "
                "WHERE id = (SELECT min(id) FROM recipe_ingredients)")
        run = instance.create_run_for_job(
            dg.GraphDefinition("noop", node_defs=[]).to_job(),
            tags={CODE_LOCATION_TAG: CODE_LOCATION},
            status=dg.DagsterRunStatus.STARTED)
        waiting = _observer_tick(instance, sample_db_url)
        assert not waiting.asset_events
        assert f"once run {run.run_id} ends" in waiting.skip_reason.skip_message
        instance.delete_run(run.run_id)

        tick = _observer_tick(instance, sample_db_url)
        assert [e.asset_key.to_user_string() for e in tick.asset_events] == [
            "site/recipe_ingredients"]
        metadata = tick.asset_events[0].metadata
        assert metadata["pending_changes"].value >= 1
        assert metadata["last_change"].value == "UPDATE"
        assert metadata["last_change_at"].value > 0
        for event in tick.asset_events:
            instance.report_runless_asset_event(event)
        assert stale(instance) == MATERIALIZABLE - {"catalog/ingredient_catalog"}
        assert root_causes(instance, "spaces/cocktail_space") == {"site/recipe_ingredients"}


def test_a_run_soon_after_an_edit_is_not_stale_once_the_observer_catches_up(
    observed, sample_db_url: str, local_target
) -> None:
    """An edit, then a run before the observer's next tick (a CLI refresh or a UI
    Materialize within one sensor interval): the run observes the edit's version before its
    first step, so what it computed is not stale and the observer has nothing left to record."""
    instance, _observe = observed
    store, _ = local_target
    execute(sample_db_url, "UPDATE ingredients SET allow_substitution = NOT allow_substitution "
            "WHERE id = (SELECT min(id) FROM ingredients)")
    assert materialize_graph(sample_db_url, store, instance=instance, selection=READERS).success
    assert stale(instance) == set()
    assert not _observer_tick(instance, sample_db_url).asset_events
    latest = instance.fetch_observations(site_table_key("ingredients"), limit=1).records[0]
    observation = latest.asset_observation
    assert observation is not None
    assert observation.data_version == str(_versions(sample_db_url)["ingredients"])
    assert "before its first step" in observation.metadata["observed_by"].value


def test_a_run_observes_the_versions_of_its_own_snapshot(
    observed, sample_db_url: str, local_target, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An edit committed between the run's change snapshot and its read of the versions is
    not in the snapshot (the run does not settle it), so the run must not observe it: once
    the observer records it, every reader is stale, not falsely fresh."""
    instance, _observe = observed
    store, _ = local_target
    read_versions = database_module.table_changes

    def edit_then_read(conn):
        execute(sample_db_url, "UPDATE ingredients SET allow_substitution = "
                "NOT allow_substitution WHERE id = (SELECT min(id) FROM ingredients)")
        return read_versions(conn)

    before = _versions(sample_db_url)["ingredients"]
    monkeypatch.setattr(database_module, "table_changes", edit_then_read)
    assert materialize_graph(sample_db_url, store, instance=instance, selection=READERS).success
    monkeypatch.undo()
    assert _versions(sample_db_url)["ingredients"] > before  # the edit did commit mid-set-up
    latest = instance.fetch_observations(site_table_key("ingredients"), limit=1).records[0]
    assert latest.asset_observation is not None
    assert latest.asset_observation.data_version == str(before)
    assert stale(instance) == set()
    tick = _observer_tick(instance, sample_db_url)
    assert [e.asset_key.to_user_string() for e in tick.asset_events] == ["site/ingredients"]
    for event in tick.asset_events:
        instance.report_runless_asset_event(event)
    assert stale(instance) == set(READERS_KEYS)
