"""What the analytics change-tracking triggers cost the site's writes, on real PostgreSQL.

Bulk-inserts 10,000 recipe_ingredients rows and updates 10,000 recipes, with the triggers
enabled and disabled (``ALTER TABLE ... DISABLE TRIGGER analytics_<table>_dirty``), each as one
statement (how the site's bulk tools write) and as 10,000 single-row statements in one
transaction (the worst case: the triggers fire once per statement). Prints the median of
several interleaved runs and the overhead ratio; the target is under 5 %.

    python benchmarks/trigger_overhead.py [--rows 10000] [--repeats 7]

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


def set_triggers(conn: psycopg.Connection, enabled: bool) -> None:
    action = "ENABLE" if enabled else "DISABLE"
    for table in ("recipe_ingredients", "recipes"):
        conn.execute(f"ALTER TABLE {table} {action} TRIGGER analytics_{table}_dirty")


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


def reset(conn: psycopg.Connection) -> None:
    """Undo a run's writes (untimed) so every run starts from the same state."""
    conn.execute("TRUNCATE recipe_ingredients, analytics_change_log")
    conn.execute("UPDATE recipes SET name = 'recipe ' || id")
    conn.execute("VACUUM recipes, recipe_ingredients, analytics_change_log")


def measure(
    conn: psycopg.Connection, work: Callable[[psycopg.Connection, int], None], rows: int,
    repeats: int,
) -> tuple[float, float]:
    """Median seconds (with, without triggers), runs interleaved so drift hits both alike."""
    timings: dict[bool, list[float]] = {True: [], False: []}
    work(conn, rows)  # warm-up
    reset(conn)
    for i in range(repeats):
        for enabled in ((True, False) if i % 2 == 0 else (False, True)):
            set_triggers(conn, enabled)
            started = time.perf_counter()
            work(conn, rows)
            timings[enabled].append(time.perf_counter() - started)
            reset(conn)
    set_triggers(conn, True)
    return statistics.median(timings[True]), statistics.median(timings[False])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    cases = [
        ("insert recipe_ingredients, one statement", insert_bulk),
        ("insert recipe_ingredients, one statement per row", insert_rows),
        ("update recipes, one statement", update_bulk),
        ("update recipes, one statement per row", update_rows),
    ]
    with scratch_database() as url:
        migrate(url)
        with psycopg.connect(url, autocommit=True) as conn:
            prepare(conn, args.rows)
            version = conn.execute("SHOW server_version").fetchone()
            print(f"PostgreSQL {version[0] if version else '?'}, median of {args.repeats} runs")
            for label, work in cases:
                with_t, without_t = measure(conn, work, args.rows, args.repeats)
                overhead = with_t / without_t - 1
                print(
                    f"{label:<50} rows={args.rows:>6}  with triggers {with_t * 1000:8.1f} ms  "
                    f"without {without_t * 1000:8.1f} ms  overhead {overhead:+6.1%}  "
                    f"{'ok' if overhead < 0.05 else 'over the 5% target'}"
                )


if __name__ == "__main__":
    main()
