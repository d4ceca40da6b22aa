"""Which artifacts a change makes stale: each published asset depends only on what it reads.

The sources are observed through the observable source assets (their data version is the
newest change-log id of their table); staleness is Dagster's own resolution over the instance.
Dagster 1.13 reports STALE on the asset whose input changed; everything downstream of it is
stale too (it will be recomputed from the new input), so ``effectively_stale`` adds those.
"""

from __future__ import annotations

import dagster as dg
import pytest

from cocktail_assets.site.assets import SOURCE_TABLES, site_table_key
from tests.cocktail_assets.graph.conftest import GRAPH_ASSETS, execute, materialize_graph, query
from tests.dagster_private import AssetGraph, StaleStatus, get_stale_status_resolver

SOURCES = dg.AssetSelection.assets(*(site_table_key(t) for t in SOURCE_TABLES))
SPACES = {"spaces/rolled_up_recipes", "spaces/em_fit", "spaces/cocktail_space",
          "spaces/cocktail_space_em", "spaces/manhattan_neighbors", "spaces/recipe_similarity"}
NO_VOLUMES = {"analytics/ingredient_usage", "analytics/recipe_complexity",
              "analytics/ingredient_tree", "catalog/ingredient_catalog"}
MATERIALIZABLE = {
    key.to_user_string() for a in GRAPH_ASSETS if isinstance(a, dg.AssetsDefinition)
    for key in a.keys if a.is_materializable
}
GRAPH = AssetGraph.from_assets(GRAPH_ASSETS)


def _status(instance: dg.DagsterInstance) -> dict[str, StaleStatus]:
    resolver = get_stale_status_resolver(instance, GRAPH_ASSETS)
    return {k: resolver.get_status(dg.AssetKey.from_user_string(k)) for k in MATERIALIZABLE}


def _ancestors(key: str) -> set[str]:
    out: set[str] = set()
    frontier = [dg.AssetKey.from_user_string(key)]
    while frontier:
        parents = GRAPH.get(frontier.pop()).parent_keys
        for parent in parents:
            if parent.to_user_string() not in out:
                out.add(parent.to_user_string())
                frontier.append(parent)
    return out


def effectively_stale(instance: dg.DagsterInstance) -> set[str]:
    """Assets that are STALE or downstream of a STALE asset."""
    stale = {k for k, s in _status(instance).items() if s != StaleStatus.FRESH}
    return {k for k in MATERIALIZABLE if k in stale or _ancestors(k) & stale}


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
    assert effectively_stale(instance) == set()


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
    assert effectively_stale(instance) == set()


def test_a_new_rating_leaves_the_spaces_fresh(observed, sample_db_url: str) -> None:
    """The site's ratings trigger rewrites recipes.avg_rating; that is no recipes change."""
    instance, observe = observed
    execute(sample_db_url, "INSERT INTO ratings (cognito_user_id, recipe_id, rating) "
            "SELECT 'staleness-test', min(id), 5 FROM recipes")
    observe()
    assert not effectively_stale(instance) & (SPACES | {"catalog/recipe_volumes"})


def test_units_change_makes_the_spaces_stale(observed, sample_db_url: str, local_target) -> None:
    instance, observe = observed
    execute(sample_db_url, "UPDATE units SET conversion_to_ml = conversion_to_ml * 1.01 "
            "WHERE name = 'oz'")
    observe()
    status = _status(instance)
    # the units feed the volume fractions, so they and everything computed from them are stale
    assert {k for k, s in status.items() if s == StaleStatus.STALE} == {"catalog/recipe_volumes"}
    assert effectively_stale(instance) == SPACES | {"catalog/recipe_volumes"}
    # ...nothing that reads no volume (usage counts, complexity, the tree) is
    assert all(status[k] == StaleStatus.FRESH for k in NO_VOLUMES)
    # once the volumes are recomputed, Dagster itself reports their readers stale
    store, _ = local_target
    materialize_graph(sample_db_url, store, instance=instance,
                      selection=dg.AssetSelection.assets(["catalog", "recipe_volumes"]))
    status = _status(instance)
    assert {k for k, s in status.items() if s == StaleStatus.STALE} == {
        "spaces/rolled_up_recipes", "spaces/manhattan_neighbors", "spaces/cocktail_space",
        "spaces/cocktail_space_em", "spaces/recipe_similarity"}
