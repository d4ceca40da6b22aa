"""What the analytics triggers cost the site's writes, on real PostgreSQL.

Every write the triggers watch, as one statement of 10,000 rows (how the site's bulk tools
write) and as 10,000 single-row statements in one transaction (the worst case: statement
triggers fire once per statement): recipe_ingredients inserts and recipes updates (change
tracking, migration 002), and ratings / user_ingredients inserts of past days and recipe
deletes (also the per-day activity triggers, migration 003). Each case runs with every analytics
trigger disabled (``none``), with only the change tracking (``002``) and with all (``all``),
interleaved, each run from the same vacuumed state. Bulk imports also arrive by COPY, which
PostgreSQL turns into multi-row inserts unless a table has a BEFORE INSERT row trigger, so a
COPY case is measured too.

Prints, per configuration, the best and the median of the runs, the overhead of all triggers
over none, and the cost of the activity triggers alone (all over 002) relative and in
microseconds per statement. The verdict uses the best runs: on a shared virtual machine a run
is now and then 1.5 times slower for reasons outside the benchmark, which moves a median of a
few runs by more than the 5 % to be measured, while the fastest run of each configuration is
the cost of the work itself. Targets: bulk statements at most 5 % slower, a single-row
statement at most 20 us slower.

    python benchmarks/trigger_overhead.py [--rows 10000] [--repeats 9]

Uses a scratch database on the server of DATABASE_URL (created and dropped here; that role
needs CREATEDB), or a throwaway pgserver when DATABASE_URL is not set.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import psycopg

from cocktail_assets.db.connection import with_dbname
from cocktail_assets.db.migrate import migrate


@contextmanager
def scratch_database() -> Iterator[str]:
    """A fresh database for the benchmark, dropped afterwards."""
    configured = os.environ.get("DATABASE_URL")
    server = None
    if configured:
        admin = configured
    else:
        import pgserver

        server = pgserver.get_server(tempfile.mkdtemp(prefix="bench-pg-"), cleanup_mode="delete")
        admin = server.get_uri("postgres")
    name = f"bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield with_dbname(admin, name)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if server is not None:
            server.cleanup()


def prepare(conn: psycopg.Connection, rows: int) -> None:
    conn.execute("INSERT INTO units (name, conversion_to_ml) VALUES ('ml', 1), ('oz', 29.57)")
    conn.execute(
        "INSERT INTO ingredients (name, path) SELECT 'ingredient ' || g, '/' || g || '/' "
        "FROM generate_series(1, 200) g"
    )
    conn.execute(
        "INSERT INTO recipes (name) SELECT 'recipe ' || g FROM generate_series(1, %s) g", (rows,)
    )
    conn.execute("TRUNCATE analytics_change_log")
    conn.execute("VACUUM ANALYZE")


TRACKED = ("recipe_ingredients", "recipes", "ratings", "user_ingredients")
ACTIVITY = ("recipes", "ratings", "user_ingredients")
CONFIGS = ("none", "002", "all")


def set_triggers(conn: psycopg.Connection, config: str) -> None:
    """none: no analytics trigger; 002: change tracking only; all: also the activity days."""
    for table in TRACKED:
        action = "DISABLE" if config == "none" else "ENABLE"
        conn.execute(f"ALTER TABLE {table} {action} TRIGGER analytics_{table}_dirty")
    for table in ACTIVITY:
        action = "ENABLE" if config == "all" else "DISABLE"
        for event in ("insert", "delete", "update"):
            conn.execute(f"ALTER TABLE {table} {action} TRIGGER activity_{table}_{event}")


def insert_bulk(conn: psycopg.Connection, rows: int) -> None:
    with conn.transaction():
        conn.execute(
            "INSERT INTO recipe_ingredients (recipe_id, ingredient_id, unit_id, amount) "
            "SELECT r.id, 1 + r.id %% 200, 1, 30 FROM recipes r ORDER BY r.id LIMIT %s",
            (rows,),
        )


def insert_rows(conn: psycopg.Connection, rows: int) -> None:
    with conn.transaction(), conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO recipe_ingredients (recipe_id, ingredient_id, unit_id, amount) "
            "VALUES (%s, %s, 1, 30)",
            [(i, 1 + i % 200) for i in range(1, rows + 1)],
        )


def update_bulk(conn: psycopg.Connection, rows: int) -> None:
    with conn.transaction():
        conn.execute("UPDATE recipes SET name = name || '.' WHERE id <= %s", (rows,))


def update_rows(conn: psycopg.Connection, rows: int) -> None:
    with conn.transaction(), conn.cursor() as cur:
        cur.executemany(
            "UPDATE recipes SET name = name || '.' WHERE id = %s",
            [(i,) for i in range(1, rows + 1)],
        )


# Activity rows of the last 30 days, never today: each statement records its past days.
PAST = "(now() AT TIME ZONE 'utc') - (1 + %s %% 30) * interval '1 day'"


def ratings_bulk(conn: psycopg.Connection, rows: int) -> None:
    with conn.transaction():
        conn.execute(
            "INSERT INTO ratings (cognito_user_id, recipe_id, rating, created_at) "
            f"SELECT 'u' || g, g, 1 + g %% 5, {PAST.replace('%s', 'g')} "
            "FROM generate_series(1, %s) g", (rows,),
        )


def ratings_rows(conn: psycopg.Connection, rows: int) -> None:
    with conn.transaction(), conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO ratings (cognito_user_id, recipe_id, rating, created_at) "
            f"VALUES (%s, %s, 4, {PAST})",
            [(f"u{i}", i, i) for i in range(1, rows + 1)],
        )


def ratings_today_rows(conn: psycopg.Connection, rows: int) -> None:
    """The site's everyday write: a rating of today, one statement each (records no day)."""
    with conn.transaction(), conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO ratings (cognito_user_id, recipe_id, rating) VALUES (%s, %s, 4)",
            [(f"u{i}", i) for i in range(1, rows + 1)],
        )


