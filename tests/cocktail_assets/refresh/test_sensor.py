"""The refresh sensor against real PostgreSQL and a real Dagster instance.

Time passes by moving the recorded change timestamps into the past (``Toy.advance``) and the
backoff clock in the cursor (``age_cursor``), never by sleeping.
"""

from __future__ import annotations

import re
import threading

import dagster as dg
import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from cocktail_assets.dagster_private import RUN_KEY_TAG
from cocktail_assets.errors import DatabaseUnavailable
from cocktail_assets.refresh.jobs import JOB_NAME
from cocktail_assets.tags import CHANGE_SNAPSHOT_TAG, REFRESH_TAG, SETTLED_TAG, TRIGGER_TAG
from tests.cocktail_assets.refresh.conftest import SPACE_KEYS, Toy, about, age_cursor, skip_text

SUCCESS, FAILURE = dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE


def edit_recipes(toy: Toy, n: int = 1) -> None:
    for _ in range(n):
        toy.sql("UPDATE recipes SET name = name || '!'")


def the_request(result: dg.SensorResult) -> dg.RunRequest:
    assert len(result.run_requests) == 1, result.skip_reason
    return result.run_requests[0]


def test_a_burst_of_edits_gives_exactly_one_run_after_the_quiet_period(site: Toy) -> None:
    toy = site
    edit_recipes(toy, 10)
    toy.sql("INSERT INTO recipe_ingredients (recipe_id, ingredient_id, amount) "
            "SELECT r.id, i.id, 15 FROM recipes r, ingredients i")
    reason = skip_text(toy.tick())
    assert "debouncing" in reason
    assert "recipe_ingredients (1 change), recipes (10 changes)" in reason
    assert "max wait 1h00m" in reason

    toy.advance(14)
    assert re.search(f"\\({about(1)} left\\)", skip_text(toy.tick()))
    toy.advance(1.1)
    request = the_request(toy.tick())
    assert request.tags[TRIGGER_TAG] == "sensor" and request.tags[REFRESH_TAG] == "true"
    assert CHANGE_SNAPSHOT_TAG in request.tags
    result = toy.fulfil(request)
    assert result is not None and result.success
    for _ in range(3):
        toy.advance(30)
        assert "no pending changes" in skip_text(toy.tick())
    assert [run.status for run in toy.refresh_runs()] == [SUCCESS]
    assert toy.pending() == {}


def test_edits_every_minute_run_at_the_max_wait_interval_and_none_is_lost(site: Toy) -> None:
    toy = site
    run_minutes: list[int] = []
    for minute in range(125):  # two hours of an edit every minute
        toy.sql("INSERT INTO recipe_ingredients (recipe_id, ingredient_id, amount) "
                "SELECT min(r.id), min(i.id), %s FROM recipes r, ingredients i", (minute,))
        result = toy.tick()
        if result.run_requests:
            run_minutes.append(minute)
            assert toy.fulfil(the_request(result)).success
        toy.advance(1)
    assert run_minutes == [60, 121]  # the oldest unrefreshed edit is never older than an hour
    assert "debouncing" in skip_text(toy.tick())
    toy.advance(15)
    assert toy.fulfil(the_request(toy.tick())).success
    assert toy.pending() == {}
    # The last run saw every edit: none was settled without a run having read it.
    usage = toy.instance.get_latest_materialization_event(dg.AssetKey(["analytics", "ingredient_usage"]))
    assert usage is not None
    assert usage.asset_materialization.metadata["rows"].value == 2 + 125


def test_an_edit_during_a_run_gives_a_second_run_after_it(site: Toy) -> None:
    toy = site
    edit_recipes(toy)
    toy.advance(16)
    request = the_request(toy.tick())
    toy.edit_sql = "INSERT INTO units (name, conversion_to_ml) VALUES ('dash', 0.6)"
    assert toy.fulfil(request).success  # the run itself makes a site edit mid-way
    toy.edit_sql = None
    assert toy.pending() == {"units": 1}
    assert "debouncing" in skip_text(toy.tick())
    toy.advance(16)
    second = the_request(toy.tick())
    assert set(second.asset_selection or []) == SPACE_KEYS  # units: volumes and the spaces
    assert second.run_key != request.run_key
    assert toy.fulfil(second).success
    assert toy.pending() == {}
    assert len(toy.refresh_runs()) == 2


