"""One real refresh through the sensor: the real job and asset graph on the bundled sample."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import psycopg
import pytest

from cocktail_assets.dagster_private import RUN_KEY_TAG, SENSOR_NAME_TAG
from cocktail_assets.db.seed import seed_sample
from cocktail_assets.environments import read_settings
from cocktail_assets.refresh.jobs import JOB_NAME
from cocktail_assets.refresh.policy import Policy
from cocktail_assets.refresh.sensors import (
    REFRESH_SENSOR_NAME,
    SETTLE_SENSOR_NAME,
)
from cocktail_assets.refresh.status import status_lines
from cocktail_assets.resources.database import CocktailDatabase
from cocktail_assets.resources.site_versions import site_table_key
from tests.cocktail_assets.refresh.conftest import Cli
from tests.dagster_private import StaleStatus, get_stale_status_resolver


def test_the_sensor_runs_the_real_refresh_on_the_sample_data(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, instance: dg.DagsterInstance
) -> None:
    from cocktail_assets.definitions import build_defs

    monkeypatch.setenv("DATABASE_URL", db_url)
    settings = read_settings({"DATABASE_URL": db_url, "COCKTAIL_LOCAL_DIR": str(tmp_path)})
    defs = build_defs(settings)
    database = CocktailDatabase(url=db_url)
    graph = defs.resolve_asset_graph()
    with psycopg.connect(db_url) as conn:
        seed_sample(conn)

    def tick() -> dg.SensorResult:
        context = dg.build_sensor_context(
            instance=instance, definitions=defs, sensor_name=REFRESH_SENSOR_NAME,
            resources={"database": database},
        )
        return defs.resolve_sensor_def(REFRESH_SENSOR_NAME)(context)

    def age(minutes: int) -> None:
        with psycopg.connect(db_url, autocommit=True) as conn:
            conn.execute(
                "UPDATE analytics_change_log SET changed_at = changed_at - make_interval(mins => %s)",
                (minutes,),
            )

    assert tick().skip_reason is not None  # the seed is fresh: debouncing
    age(16)
    result = tick()
    assert len(result.run_requests) == 1
    request = result.run_requests[0]
    # every materializable asset but the day-partitioned activity, which has its own sensor
    materializable = {k for k in graph.get_all_asset_keys()
                      if graph.get(k).is_materializable and k.path[0] != "activity"}
    assert set(request.asset_selection or []) == materializable  # every table changed
    lines = status_lines(instance, database, graph, Policy.from_minutes(15, 60), 30)
    assert any(line.startswith("the sensor would now request a run") for line in lines)

    run = defs.resolve_job_def(JOB_NAME).execute_in_process(
        instance=instance, asset_selection=list(request.asset_selection or []),
        tags={**request.tags, RUN_KEY_TAG: request.run_key, SENSOR_NAME_TAG: REFRESH_SENSOR_NAME},
    )
    assert run.success
    success = next(e for e in run.all_events if e.event_type == dg.DagsterEventType.RUN_SUCCESS)
    stored = instance.get_run_by_id(run.run_id)
    assert stored is not None
    defs.resolve_sensor_def(SETTLE_SENSOR_NAME)(dg.build_run_status_sensor_context(
        sensor_name=SETTLE_SENSOR_NAME, dagster_event=success, dagster_instance=instance,
        dagster_run=stored, resources={"database": database},
        repository_def=defs.get_repository_def(),
    ))
    with psycopg.connect(db_url, autocommit=True) as conn:
        pending = conn.execute(
            "SELECT count(*) FROM analytics_change_log WHERE settled_at IS NULL"
        ).fetchone()
        assert pending == (0,)
        # A units change reruns the volumes and the spaces, not the recipe-only analytics.
        conn.execute("UPDATE units SET conversion_to_ml = conversion_to_ml WHERE id = "
                     "(SELECT min(id) FROM units)")
        conn.execute("INSERT INTO ratings (cognito_user_id, recipe_id, rating) "
                     "SELECT 'u1', min(id), 5 FROM recipes")
    age(16)
    second = tick().run_requests[0]
    names = {key.to_user_string() for key in second.asset_selection or []}
    assert "spaces/cocktail_space" in names and "catalog/recipe_volumes" in names
    assert "analytics/ingredient_usage" not in names and "analytics/recipe_complexity" not in names


def test_a_cli_refresh_right_after_an_edit_is_not_shown_stale(cli: Cli) -> None:
    """The CLI door (the locked executor, then the database resource): a refresh started
    before the site observer has seen an edit observes the edit's version before its first
    step, so once the observer ticks, what the run computed is fresh in Dagster's own view."""
    from cocktail_assets.definitions import build_defs
    from cocktail_assets.site.sensors import build_observe_sensor

    cli.sql("UPDATE ingredients SET allow_substitution = NOT allow_substitution "
            "WHERE id = (SELECT min(id) FROM ingredients)")
    version = cli.sql("SELECT max(id) FROM analytics_change_log "
                      "WHERE table_name = 'ingredients'")[0][0]
    done = cli.run("refresh", "--select", "catalog/ingredient_catalog",
                   "analytics/ingredient_usage")
    assert done.returncode == 0, done.stderr
    usage = dg.AssetKey(["analytics", "ingredient_usage"])
    with cli.instance() as instance:
        latest = instance.fetch_observations(site_table_key("ingredients"), limit=1).records[0]
        observation = latest.asset_observation
        assert observation is not None and observation.data_version == str(version)
        assert "before its first step" in observation.metadata["observed_by"].value
        settings = read_settings({})
        tick = build_observe_sensor(settings)(dg.build_sensor_context(
            instance=instance, resources={"database": CocktailDatabase(url=cli.db_url)}))
        assert isinstance(tick, dg.SensorResult) and not tick.asset_events
        resolver = get_stale_status_resolver(instance, build_defs(settings).assets or [])
        assert resolver.get_status(usage) == StaleStatus.FRESH