def ratings_today_bulk(conn: psycopg.Connection, rows: int) -> None:
    with conn.transaction():
        conn.execute(
            "INSERT INTO ratings (cognito_user_id, recipe_id, rating) "
            "SELECT 'u' || g, g, 1 + g %% 5 FROM generate_series(1, %s) g", (rows,),
        )


def pantry_today_rows(conn: psycopg.Connection, rows: int) -> None:
    """The site's everyday pantry write: today's row, one statement each (records no day)."""
    with conn.transaction(), conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO user_ingredients (cognito_user_id, ingredient_id) VALUES (%s, %s)",
            [(f"u{i}", 1 + i % 200) for i in range(1, rows + 1)],
        )


def pantry_today_bulk(conn: psycopg.Connection, rows: int) -> None:
    with conn.transaction():
        conn.execute(
            "INSERT INTO user_ingredients (cognito_user_id, ingredient_id) "
            "SELECT 'u' || g, 1 + g %% 200 FROM generate_series(1, %s) g", (rows,),
        )


def pantry_bulk(conn: psycopg.Connection, rows: int) -> None:
    with conn.transaction():
        conn.execute(
            "INSERT INTO user_ingredients (cognito_user_id, ingredient_id, added_at) "
            f"SELECT 'u' || g, 1 + g %% 200, {PAST.replace('%s', 'g')} "
            "FROM generate_series(1, %s) g", (rows,),
        )


def pantry_rows(conn: psycopg.Connection, rows: int) -> None:
    with conn.transaction(), conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO user_ingredients (cognito_user_id, ingredient_id, added_at) "
            f"VALUES (%s, %s, {PAST})",
            [(f"u{i}", 1 + i % 200, i) for i in range(1, rows + 1)],
        )


def pantry_copy(conn: psycopg.Connection, rows: int) -> None:
    """A bulk import by COPY: rows of the last 30 days."""
    with conn.transaction(), conn.cursor() as cur, cur.copy(
        "COPY user_ingredients (cognito_user_id, ingredient_id, added_at) FROM STDIN"
    ) as copy:
        for i in range(1, rows + 1):
            copy.write_row((f"u{i}", 1 + i % 200, PAST_DAYS[i % 30]))


PAST_DAYS: list[str] = []


def delete_bulk(conn: psycopg.Connection, rows: int) -> None:
    with conn.transaction():
        conn.execute("DELETE FROM recipes WHERE id <= %s", (rows,))


def delete_rows(conn: psycopg.Connection, rows: int) -> None:
    with conn.transaction(), conn.cursor() as cur:
        cur.executemany("DELETE FROM recipes WHERE id = %s", [(i,) for i in range(1, rows + 1)])


