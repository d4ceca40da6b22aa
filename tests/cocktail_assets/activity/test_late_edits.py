"""Late edits: the per-day triggers of migrations 003 to 006, the sensor that re-aggregates
them, and Dagster's own stale status of the late-edited days (what the UI's partition view
shows)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import psycopg
import pytest

from cocktail_assets.activity import assets as activity_assets
from cocktail_assets.activity.assets import DAILY_KEY, LATE_EDITS_KEY
from cocktail_assets.activity.automation import (
    SCHEDULE_NAME,
    SENSOR_NAME,
    contiguous_batches,
    versions_to_observe,
)
from cocktail_assets.activity.late_edits import (
    BASELINE_VERSION,
    PendingDay,
    ensure_baseline,
)
from cocktail_assets.dagster_private import (
    DATA_VERSION_TAG,
    PARTITION_NAME_TAG,
    RANGE_END_TAG,
    RANGE_START_TAG,
)
from tests.cocktail_assets.activity.conftest import Activity, at, days_ago, today
from tests.dagster_private import StaleStatus, get_stale_status_resolver


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


@pytest.mark.parametrize("ages", [
    [1, 3, 40, 62],  # with tomorrow's row, a span of 64 days: the one-pass day set
    [1, 2, 63, 64, 130, 700],  # wider: the rows are grouped by day
    [5],
])
def test_a_statement_records_exactly_its_past_days_with_gaps(
    site: Activity, ages: list[int],
) -> None:
    a = site
    stamps = [at(days_ago(n), "23:59:59.999") for n in ages] + [at(days_ago(n), "00:00:00")
                                                                 for n in ages]
    with psycopg.connect(a.db_url) as conn:  # today's, tomorrow's and undated rows besides
        conn.execute(
            "INSERT INTO tags (name, created_by, created_at) SELECT 't' || g, 'u' || g, s "
            "FROM unnest(%s::timestamp[] || ARRAY[(now() AT TIME ZONE 'utc'), "
            "(now() AT TIME ZONE 'utc') + interval '1 day', NULL]) WITH ORDINALITY AS t (s, g)",
            (stamps,))
    assert recorded(a) == {days_ago(n).isoformat(): 1 for n in ages}
    a.sql("TRUNCATE activity_day_changes")
    a.sql("DELETE FROM tags")  # the deletes' statement trigger shares the function
    assert recorded(a) == {days_ago(n).isoformat(): 1 for n in ages}


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
    """One evaluation of the sensor; its observations are recorded in the instance as the
    daemon records them (before it submits the tick's runs)."""
    defs = activity.defs()
    sensor = defs.resolve_sensor_def(SENSOR_NAME)
    context = dg.build_sensor_context(
        instance=activity.instance, cursor=cursor, definitions=defs, sensor_name=SENSOR_NAME,
        resources={"database": activity.database()},
    )
    result = sensor(context)
    assert isinstance(result, dg.SensorResult)
    for event in result.asset_events or []:
        activity.instance.report_runless_asset_event(event)
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
    # the day's new version, which marks that partition of activity/daily stale in the UI
    (observation,) = first.asset_events
    assert observation.asset_key == LATE_EDITS_KEY
    assert observation.partition == days_ago(10).isoformat()
    newest = a.sql("SELECT max(id) FROM activity_day_changes")[0][0]
    assert observation.tags == {DATA_VERSION_TAG: str(newest)}
    age(a, 16)
    result = tick(a, first.cursor)
    (request,) = result.run_requests
    assert request.partition_key == days_ago(10).isoformat()
    assert request.asset_selection == [DAILY_KEY]
    assert result.asset_events == []  # already recorded

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


# Dagster's stale status of activity/daily's days: the resolver the webserver's GraphQL answers
# staleStatus(partition:) and staleCauses(partition:) with (the last test asks the webserver).


def late_rating(activity: Activity, n: int, who: str = "late") -> None:
    """A rating created ``n`` days ago, imported now (one rating per user and recipe)."""
    activity.sql("INSERT INTO ratings (cognito_user_id, recipe_id, rating, created_at) "
                 "SELECT %s, min(id), 5, %s FROM recipes", (f"{who}-{n}", at(days_ago(n), "21:30:00")))


def status(activity: Activity, *ns: int) -> dict[int, StaleStatus]:
    """Dagster's stale status of activity/daily's day ``n`` days ago, for each n."""
    resolver = get_stale_status_resolver(activity.instance, activity.domain().assets)
    return {n: resolver.get_status(DAILY_KEY, days_ago(n).isoformat()) for n in ns}


def root_causes(activity: Activity, n: int) -> set[tuple[str, str | None]]:
    """What the partition view names as the reason day ``n`` is stale: (asset, partition)."""
    resolver = get_stale_status_resolver(activity.instance, activity.domain().assets)
    return {(c.asset_key.to_user_string(), c.partition_key)
            for c in resolver.get_stale_root_causes(DAILY_KEY, days_ago(n).isoformat())}


FRESH, STALE = StaleStatus.FRESH, StaleStatus.STALE


def test_a_late_rating_makes_exactly_its_day_stale_until_it_is_rematerialized(
    site: Activity,
) -> None:
    a = site
    cursor = tick(a).cursor  # nothing pending yet: the baseline observation
    assert a.materialize(days_ago(12), days_ago(9)).success  # one run of four days (a backfill)
    assert status(a, 12, 11, 10, 9) == {12: FRESH, 11: FRESH, 10: FRESH, 9: FRESH}

    late_rating(a, 10)
    seen = tick(a, cursor)
    assert [e.partition for e in seen.asset_events] == [days_ago(10).isoformat()]
    assert status(a, 12, 11, 10, 9) == {12: FRESH, 11: FRESH, 10: STALE, 9: FRESH}
    assert root_causes(a, 10) == {("activity/late_edits", days_ago(10).isoformat())}
    # nothing moved: the next tick records nothing, and the day stays stale
    again = tick(a, seen.cursor)
    assert again.asset_events == [] and status(a, 10) == {10: STALE}

    assert a.materialize(days_ago(10)).success
    assert status(a, 12, 11, 10, 9) == {12: FRESH, 11: FRESH, 10: FRESH, 9: FRESH}
    # its edits are settled: the day is not observed again and stays fresh
    settled = tick(a, again.cursor)
    assert settled.asset_events == [] and status(a, 10) == {10: FRESH}
    # the day's next late edit is a new version: stale again
    late_rating(a, 10, "later")
    assert tick(a, settled.cursor).asset_events
    assert status(a, 11, 10) == {11: FRESH, 10: STALE}


def test_the_first_observer_records_one_baseline(site: Activity) -> None:
    """Dagster records a materialization's input pointer only once the source was observed;
    without one, a later edit could never mark the day stale. So the first tick with nothing to
    observe records one baseline, on the first day, and no tick after it."""
    a = site
    first = tick(a)
    (event,) = first.asset_events
    assert event.partition == a.start_date and event.tags == {DATA_VERSION_TAG: BASELINE_VERSION}
    assert tick(a, first.cursor).asset_events == []
    assert tick(a).asset_events == []  # the instance has it: a lost cursor repeats nothing
    # the backfill command's guard (it may launch runs before any sensor tick) finds it too
    assert not ensure_baseline(a.instance, days_ago(60), today())


def test_the_backfill_guard_records_the_baseline_on_an_instance_without_one(
    site: Activity,
) -> None:
    a = site
    assert ensure_baseline(a.instance, days_ago(60), today())
    (record,) = a.instance.fetch_observations(LATE_EDITS_KEY, limit=5).records
    assert record.partition_key == a.start_date
    assert not ensure_baseline(a.instance, days_ago(60), today())
    assert tick(a).asset_events == []  # the sensor finds it


def test_a_day_materialized_before_the_baseline_stays_blind_to_late_edits(site: Activity) -> None:
    """What the baseline guards against, as Dagster 1.13 behaves (if this starts to fail,
    Dagster compares a pointer-less materialization properly and the baseline can go)."""
    a = site
    assert a.materialize(days_ago(10)).success  # no observation of activity/late_edits yet
    late_rating(a, 10)
    tick(a)
    assert status(a, 10) == {10: FRESH}
    assert a.materialize(days_ago(10)).success  # this one records the observation it saw
    late_rating(a, 10, "later")
    tick(a)
    assert status(a, 10) == {10: STALE}


def test_observe_records_the_versions_the_sensor_records(site: Activity) -> None:
    """The UI's Observe button (a run of Dagster's asset job with no partition) runs the same
    query: the same days and versions."""
    a = site
    late_rating(a, 10)
    late_rating(a, 7)
    a.sql("INSERT INTO ratings (cognito_user_id, recipe_id, rating) "
          "SELECT 'today', min(id), 5 FROM recipes")  # not a partition yet
    by_sensor = {(e.partition, e.tags[DATA_VERSION_TAG]) for e in tick(a).asset_events}
    assert {p for p, _ in by_sensor} == {days_ago(10).isoformat(), days_ago(7).isoformat()}
    job = a.defs().resolve_implicit_global_asset_job_def()
    result = job.execute_in_process(instance=a.instance, asset_selection=[LATE_EDITS_KEY])
    observed = [e.asset_observation_data.asset_observation
                for e in result.get_asset_observation_events()]
    assert {(o.partition, o.tags[DATA_VERSION_TAG]) for o in observed} == by_sensor


def test_a_new_version_waits_while_a_run_of_its_day_is_in_progress(site: Activity) -> None:
    a = site
    cursor = tick(a).cursor
    a.instance.add_run(dg.DagsterRun(
        job_name="activity_daily", run_id="busy0000-0000-0000-0000-000000000000",
        status=dg.DagsterRunStatus.STARTED, asset_selection=frozenset({DAILY_KEY}),
        tags={PARTITION_NAME_TAG: days_ago(10).isoformat()},
    ))
    late_rating(a, 10)
    late_rating(a, 9)
    held = tick(a, cursor)
    assert [e.partition for e in held.asset_events] == [days_ago(9).isoformat()]
    a.instance.delete_run("busy0000-0000-0000-0000-000000000000")
    shown = tick(a, held.cursor)
    assert [e.partition for e in shown.asset_events] == [days_ago(10).isoformat()]


def test_an_edit_committed_during_the_run_leaves_its_day_stale(
    site: Activity, monkeypatch: pytest.MonkeyPatch
) -> None:
    a = site
    late_rating(a, 10)
    cursor = tick(a).cursor
    aggregate = activity_assets.aggregate_days

    def aggregate_then_edit(*args):  # the run's snapshot is taken; then the site writes
        out = aggregate(*args)
        late_rating(a, 10, "during the run")
        return out

    monkeypatch.setattr(activity_assets, "aggregate_days", aggregate_then_edit)
    assert a.materialize(days_ago(10)).success
    assert recorded(a) == {days_ago(10).isoformat(): 1}  # the later edit is still pending
    assert status(a, 10) == {10: FRESH}  # the run covered what the sensor had seen
    assert [e.partition for e in tick(a, cursor).asset_events] == [days_ago(10).isoformat()]
    assert status(a, 10) == {10: STALE}


def _pending(n: int, newest_id: int) -> PendingDay:
    when = at(days_ago(n), "12:00:00")
    return PendingDay(days_ago(n), 1, newest_id, when, when)


def test_only_days_whose_version_moved_are_observed() -> None:
    first, now = days_ago(60), today()
    reported = {days_ago(10).isoformat(): "7", days_ago(9).isoformat(): "8",
                days_ago(8).isoformat(): "9", days_ago(5).isoformat(): "4"}
    pending = [
        _pending(10, 7),  # unchanged: not again
        _pending(9, 12),  # a newer edit: observed
        _pending(8, 6),   # the newest was settled, an older one is left: observed
        _pending(7, 13),  # new, but a run of it is in progress: later
        _pending(3, 14),  # new
        _pending(0, 15),  # today: not a partition yet
        # 5 days ago is settled (no longer pending): it drops out of the cursor
    ]
    due, recorded = versions_to_observe(pending, first, now, {days_ago(7).isoformat()}, reported)
    assert [p.day for p in due] == [days_ago(9), days_ago(8), days_ago(3)]
    assert recorded == {days_ago(10).isoformat(): "7", days_ago(9).isoformat(): "12",
                        days_ago(8).isoformat(): "6", days_ago(3).isoformat(): "14"}


# The same, as the UI sees it: the real webserver and daemon on this project's workspace (the
# daemon runs the sensor), asked through GraphQL exactly what the partition view asks.

PARTITION_STALE = """
query Stale($partition: String!) {
  assetNodes(assetKeys: [{path: ["activity", "daily"]}]) {
    staleStatus(partition: $partition)
    staleCauses(partition: $partition) {
      key { path } partitionKey reason
    }
  }
}
"""
LATE_EDIT_OBSERVATIONS = """
{ assetNodes(assetKeys: [{path: ["activity", "late_edits"]}]) {
    assetObservations(limit: 1) { partition } } }
"""


def _stale(url: str, n: int) -> tuple[str, list[dict]]:
    from tests.cocktail_assets.webserver import graphql

    (node,) = graphql(url, PARTITION_STALE, {"partition": days_ago(n).isoformat()})["assetNodes"]
    return node["staleStatus"], node["staleCauses"]


def _launch_and_wait(url: str, job: str, tags: dict[str, str]) -> None:
    from tests.cocktail_assets.test_ui import LAUNCH, STATUS
    from tests.cocktail_assets.webserver import graphql

    params = {
        "selector": {"repositoryLocationName": "cocktail_assets",
                     "repositoryName": "__repository__", "pipelineName": job,
                     "assetSelection": [{"path": ["activity", "daily"]}]},
        "mode": "default",
        "executionMetadata": {"tags": [{"key": k, "value": v} for k, v in tags.items()]},
    }
    launched = graphql(url, LAUNCH, {"params": params})["launchPipelineExecution"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    run_id, status = launched["run"]["runId"], None
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and status not in ("SUCCESS", "FAILURE", "CANCELED"):
        time.sleep(1)
        status = graphql(url, STATUS, {"id": run_id})["runOrError"]["status"]
    assert status == "SUCCESS", f"run {run_id} of {job}: {status}"


def _wait_for(condition, what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"not within {seconds:g} s: {what}"
        time.sleep(1)


SENSOR_INTERVAL = 2  # seconds between the daemon's sensor ticks


@pytest.fixture
def dagster_ui(db_url: str, database_factory, tmp_path: Path) -> Iterator[str]:
    """Webserver and daemon on the sample site; the sensors tick every 2 s and the debounce
    (15 min) keeps the late-edit sensor from running the days itself."""
    from tests.cocktail_assets.test_ui import _start_dagster

    for url, _ in _start_dagster(db_url, database_factory, tmp_path,
                                 sensor_interval=SENSOR_INTERVAL):
        yield url


@pytest.mark.timeout(480)
def test_the_ui_shows_a_late_edited_day_stale_until_it_is_rematerialized(
    dagster_ui: str, db_url: str
) -> None:
    from tests.cocktail_assets.webserver import graphql

    url = dagster_ui
    # the sensor's first tick records the days the seed wrote (all pending late edits)
    _wait_for(lambda: graphql(url, LATE_EDIT_OBSERVATIONS)["assetNodes"][0][
        "assetObservations"], "the late-edit sensor's first observation", 120)
    _launch_and_wait(url, "activity_daily", {  # as a backfill batch or the sensor runs it
        RANGE_START_TAG: days_ago(12).isoformat(), RANGE_END_TAG: days_ago(9).isoformat()})
    time.sleep(3 * SENSOR_INTERVAL)  # a few ticks after the run: it settled what it read
    assert [_stale(url, n)[0] for n in (12, 11, 10, 9)] == ["FRESH"] * 4

    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("INSERT INTO ratings (cognito_user_id, recipe_id, rating, created_at) "
                     "SELECT 'late-ui', min(id), 5, %s FROM recipes",
                     (at(days_ago(10), "21:30:00"),))
    _wait_for(lambda: _stale(url, 10)[0] == "STALE", "day 10 stale after the edit", 30)
    status, causes = _stale(url, 10)
    assert status == "STALE"
    # the cause the partition view names: the day's partition of activity/late_edits
    assert [(c["key"]["path"], c["partitionKey"], c["reason"]) for c in causes] == [
        (["activity", "late_edits"], days_ago(10).isoformat(), "has a new data version")]
    assert [_stale(url, n)[0] for n in (12, 11, 9)] == ["FRESH"] * 3

    # what the partition view's Materialize sends for one day
    _launch_and_wait(url, "__ASSET_JOB", {
        PARTITION_NAME_TAG: days_ago(10).isoformat(), "dagster/from_ui": "true"})
    assert _stale(url, 10) == ("FRESH", [])
    time.sleep(3 * SENSOR_INTERVAL)
    assert [_stale(url, n)[0] for n in (12, 11, 10, 9)] == ["FRESH"] * 4
