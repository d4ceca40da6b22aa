"""db synth's activity: spread over the span, weekends busier, users active in several ways."""

from __future__ import annotations

import psycopg

from cocktail_assets.db.synth import synthesize


def test_synthetic_activity_spans_the_days_with_busier_weekends(db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        counts = synthesize(conn, 4_000, 3, activity_days=120)
        conn.commit()
        assert counts["ratings"] > 8_000 and counts["user_ingredients"] > 4_000
        assert counts["tags"] >= 10
        # 120 days before the load touch 120 or 121 UTC days; recipes (33 a day) fill each one,
        # ratings (after their recipe: sparse on the first days) nearly all
        (days, first, now) = conn.execute(
            "SELECT count(DISTINCT created_at::date), min(created_at), "
            "now() AT TIME ZONE 'utc' FROM recipes").fetchone()
        assert days in (120, 121) and (now - first).days < 120
        (rating_days,) = conn.execute(
            "SELECT count(DISTINCT created_at::date) FROM ratings").fetchone()
        assert 105 <= rating_days <= days
        # a rating never precedes its recipe
        assert conn.execute("SELECT count(*) FROM ratings g JOIN recipes r ON r.id = g.recipe_id "
                            "WHERE g.created_at < r.created_at").fetchone() == (0,)
        weekday, weekend = conn.execute(
            "SELECT avg(n) FILTER (WHERE dow BETWEEN 1 AND 4)::float8, "
            "avg(n) FILTER (WHERE dow IN (0, 6))::float8"
            " FROM (SELECT extract(dow FROM created_at::date) AS dow, count(*) AS n FROM ratings"
            " WHERE created_at::date > (SELECT min(created_at)::date FROM ratings)"
            " AND created_at::date < (now() AT TIME ZONE 'utc')::date GROUP BY created_at::date) d"
        ).fetchone()
        assert weekend > 1.3 * weekday
        # the busiest users do several things: recipes, ratings and pantry
        several = conn.execute(
            "SELECT count(*) FROM (SELECT created_by AS u FROM recipes INTERSECT "
            "SELECT cognito_user_id FROM ratings INTERSECT "
            "SELECT cognito_user_id FROM user_ingredients) s").fetchone()[0]
        assert several > 50
        assert conn.execute("SELECT count(*) FROM recipes r WHERE rating_count > 0 AND "
                            "avg_rating IS NULL").fetchone() == (0,)
        # the late-edit triggers saw the past days the load wrote
        assert conn.execute("SELECT count(DISTINCT day) FROM activity_day_changes").fetchone()[0] \
            >= 100


def test_no_activity_days_keeps_the_load_time(db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        counts = synthesize(conn, 200, 3, activity_days=0)
        assert "ratings" not in counts
        assert conn.execute("SELECT count(DISTINCT created_at::date) FROM recipes").fetchone() \
            == (1,)
