"""Every SQL statement of the activity domain, parameterized.

Timestamps are ``timestamp without time zone`` written in UTC, so ``::date`` is the UTC day.
"""

# One row per UTC day of [start, end), days without activity included (all zeros): every
# count, the distinct users per kind and the distinct users over all kinds. A batch of days is
# one query: each table is scanned once for the whole range.
DAILY_ACTIVITY = """
WITH days AS (
    SELECT d::date AS day
    FROM generate_series(%(start)s::date, %(end)s::date - 1, interval '1 day') AS d
), events AS (
    SELECT 'recipes' AS kind, created_at::date AS day, created_by AS actor FROM recipes
    WHERE created_at >= %(start)s::timestamp AND created_at < %(end)s::timestamp
    UNION ALL
    SELECT 'ingredients', created_at::date, created_by FROM ingredients
    WHERE created_at >= %(start)s::timestamp AND created_at < %(end)s::timestamp
    UNION ALL
    SELECT 'ratings', created_at::date, cognito_user_id FROM ratings
    WHERE created_at >= %(start)s::timestamp AND created_at < %(end)s::timestamp
    UNION ALL
    SELECT 'inventory', added_at::date, cognito_user_id FROM user_ingredients
    WHERE added_at >= %(start)s::timestamp AND added_at < %(end)s::timestamp
    UNION ALL
    SELECT 'tags', created_at::date, created_by FROM tags
    WHERE created_at >= %(start)s::timestamp AND created_at < %(end)s::timestamp
)
SELECT days.day,
       count(e.kind) FILTER (WHERE e.kind = 'recipes')::int,
       count(e.kind) FILTER (WHERE e.kind = 'ingredients')::int,
       count(e.kind) FILTER (WHERE e.kind = 'ratings')::int,
       count(e.kind) FILTER (WHERE e.kind = 'inventory')::int,
       count(e.kind) FILTER (WHERE e.kind = 'tags')::int,
       count(DISTINCT e.actor) FILTER (WHERE e.kind = 'recipes')::int,
       count(DISTINCT e.actor) FILTER (WHERE e.kind = 'ingredients')::int,
       count(DISTINCT e.actor) FILTER (WHERE e.kind = 'ratings')::int,
       count(DISTINCT e.actor) FILTER (WHERE e.kind = 'inventory')::int,
       count(DISTINCT e.actor) FILTER (WHERE e.kind = 'tags')::int,
       count(DISTINCT e.actor)::int
FROM days LEFT JOIN events e ON e.day = days.day
GROUP BY days.day
ORDER BY days.day
"""

CURRENT_SNAPSHOT = "SELECT pg_current_snapshot()::text"

# The late edits a materialization covered: the days it aggregated, visible in its snapshot.
SETTLE_DAYS = """
DELETE FROM activity_day_changes
WHERE day >= %(start)s AND day < %(end)s AND pg_visible_in_snapshot(txid, %(snapshot)s::pg_snapshot)
"""

# What the late-edit sensor reads per tick: each pending day, its newest change id, its oldest
# and newest change time, and the database clock.
PENDING_DAYS = """
SELECT day, count(*)::int, max(id), min(changed_at), max(changed_at),
       (now() AT TIME ZONE 'utc')::timestamp
FROM activity_day_changes
GROUP BY day
ORDER BY day
"""

DATABASE_NOW = "SELECT (now() AT TIME ZONE 'utc')::timestamp"