def test_a_run_in_progress_holds_back_the_next(site: Toy) -> None:
    toy = site
    running = toy.instance.create_run_for_job(
        toy.defs().resolve_job_def(JOB_NAME), tags={REFRESH_TAG: "true"},
        status=dg.DagsterRunStatus.STARTED,
    )
    edit_recipes(toy)
    toy.advance(90)
    reason = skip_text(toy.tick())
    assert f"refresh run {running.run_id} is STARTED" in reason
    assert "pending: recipes (1 change)" in reason
    toy.instance.report_run_canceled(running)  # a canceled run counts as a failed one
    result = toy.tick()
    assert "backing off after 1 consecutive failed run" in skip_text(result)
    assert toy.fulfil(the_request(toy.tick(age_cursor(result.cursor, 1)))).success
    assert toy.pending() == {}


def test_a_failed_run_is_retried_with_backoff_and_its_changes_are_kept(site: Toy) -> None:
    toy = site
    edit_recipes(toy, 3)
    toy.advance(16)
    toy.fail = True
    first = the_request(toy.tick())
    assert not toy.fulfil(first).success
    assert toy.pending() == {"recipes": 3}

    result = toy.tick()
    reason = skip_text(result)
    assert "backing off after 1 consecutive failed run" in reason and "retry in 1m00s" in reason
    cursor = age_cursor(result.cursor, 0.5)
    assert re.search(f"retry in {about(0.5)} ", skip_text(toy.tick(cursor)))
    retry = the_request(toy.tick(age_cursor(result.cursor, 1)))
    assert retry.run_key != first.run_key
    assert not toy.fulfil(retry).success

    result = toy.tick(age_cursor(result.cursor, 1))  # a new failure: its own backoff clock
    assert "2 consecutive failed runs" in skip_text(result) and "retry in 2m00s" in skip_text(
        result
    )
    toy.fail = False
    last = the_request(toy.tick(age_cursor(result.cursor, 2)))
    assert toy.fulfil(last).success
    assert toy.pending() == {}
    assert [run.status for run in toy.refresh_runs()] == [FAILURE, FAILURE, SUCCESS]
    assert len({run.tags[RUN_KEY_TAG] for run in toy.refresh_runs()}) == 3


def test_tables_no_asset_reads_need_no_run_and_are_settled_in_the_tick(site: Toy) -> None:
    toy = site
    toy.sql("INSERT INTO tags (name) VALUES ('tiki')")
    toy.sql("INSERT INTO recipe_tags (recipe_id, tag_id) SELECT r.id, t.id FROM recipes r, tags t")
    toy.sql("INSERT INTO user_ingredients (cognito_user_id, ingredient_id) "
            "SELECT 'u1', id FROM ingredients")
    reason = skip_text(toy.tick())
    assert "settling recipe_tags, tags, user_ingredients" in reason
    assert toy.pending() == {}
    toy.advance(120)
    skip_text(toy.tick())
    assert toy.refresh_runs() == []


def test_a_ratings_only_change_requests_no_space_assets(site: Toy) -> None:
    toy = site
    # The site's rating trigger rewrites recipes.avg_rating: not a column the analytics read.
    toy.sql("INSERT INTO ratings (cognito_user_id, recipe_id, rating) "
            "SELECT 'u1', id, 5 FROM recipes")
    toy.sql("UPDATE ratings SET rating = 4")
    toy.advance(120)
    reason = skip_text(toy.tick())
    assert "settling ratings" in reason
    assert toy.pending() == {}
    assert toy.refresh_runs() == []


def test_a_restarted_sensor_with_a_lost_cursor_repeats_no_run_and_loses_no_change(
    site: Toy,
) -> None:
    toy = site
    edit_recipes(toy)
    toy.advance(16)
    before = the_request(toy.tick())
    again = the_request(toy.tick(cursor=None))  # the daemon died before submitting: re-asked
    assert again.run_key == before.run_key
    assert toy.fulfil(before, settle=False).success  # the settle sensor was down too
    assert toy.fulfil(again) is None  # same change point: the run key dedups
    toy.sql("INSERT INTO units (name) VALUES ('dash')")  # edited while the daemon was down

    # Restarted, cursor lost, the success never settled (no settle sensor was running).
    reason = skip_text(toy.tick(cursor=None))
    assert "debouncing" in reason and "pending: units (1 change)" in reason
    assert toy.pending() == {"units": 1}
    assert toy.refresh_runs()[0].tags[SETTLED_TAG] == "1"
    toy.advance(16)
    assert toy.fulfil(the_request(toy.tick(cursor=None))).success
    assert toy.pending() == {}
    assert len(toy.refresh_runs()) == 2


