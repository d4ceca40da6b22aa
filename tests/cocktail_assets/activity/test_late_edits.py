"""Late edits: the per-day triggers of migrations 003 and 004, and the sensor that
re-aggregates them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import dagster as dg
import psycopg
import pytest

from cocktail_assets.activity.assets import DAILY_KEY
from cocktail_assets.activity.automation import (
    SCHEDULE_NAME,
    SENSOR_NAME,
    contiguous_batches,
)
from cocktail_assets.dagster_private import PARTITION_NAME_TAG
from tests.cocktail_assets.activity.conftest import Activity, at, days_ago


def recorded(activity: Activity) -> dict[str, int]:
    return {d.isoformat(): n for d, n in activity.sql(
        "SELECT day, count(*) FROM activity_day_changes GROUP BY day ORDER BY day")}


@pytest.fixture
def site(activity: Activity) -> Activity:
    """Two recipes created 10 and 12 days ago, an ingredient; nothing recorded yet."""
    activity.sql("INSERT INTO ingredients (name, path, created_at) VALUES ('gin', '/1/', %s)",
                 (at(days_ago(12), "08:00:00"),))
    activity.sql("INSERT INTO recipes (name, created_at) VALUES ('a', %s), ('b', %s)",
                 (at(days_ago(10), "09:00:00"), at(days_ago(12), "09:00:00")))
    activity.sql("TRUNCATE activity_day_changes")
    return activity


def test_a_statement_records_the_distinct_past_days_it_touched(site: Activity) -> None:
    a = site
    a.sql("INSERT INTO ratings (cognito_user_id, recipe_id, rating, created_at) "
          "SELECT 'u' || g, (SELECT min(id) FROM recipes), 3, %s - g * interval '1 day' "
          "FROM generate_series(0, 59) g", (at(days_ago(3), "10:00:00"),))
    # 60 rows in one statement: 60 distinct days, one row each; a bulk statement of many rows
    # on one day records that day once
    assert len(recorded(a)) == 60 and set(recorded(a).values()) == {1}
    a.sql("TRUNCATE activity_day_changes")
    a.sql("INSERT INTO user_ingredients (cognito_user_id, ingredient_id, added_at) "
          "SELECT 'v' || g, (SELECT min(id) FROM ingredients), %s FROM generate_series(1, 50) g",
          (at(days_ago(4), "10:00:00"),))
    assert recorded(a) == {days_ago(4).isoformat(): 1}


def test_a_day_is_recorded_once_per_table_and_transaction(site: Activity) -> None:
    a = site
    with psycopg.connect(a.db_url) as conn:  # one transaction, five single-row statements
        for i in range(5):
            conn.execute("INSERT INTO ratings (cognito_user_id, recipe_id, rating, created_at) "
                         "SELECT %s, min(id), 4, %s FROM recipes",
                         (f"t{i}", at(days_ago(7), f"1{i}:00:00")))
        conn.execute("INSERT INTO ratings (cognito_user_id, recipe_id, rating, created_at) "
                     "SELECT 'other day', min(id), 4, %s FROM recipes",
                     (at(days_ago(8), "10:00:00"),))
        # a statement rolled back to a savepoint takes its record (and its flag) with it
        conn.execute("SAVEPOINT undo")
        conn.execute("INSERT INTO ratings (cognito_user_id, recipe_id, rating, created_at) "
                     "SELECT 'rolled back', min(id), 4, %s FROM recipes",
                     (at(days_ago(11), "10:00:00"),))
        conn.execute("ROLLBACK TO SAVEPOINT undo")
        conn.execute("INSERT INTO ratings (cognito_user_id, recipe_id, rating, created_at) "
                     "SELECT 'kept', min(id) + 1, 4, %s FROM recipes",
                     (at(days_ago(11), "11:00:00"),))
    assert recorded(a) == {days_ago(11).isoformat(): 1, days_ago(8).isoformat(): 1,
                           days_ago(7).isoformat(): 1}
    a.sql("INSERT INTO ratings (cognito_user_id, recipe_id, rating, created_at) "
          "SELECT 'next', min(id), 4, %s FROM recipes", (at(days_ago(7), "20:00:00"),))
    assert recorded(a)[days_ago(7).isoformat()] == 2  # another transaction: recorded again


def test_todays_rows_and_unrelated_updates_record_nothing(site: Activity) -> None:
    a = site
    a.sql("INSERT INTO ratings (cognito_user_id, recipe_id, rating) "
          "SELECT 'today', min(id), 5 FROM recipes")  # created_at defaults to now
    a.sql("UPDATE recipes SET name = name || '!'")
    a.sql("UPDATE ratings SET rating = 4")  # rewrites recipes.avg_rating through its trigger
    a.sql("INSERT INTO tags (name, created_by) VALUES ('new', 'u9')")
    assert recorded(a) == {}


def test_deletes_and_date_changes_record_old_and_new_days(site: Activity) -> None:
    a = site
    a.sql("INSERT INTO ratings (cognito_user_id, recipe_id, rating, created_at) "
          "SELECT 'u1', id, 4, %s FROM recipes WHERE name = 'a'", (at(days_ago(9), "10:00:00"),))
    a.sql("TRUNCATE activity_day_changes")
    a.sql("DELETE FROM recipes WHERE name = 'a'")  # cascades to its rating
    assert recorded(a) == {days_ago(10).isoformat(): 1, days_ago(9).isoformat(): 1}
    a.sql("TRUNCATE activity_day_changes")
    a.sql("UPDATE recipes SET created_at = %s WHERE name = 'b'", (at(days_ago(20), "10:00:00"),))
    assert recorded(a) == {days_ago(20).isoformat(): 1, days_ago(12).isoformat(): 1}
    a.sql("TRUNCATE activity_day_changes")
    a.sql("UPDATE recipes SET created_by = 'someone' WHERE name = 'b'")
    assert recorded(a) == {days_ago(20).isoformat(): 1}


def test_a_bulk_delete_records_each_past_day_once_and_todays_rows_nothing(
    site: Activity,
) -> None:
    a = site
    a.sql("INSERT INTO ratings (cognito_user_id, recipe_id, rating, created_at) "
          "SELECT 'u' || g, r.id, 3, %s - (g %% 3) * interval '1 day' "
          "FROM recipes r, generate_series(1, 30) g", (at(days_ago(2), "10:00:00"),))
    a.sql("INSERT INTO ratings (cognito_user_id, recipe_id, rating) "
          "SELECT 'today' || g, r.id, 3 FROM recipes r, generate_series(1, 5) g")
    a.sql("INSERT INTO recipes (name) VALUES ('made today')")
    a.sql("TRUNCATE activity_day_changes")
    with psycopg.connect(a.db_url) as conn:  # one transaction
        conn.execute("DELETE FROM recipes WHERE name = 'made today'")
        # 2 recipes of two days, cascading to 60 ratings of three days and 10 of today
        conn.execute("DELETE FROM recipes")
        conn.execute("DELETE FROM ingredients")  # a day already recorded elsewhere is per table
        changes = conn.execute("SELECT table_name, day FROM activity_day_changes "
                               "ORDER BY 1, 2").fetchall()
    assert changes == [
        ("ingredients", days_ago(12)),
        ("ratings", days_ago(4)), ("ratings", days_ago(3)), ("ratings", days_ago(2)),
        ("recipes", days_ago(12)), ("recipes", days_ago(10)),
    ]


def test_a_site_role_without_rights_on_the_bookkeeping_still_records(site: Activity) -> None:
    """The triggers run as the writer; only the recorder needs (and has) the owner's rights."""
    a = site
    role = f"site_writer_{uuid.uuid4().hex[:8]}"  # roles are per server, not per database
    a.sql(f"CREATE ROLE {role} LOGIN")
    a.sql("GRANT SELECT, INSERT, UPDATE, DELETE ON recipes, ratings, user_ingredients, "
          f"recipe_ingredients, recipe_tags, recipe_similarity TO {role}")
    a.sql(f"GRANT SELECT ON ingredients TO {role}")
    a.sql(f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {role}")
    try:
        writer = psycopg.conninfo.make_conninfo(a.db_url, user=role)
        with psycopg.connect(writer) as conn:
            denied = conn.execute(
                "SELECT has_table_privilege('activity_day_changes', 'INSERT')").fetchone()
            assert denied == (False,)
            # a writer's own search path, without the project's schema (the site's own
            # ratings trigger needs public, so this part writes the pantry)
            conn.execute("SET search_path = pg_temp")
            conn.execute("INSERT INTO public.user_ingredients (cognito_user_id, ingredient_id, "
                         "added_at) SELECT 'w', min(id), %s FROM public.ingredients",
                         (at(days_ago(5), "10:00:00"),))
            conn.execute("DELETE FROM public.user_ingredients")
            conn.execute("RESET search_path")
            conn.execute("INSERT INTO ratings (cognito_user_id, recipe_id, rating, created_at) "
                         "SELECT 'w', min(id), 4, %s FROM recipes", (at(days_ago(6), "10:00:00"),))
            conn.execute("DELETE FROM recipes WHERE name = 'b'")
        assert a.sql("SELECT table_name, day FROM activity_day_changes ORDER BY 1, 2") == [
            ("ratings", days_ago(6)), ("recipes", days_ago(12)),
            ("user_ingredients", days_ago(5)),
        ]
    finally:
        a.sql(f"DROP OWNED BY {role}")
        a.sql(f"DROP ROLE {role}")


def test_broken_bookkeeping_never_fails_the_sites_write(site: Activity) -> None:
    a = site
    a.sql("ALTER TABLE activity_day_changes ADD CONSTRAINT refuse CHECK (day > '3000-01-01')")
    a.sql("INSERT INTO ratings (cognito_user_id, recipe_id, rating, created_at) "
          "SELECT 'u1', max(id), 4, %s FROM recipes", (at(days_ago(5), "10:00:00"),))
    assert a.sql("SELECT count(*) FROM ratings") == [(1,)]
    a.sql("DELETE FROM recipes WHERE name = 'a'")
    a.sql("UPDATE recipes SET created_at = %s", (at(days_ago(30), "10:00:00"),))
    assert a.sql("SELECT name, created_at FROM recipes") == [("b", at(days_ago(30), "10:00:00"))]
    assert recorded(a) == {}


def tick(activity: Activity, cursor: str | None = None) -> dg.SensorResult:
    defs = activity.defs()
    sensor = defs.resolve_sensor_def(SENSOR_NAME)
    context = dg.build_sensor_context(
        instance=activity.instance, cursor=cursor, definitions=defs, sensor_name=SENSOR_NAME,
        resources={"database": activity.database()},
    )
    result = sensor(context)
    assert isinstance(result, dg.SensorResult)
    return result


def age(activity: Activity, minutes: float) -> None:
    activity.sql("UPDATE activity_day_changes SET changed_at = changed_at - %s",
                 (timedelta(minutes=minutes),))


def test_a_late_rating_ten_days_ago_requests_exactly_that_partition(site: Activity) -> None:
    a = site
    a.sql("INSERT INTO ratings (cognito_user_id, recipe_id, rating, created_at) "
          "SELECT 'late', min(id), 5, %s FROM recipes", (at(days_ago(10), "21:30:00"),))
    first = tick(a)
    assert not first.run_requests and "debouncing" in first.skip_reason.skip_message
    # the UI shows the pending edit on the partition
    (observation,) = first.asset_events
    assert observation.partition == days_ago(10).isoformat()
    age(a, 16)
    result = tick(a, first.cursor)
    (request,) = result.run_requests
    assert request.partition_key == days_ago(10).isoformat()
    assert request.asset_selection == [DAILY_KEY]
    assert result.asset_events == []  # already shown

    # never while a run of the same partition is in progress
    a.instance.add_run(dg.DagsterRun(
        job_name="activity_daily", run_id="busy0000-0000-0000-0000-000000000000",
        status=dg.DagsterRunStatus.STARTED, asset_selection=frozenset({DAILY_KEY}),
        tags={PARTITION_NAME_TAG: days_ago(10).isoformat()},
    ))
    busy = tick(a, result.cursor)
    assert not busy.run_requests and "in progress" in busy.skip_reason.skip_message
    a.instance.delete_run("busy0000-0000-0000-0000-000000000000")

    # the run settles what it read: the sensor then has nothing to do
    assert a.materialize(days_ago(10)).success
    assert recorded(a) == {}
    assert not tick(a, result.cursor).run_requests


def test_only_todays_rows_changed_requests_nothing(site: Activity) -> None:
    a = site
    a.sql("INSERT INTO ratings (cognito_user_id, recipe_id, rating) "
          "SELECT 'now', min(id), 5 FROM recipes")
    a.sql("INSERT INTO recipes (name, created_by) VALUES ('today', 'now')")
    age(a, 120)
    result = tick(a)
    assert not result.run_requests
    assert result.skip_reason.skip_message == "no late edits of past days"


def test_an_edit_during_the_run_stays_pending(site: Activity) -> None:
    """Rows committed after the aggregation's snapshot are not settled by it."""
    a = site
    a.sql("INSERT INTO ratings (cognito_user_id, recipe_id, rating, created_at) "
          "SELECT 'late', min(id), 5, %s FROM recipes", (at(days_ago(6), "10:00:00"),))
    from cocktail_assets.activity.assets import aggregate_days, settle_days

    _, snapshot = aggregate_days(a.database(), days_ago(6), days_ago(5))
    a.sql("INSERT INTO ratings (cognito_user_id, recipe_id, rating, created_at) "
          "SELECT 'later', min(id), 5, %s FROM recipes", (at(days_ago(6), "11:00:00"),))
    assert settle_days(a.database(), days_ago(6), days_ago(5), snapshot) == 1
    assert recorded(a) == {days_ago(6).isoformat(): 1}


def test_contiguous_days_are_batched_and_gaps_kept() -> None:
    d = [days_ago(n) for n in (1, 2, 3, 5, 6, 9)]
    assert [[x.isoformat() for x in b] for b in contiguous_batches(d, 2)] == [
        [days_ago(9).isoformat()], [days_ago(6).isoformat(), days_ago(5).isoformat()],
        [days_ago(3).isoformat(), days_ago(2).isoformat()], [days_ago(1).isoformat()],
    ]


def test_the_schedule_targets_yesterday_at_two_utc(activity: Activity) -> None:
    defs = activity.defs()
    schedule = defs.resolve_schedule_def(SCHEDULE_NAME)
    assert schedule.cron_schedule == "0 2 * * *" and schedule.execution_timezone == "UTC"
    when = datetime.combine(days_ago(3), datetime.min.time(), tzinfo=UTC).replace(hour=2)
    context = dg.build_schedule_context(instance=activity.instance, scheduled_execution_time=when)
    (request,) = schedule.evaluate_tick(context).run_requests
    assert request.partition_key == days_ago(4).isoformat()


def test_contiguous_late_days_become_one_range_run_and_gaps_stay_out(site: Activity) -> None:
    a = site
    for n in (8, 7, 6, 3):
        a.sql("INSERT INTO ratings (cognito_user_id, recipe_id, rating, created_at) "
              "SELECT %s, min(id), 5, %s FROM recipes", (f"u{n}", at(days_ago(n), "10:00:00")))
    age(a, 30)
    requests = tick(a).run_requests
    assert len(requests) == 2
    ranged, single = requests
    assert ranged.partition_key_range == dg.PartitionKeyRange(
        days_ago(8).isoformat(), days_ago(6).isoformat())
    assert single.partition_key == days_ago(3).isoformat()
    # the range request is a valid run of exactly those days
    job = a.defs().resolve_job_def("activity_daily")
    result = job.execute_in_process(instance=a.instance, tags=ranged.tags,
                                    asset_selection=list(ranged.asset_selection or []))
    assert result.success
    assert sorted(m.partition for m in result.asset_materializations_for_node("activity__daily")) \
        == [days_ago(n).isoformat() for n in (8, 7, 6)]
    assert recorded(a) == {days_ago(3).isoformat(): 1}
