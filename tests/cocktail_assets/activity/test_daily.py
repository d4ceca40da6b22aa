"""activity/daily against real PostgreSQL: known answers, artifacts, idempotence, checks."""

from __future__ import annotations

from datetime import timedelta

import dagster as dg

from cocktail_assets.activity.assets import CHECK_COUNTS, CHECK_DAY, DAILY_KEY
from cocktail_assets.activity.compute import DayActivity, count_problems
from tests.cocktail_assets.activity.conftest import Activity, at, days_ago

ZERO = {"recipes_created": 0, "ingredients_created": 0, "ratings_added": 0,
        "inventory_additions": 0, "tags_created": 0, "active_users": 0}


def load_known_day(activity: Activity, day) -> None:
    """u1 is active three ways on ``day``; u2 rates at 23:59:59.999 and u3 at 00:00:00 the
    next day; u4's rating has no created_at; an ingredient and a tag complete the day."""
    old = at(days_ago(40), "12:00:00")
    activity.sql("INSERT INTO ingredients (name, path, created_at) VALUES ('gin', '/1/', %s)",
                 (old,))
    activity.sql("INSERT INTO recipes (name, created_at) VALUES ('old one', %s), ('old two', %s)",
                 (old, old))
    activity.sql("INSERT INTO recipes (name, created_by, created_at) VALUES ('new', 'u1', %s)",
                 (at(day, "10:00:00"),))
    activity.sql(
        "INSERT INTO ratings (cognito_user_id, recipe_id, rating, created_at) "
        "SELECT u, (SELECT min(id) FROM recipes), 4, t::timestamp FROM (VALUES "
        "('u1', %s), ('u2', %s), ('u3', %s)) AS v (u, t)",
        (str(at(day, "11:00:00")), str(at(day, "23:59:59.999")),
         str(at(day + timedelta(days=1), "00:00:00"))),
    )
    activity.sql("INSERT INTO ratings (cognito_user_id, recipe_id, rating, created_at) "
                 "SELECT 'u4', max(id), 5, NULL FROM recipes")
    activity.sql("INSERT INTO user_ingredients (cognito_user_id, ingredient_id, added_at) "
                 "SELECT 'u1', min(id), %s FROM ingredients", (at(day, "12:00:00"),))
    activity.sql("INSERT INTO ingredients (name, path, created_at) VALUES ('rum', '/2/', %s)",
                 (at(day, "09:00:00"),))
    activity.sql("INSERT INTO tags (name, created_by, created_at) VALUES ('fresh', 'u2', %s)",
                 (at(day, "08:00:00"),))


def test_known_answers_for_a_batch_of_days(activity: Activity) -> None:
    day = days_ago(5)
    load_known_day(activity, day)
    result = activity.materialize(day - timedelta(days=1), day + timedelta(days=1))
    assert result.success
    data = activity.artifact(day)["data"]
    assert data == {
        "day": day.isoformat(), "recipes_created": 1, "ingredients_created": 1,
        "ratings_added": 2, "inventory_additions": 1, "tags_created": 1, "active_users": 2,
        "active_users_by_kind": {"recipes": 1, "ingredients": 0, "ratings": 2, "inventory": 1,
                                 "tags": 1},
    }
    after = activity.artifact(day + timedelta(days=1))["data"]
    assert {k: after[k] for k in ZERO} == {**ZERO, "ratings_added": 1, "active_users": 1}
    before = activity.artifact(day - timedelta(days=1))
    assert {k: before["data"][k] for k in ZERO} == ZERO  # a day with no activity: zeros
    assert before["metadata"]["analytics_type"] == "activity"
    # one materialization per day of the batch, both checks passed
    for d in (day - timedelta(days=1), day, day + timedelta(days=1)):
        assert activity.instance.get_latest_materialization_event(DAILY_KEY) is not None
        assert d.isoformat() in activity.instance.get_materialized_partitions(DAILY_KEY)
    checks = {e.asset_check_evaluation_data.check_name: e.asset_check_evaluation_data.passed
              for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"}
    assert checks == {CHECK_COUNTS: True, CHECK_DAY: True}


def test_rematerializing_a_day_leaves_one_artifact_with_the_same_content(
    aws_activity: Activity,
) -> None:
    activity = aws_activity
    day = days_ago(3)
    load_known_day(activity, day)
    assert activity.materialize(day).success
    first = activity.artifact(day)
    assert activity.materialize(day).success
    second = activity.artifact(day)
    assert second["data"] == first["data"]
    keys = [o["Key"] for o in activity.store._s3().list_objects_v2(
        Bucket=activity.store.bucket, Prefix="analytics/v1/activity/")["Contents"]]
    assert keys == [f"analytics/v1/activity/{day.isoformat()}.json"]


def test_metadata_names_the_days_and_the_store(activity: Activity) -> None:
    day = days_ago(2)
    result = activity.materialize(day)
    (mat,) = result.asset_materializations_for_node("activity__daily")
    assert mat.partition == day.isoformat()
    meta = {k: getattr(v, "value", v) for k, v in mat.metadata.items()}
    assert meta["rows"] == 1 and meta["days"] == day.isoformat()
    assert meta["uri"].endswith(f"analytics/v1/activity/{day.isoformat()}.json")
    assert "ACTIVITY_METRICS=off" in meta["metrics_note"]


def test_the_count_checks_catch_inconsistent_days() -> None:
    good = DayActivity.from_row([days_ago(1), 1, 0, 2, 1, 0, 1, 0, 2, 1, 0, 2])
    assert count_problems(good) == []
    too_many = DayActivity.from_row([days_ago(1), 1, 0, 2, 1, 0, 1, 0, 2, 1, 0, 5])
    assert any("> sum per kind" in p for p in count_problems(too_many))
    too_few = DayActivity.from_row([days_ago(1), 1, 0, 2, 1, 0, 1, 0, 2, 1, 0, 1])
    assert any("< largest kind" in p for p in count_problems(too_few))
    negative = DayActivity.from_row([days_ago(1), -1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])
    assert any("recipes_created = -1 < 0" in p for p in count_problems(negative))


def test_the_checks_are_blocking_and_declared_with_the_asset(activity: Activity) -> None:
    (daily,) = [a for a in activity.domain().assets if DAILY_KEY in a.keys]
    specs = {spec.name: spec for spec in daily.check_specs}
    assert set(specs) == {CHECK_COUNTS, CHECK_DAY}
    assert all(spec.blocking for spec in specs.values())
    assert isinstance(daily.partitions_def, dg.DailyPartitionsDefinition)
    assert daily.partitions_def.timezone == "UTC"
    assert daily.backfill_policy == dg.BackfillPolicy.multi_run(7)


def test_last_30_days_sums_the_daily_artifacts(activity: Activity) -> None:
    day = days_ago(4)
    load_known_day(activity, day)
    assert activity.materialize(days_ago(30), days_ago(1), with_summary=True).success
    summary = activity.store.read_json("activity-summary")["data"]
    assert summary["start"] == days_ago(30).isoformat()
    assert summary["end"] == days_ago(1).isoformat()
    assert len(summary["days"]) == 30 and summary["missing_days"] == []
    assert summary["totals"] == {"recipes_created": 1, "ingredients_created": 1,
                                 "ratings_added": 3, "inventory_additions": 1, "tags_created": 1}
    assert summary["peak_active_users"] == 2