def test_a_failure_seen_by_a_restarted_sensor_still_backs_off_and_retries(site: Toy) -> None:
    toy = site
    edit_recipes(toy)
    toy.advance(16)
    toy.fail = True
    assert not toy.fulfil(the_request(toy.tick())).success
    toy.fail = False
    result = toy.tick(cursor="not json")  # a lost or mangled cursor: the backoff restarts
    assert "retry in 1m00s" in skip_text(result)
    assert toy.fulfil(the_request(toy.tick(age_cursor(result.cursor, 1)))).success
    assert toy.pending() == {}


def test_the_database_down_fails_the_tick_in_one_line_and_the_next_recovers(
    site: Toy, pg_admin_url: str
) -> None:
    toy = site
    dbname = conninfo_to_dict(toy.db_url)["dbname"]
    edit_recipes(toy)
    toy.advance(16)
    with psycopg.connect(pg_admin_url, autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{dbname}" ALLOW_CONNECTIONS false')
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
            (dbname,),
        )
        with pytest.raises(DatabaseUnavailable) as failed:
            toy.tick()
        admin.execute(f'ALTER DATABASE "{dbname}" ALLOW_CONNECTIONS true')
    message = str(failed.value)
    assert "\n" not in message and dbname in message and "cannot connect" in message
    assert failed.value.__cause__ is None and failed.value.__suppress_context__
    assert toy.fulfil(the_request(toy.tick())).success
    assert toy.pending() == {}


def test_two_sensors_evaluating_at_once_give_one_run(site: Toy) -> None:
    toy = site
    edit_recipes(toy)
    toy.advance(16)
    barrier = threading.Barrier(2)
    results: list[dg.SensorResult] = []

    def daemon() -> None:
        barrier.wait()
        results.append(toy.tick())

    threads = [threading.Thread(target=daemon) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    keys = {the_request(result).run_key for result in results}
    assert len(keys) == 1
    launched = [toy.fulfil(the_request(result)) for result in results]
    assert sum(run is not None for run in launched) == 1
    assert len(toy.refresh_runs()) == 1
    assert toy.pending() == {}


def test_a_transaction_that_commits_after_the_plan_stays_pending(site: Toy) -> None:
    toy = site
    toy.sql("INSERT INTO units (name) VALUES ('dash')")
    toy.advance(16)
    with psycopg.connect(toy.db_url) as late:
        late.execute("INSERT INTO recipes (name) VALUES ('late negroni')")  # begun, uncommitted
        request = the_request(toy.tick())  # planned while the late transaction is in flight
        late.commit()
    assert toy.fulfil(request).success
    assert toy.pending() == {"recipes": 1}  # not in the plan's snapshot: not settled
    toy.advance(16)
    assert toy.fulfil(the_request(toy.tick())).success
    assert toy.pending() == {}


def test_the_settle_sensor_settles_a_successful_run_at_once(site: Toy) -> None:
    toy = site
    edit_recipes(toy)
    toy.advance(16)
    result = toy.fulfil(the_request(toy.tick()), settle=False)
    assert result is not None and result.success
    run = toy.instance.get_run_by_id(result.run_id)
    assert run is not None and SETTLED_TAG not in run.tags
    assert toy.pending() == {"recipes": 1}
    toy.settle_sensor(result)
    assert toy.pending() == {}
    settled = toy.instance.get_run_by_id(result.run_id)
    assert settled is not None and settled.tags[SETTLED_TAG] == "1"


def test_a_manual_run_bypasses_the_debounce_and_settles_what_it_covered(site: Toy) -> None:
    toy = site
    edit_recipes(toy)
    toy.sql("INSERT INTO ingredients (name) VALUES ('campari')")
    job = toy.defs().resolve_job_def(JOB_NAME)
    # The UI or CLI: no snapshot tag; the database resource records one before the first read.
    # This subset is everything downstream of ingredients, but not recipe_volumes.
    result = job.execute_in_process(
        instance=toy.instance, tags={TRIGGER_TAG: "cli"},
        asset_selection=[dg.AssetKey(["catalog", "ingredient_catalog"]),
                         dg.AssetKey(["spaces", "cocktail_space"])],
    )
    assert result.success
    run = toy.instance.get_run_by_id(result.run_id)
    assert run is not None and CHANGE_SNAPSHOT_TAG in run.tags
    reason = skip_text(toy.tick())  # the tick settles the run: its debounce is not waited for
    assert "pending: recipes (1 change);" in reason
    assert toy.pending() == {"recipes": 1}
    toy.advance(16)
    full = the_request(toy.tick())
    assert set(full.asset_selection or []) == SPACE_KEYS
    assert toy.fulfil(full).success
    assert toy.pending() == {}