def reset(conn: psycopg.Connection) -> None:
    """Undo a run's writes (untimed) so every run starts from the same state."""
    conn.execute("TRUNCATE recipe_ingredients, ratings, user_ingredients, analytics_change_log, "
                 "activity_day_changes")
    conn.execute(
        "INSERT INTO recipes (id, name, created_at) "
        f"SELECT g, 'recipe ' || g, {PAST.replace('%s', 'g')} FROM generate_series(1, %s) g "
        "ON CONFLICT (id) DO NOTHING", (ROWS[0],),
    )
    conn.execute("UPDATE recipes SET name = 'recipe ' || id WHERE name <> 'recipe ' || id")
    conn.execute("VACUUM recipes, recipe_ingredients, ratings, user_ingredients, "
                 "analytics_change_log, activity_day_changes")


ROWS = [10_000]


def measure(
    conn: psycopg.Connection, work: Callable[[psycopg.Connection, int], None], rows: int,
    repeats: int,
) -> tuple[dict[str, float], dict[str, float]]:
    """Best and median seconds per trigger configuration, interleaved so drift hits all
    alike."""
    timings: dict[str, list[float]] = {c: [] for c in CONFIGS}
    work(conn, rows)  # warm-up
    reset(conn)
    for i in range(repeats):
        order = CONFIGS if i % 2 == 0 else CONFIGS[::-1]
        for config in order:
            set_triggers(conn, config)
            started = time.perf_counter()
            work(conn, rows)
            timings[config].append(time.perf_counter() - started)
            reset(conn)
    set_triggers(conn, "all")
    return ({c: min(t) for c, t in timings.items()},
            {c: statistics.median(t) for c, t in timings.items()})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--only", default="", help="run the cases whose label contains this")
    args = parser.parse_args()
    cases = [
        ("insert recipe_ingredients", insert_bulk, insert_rows),
        ("update recipes (name)", update_bulk, update_rows),
        ("insert ratings (today)", ratings_today_bulk, ratings_today_rows),
        ("insert ratings (past days)", ratings_bulk, ratings_rows),
        ("insert user_ingredients (today)", pantry_today_bulk, pantry_today_rows),
        ("insert user_ingredients (past days)", pantry_bulk, pantry_rows),
        ("copy user_ingredients (past days)", pantry_copy, None),
        ("delete recipes (past days)", delete_bulk, delete_rows),
    ]
    ROWS[0] = args.rows
    with scratch_database() as url:
        migrate(url)
        with psycopg.connect(url, autocommit=True) as conn:
            prepare(conn, args.rows)
            conn.execute("UPDATE recipes SET created_at = "
                         "(now() AT TIME ZONE 'utc') - (1 + id % 30) * interval '1 day'")
            reset(conn)
            PAST_DAYS[:] = [str(r[0]) for r in conn.execute(
                "SELECT (now() AT TIME ZONE 'utc') - d * interval '1 day' "
                "FROM generate_series(1, 30) d")]
            version = conn.execute("SHOW server_version").fetchone()
            print(f"PostgreSQL {version[0] if version else '?'}, best (median) of {args.repeats} "
                  f"runs; none / 002 / all = no analytics trigger / change tracking / also "
                  f"activity")
            for label, bulk, single in [c for c in cases if args.only in c[0]]:
                for kind, work in (("one statement", bulk), ("one statement per row", single)):
                    if work is None:
                        continue
                    t, median = measure(conn, work, args.rows, args.repeats)
                    overhead = t["all"] / t["none"] - 1
                    new = t["all"] / t["002"] - 1
                    statements = 1 if work is bulk else args.rows
                    per_statement_us = (t["all"] - t["002"]) / statements * 1e6
                    total_us = (t["all"] - t["none"]) / statements * 1e6
                    if work is bulk:
                        verdict = "ok" if new < 0.05 else "over the 5% target"
                    else:
                        verdict = "ok" if per_statement_us < 20 else "over the 20 us target"
                    print(
                        f"{label + ', ' + kind:<58} rows={args.rows:>6}"
                        + "".join(f"  {c} {t[c] * 1000:7.1f} ({median[c] * 1000:7.1f}) ms"
                                  for c in CONFIGS)
                        + f"  all/none {overhead:+6.1%} "
                        f"({total_us:+8.1f} us/stmt)  activity {new:+6.1%} "
                        f"({per_statement_us:+8.1f} us/stmt)  {verdict}"
                    )


if __name__ == "__main__":
    main()
