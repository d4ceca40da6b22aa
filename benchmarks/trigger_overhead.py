"""What the analytics triggers cost the site's writes, on real PostgreSQL.

Every write the triggers watch, as one statement of ``--rows`` rows (how the site's bulk tools
write) and as that many single-row statements in one transaction (the worst case: statement
triggers fire once per statement): recipe_ingredients inserts and recipes updates (change
tracking, migration 002), and ratings / user_ingredients inserts of today and of past days,
their COPY, ingredients and tags inserts, and recipe and tag deletes (also the per-day activity
triggers, migrations 003-006). Bulk imports arrive by COPY too, which PostgreSQL turns into
multi-row inserts unless a table has a BEFORE INSERT row trigger, hence the COPY case.

Three databases on one server, migrated alike, differ only in their triggers: ``none`` (every
analytics trigger disabled), ``002`` (change tracking only) and ``all``. Each run of a case is
one transaction that is rolled back, so every run starts from the same state with no reset in
between, and a first statement of a transaction records its past days (the worst case). The
runs go round the three databases, ``--repeats`` rounds in a rotating order.

The clock is the server backend's CPU time (``/proc/<pid>/schedstat``) when the server runs on
this machine, wall-clock time otherwise (``--clock wall`` forces it): the triggers' work is the
backend's, while the wall clock adds the client and the round trips. The three backends are
pinned to one CPU (``--cpu``, default the first this process may use) and this client to the
others. Even so the development VM runs a backend 1.5 times slower now and then, switching
many times a second; short runs taken in turn share those spells alike, so a configuration's
time is its trimmed mean (the middle 80 % of its runs), and the ratio of two such means moves
by about a percent between whole benchmark runs, where a median or a minimum of a few long runs
moved by ten. The cases no activity trigger touches (recipe_ingredients, recipes name updates,
today's rows) show that noise: their ``activity`` column should read about 0.

Prints per configuration its time (and median) per run, the overhead of all triggers over none
and the cost of the activity triggers alone (all over 002), relative and in microseconds per
statement, with the verdict. Targets: bulk statements at most 5 % slower, a single-row
statement at most 20 us slower. ``--floor`` adds a fourth database, ``floor``, whose activity
statement triggers only read their rows' timestamps (``max`` over the transition table) and
record nothing: what any statement trigger that looks at its rows costs, the part of the
activity column no change to the triggers' own work can remove.

    python benchmarks/trigger_overhead.py [--rows 2000] [--repeats 60] [--clock cpu|wall]
        [--cpu N] [--only LABEL] [--floor]

Uses scratch databases on the server of DATABASE_URL (created and dropped here; that role
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
from contextlib import ExitStack, contextmanager

import psycopg

from cocktail_assets.db.connection import with_dbname
from cocktail_assets.db.migrate import migrate

# Activity rows of the last 30 days, never today: each statement records its past days.
PAST = "(now() AT TIME ZONE 'utc') - (1 + %s %% 30) * interval '1 day'"


@contextmanager
def scratch_server() -> Iterator[str]:
    """The admin conninfo of DATABASE_URL's server, or of a throwaway pgserver."""
    configured = os.environ.get("DATABASE_URL")
    if configured:
        yield configured
        return
    import pgserver

    server = pgserver.get_server(tempfile.mkdtemp(prefix="bench-pg-"), cleanup_mode="delete")
    try:
        yield server.get_uri("postgres")
    finally:
        server.cleanup()


@contextmanager
def scratch_database(admin: str | None = None) -> Iterator[str]:
    """A fresh database for a benchmark (on ``admin``'s server, or ``scratch_server``'s),
    dropped afterwards."""
    with ExitStack() as stack:
        admin = admin or stack.enter_context(scratch_server())
        name = f"bench_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        try:
            yield with_dbname(admin, name)
        finally:
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def prepare(conn: psycopg.Connection, rows: int) -> None:
    """Units, ingredients and ``rows`` recipes of the last 30 days."""
    conn.execute("INSERT INTO units (name, conversion_to_ml) VALUES ('ml', 1), ('oz', 29.57)")
    conn.execute(
        "INSERT INTO ingredients (name, path) SELECT 'ingredient ' || g, '/' || g || '/' "
        "FROM generate_series(1, 200) g"
    )
    conn.execute(
        "INSERT INTO recipes (name, created_at) SELECT 'recipe ' || g, "
        f"{PAST.replace('%s', 'g')} FROM generate_series(1, %s) g", (rows,)
    )
    conn.execute(
        "INSERT INTO tags (name, created_by, created_at) SELECT 'tag ' || g, 'u' || g, "
        f"{PAST.replace('%s', 'g')} FROM generate_series(1, %s) g", (rows,)
    )
    conn.execute("TRUNCATE analytics_change_log, activity_day_changes")
    for table in WRITTEN:  # autovacuum would come at different times in the three databases
        conn.execute(f"ALTER TABLE {table} SET (autovacuum_enabled = off)")
    conn.execute("VACUUM ANALYZE")


TRACKED = ("recipe_ingredients", "recipes", "ratings", "user_ingredients", "ingredients", "tags")
ACTIVITY = ("recipes", "ratings", "user_ingredients", "ingredients", "tags")
CONFIGS = ("none", "002", "all")
WRITTEN = ("recipes", "recipe_ingredients", "ratings", "user_ingredients", "ingredients", "tags",
           "analytics_change_log", "activity_day_changes", "analytics_refresh_state")


STAMPS = {"recipes": "created_at", "ratings": "created_at", "user_ingredients": "added_at",
          "ingredients": "created_at", "tags": "created_at"}


def set_triggers(conn: psycopg.Connection, config: str) -> None:
    """none: no analytics trigger; 002: change tracking only; all: also the activity days;
    floor: as all, but each activity statement trigger only reads its rows' timestamps (the
    least any statement trigger that looks at them can cost) and records nothing."""
    for table in TRACKED:
        action = "DISABLE" if config == "none" else "ENABLE"
        conn.execute(f"ALTER TABLE {table} {action} TRIGGER analytics_{table}_dirty")
    for table in ACTIVITY:
        action = "ENABLE" if config in ("all", "floor") else "DISABLE"
        for event in ("insert", "delete", "update"):
            conn.execute(f"ALTER TABLE {table} {action} TRIGGER activity_{table}_{event}")
    if config == "floor":
        for table, stamp in STAMPS.items():
            conn.execute(
                f"CREATE OR REPLACE FUNCTION activity_{table}_statement_days() RETURNS trigger "
                f"LANGUAGE plpgsql AS $$ BEGIN PERFORM max({stamp}) FROM activity_rows; "
                "RETURN NULL; END $$"
            )


def insert_bulk(conn: psycopg.Connection, rows: int) -> None:
    conn.execute(
        "INSERT INTO recipe_ingredients (recipe_id, ingredient_id, unit_id, amount) "
        "SELECT r.id, 1 + r.id %% 200, 1, 30 FROM recipes r ORDER BY r.id LIMIT %s",
        (rows,),
    )


def insert_rows(conn: psycopg.Connection, rows: int) -> None:
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO recipe_ingredients (recipe_id, ingredient_id, unit_id, amount) "
            "VALUES (%s, %s, 1, 30)",
            [(i, 1 + i % 200) for i in range(1, rows + 1)],
        )


def update_bulk(conn: psycopg.Connection, rows: int) -> None:
    conn.execute("UPDATE recipes SET name = name || '.' WHERE id <= %s", (rows,))


def update_rows(conn: psycopg.Connection, rows: int) -> None:
    with conn.cursor() as cur:
        cur.executemany(
            "UPDATE recipes SET name = name || '.' WHERE id = %s",
            [(i,) for i in range(1, rows + 1)],
        )


def ratings_bulk(conn: psycopg.Connection, rows: int) -> None:
    conn.execute(
        "INSERT INTO ratings (cognito_user_id, recipe_id, rating, created_at) "
        f"SELECT 'u' || g, g, 1 + g %% 5, {PAST.replace('%s', 'g')} "
        "FROM generate_series(1, %s) g", (rows,),
    )


def ratings_rows(conn: psycopg.Connection, rows: int) -> None:
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO ratings (cognito_user_id, recipe_id, rating, created_at) "
            f"VALUES (%s, %s, 4, {PAST})",
            [(f"u{i}", i, i) for i in range(1, rows + 1)],
        )


def ratings_today_rows(conn: psycopg.Connection, rows: int) -> None:
    """The site's everyday write: a rating of today, one statement each (records no day)."""
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO ratings (cognito_user_id, recipe_id, rating) VALUES (%s, %s, 4)",
            [(f"u{i}", i) for i in range(1, rows + 1)],
        )


def ratings_today_bulk(conn: psycopg.Connection, rows: int) -> None:
    conn.execute(
        "INSERT INTO ratings (cognito_user_id, recipe_id, rating) "
        "SELECT 'u' || g, g, 1 + g %% 5 FROM generate_series(1, %s) g", (rows,),
    )


def pantry_today_rows(conn: psycopg.Connection, rows: int) -> None:
    """The site's everyday pantry write: today's row, one statement each (records no day)."""
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO user_ingredients (cognito_user_id, ingredient_id) VALUES (%s, %s)",
            [(f"u{i}", 1 + i % 200) for i in range(1, rows + 1)],
        )


def pantry_today_bulk(conn: psycopg.Connection, rows: int) -> None:
    conn.execute(
        "INSERT INTO user_ingredients (cognito_user_id, ingredient_id) "
        "SELECT 'u' || g, 1 + g %% 200 FROM generate_series(1, %s) g", (rows,),
    )


def pantry_bulk(conn: psycopg.Connection, rows: int) -> None:
    conn.execute(
        "INSERT INTO user_ingredients (cognito_user_id, ingredient_id, added_at) "
        f"SELECT 'u' || g, 1 + g %% 200, {PAST.replace('%s', 'g')} "
        "FROM generate_series(1, %s) g", (rows,),
    )


def pantry_rows(conn: psycopg.Connection, rows: int) -> None:
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO user_ingredients (cognito_user_id, ingredient_id, added_at) "
            f"VALUES (%s, %s, {PAST})",
            [(f"u{i}", 1 + i % 200, i) for i in range(1, rows + 1)],
        )


def pantry_copy(conn: psycopg.Connection, rows: int) -> None:
    """A bulk import by COPY: rows of the last 30 days."""
    with conn.cursor() as cur, cur.copy(
        "COPY user_ingredients (cognito_user_id, ingredient_id, added_at) FROM STDIN"
    ) as copy:
        for i in range(1, rows + 1):
            copy.write_row((f"u{i}", 1 + i % 200, PAST_DAYS[i % 30]))


PAST_DAYS: list[str] = []


def ingredients_bulk(conn: psycopg.Connection, rows: int) -> None:
    conn.execute(
        "INSERT INTO ingredients (name, path, created_by, created_at) "
        f"SELECT 'new ' || g, '/1/', 'u' || g, {PAST.replace('%s', 'g')} "
        "FROM generate_series(1, %s) g", (rows,),
    )


def ingredients_rows(conn: psycopg.Connection, rows: int) -> None:
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO ingredients (name, path, created_by, created_at) "
            f"VALUES (%s, '/1/', %s, {PAST})",
            [(f"new {i}", f"u{i}", i) for i in range(1, rows + 1)],
        )


def tags_bulk(conn: psycopg.Connection, rows: int) -> None:
    conn.execute(
        "INSERT INTO tags (name, created_by, created_at) "
        f"SELECT 'new ' || g, 'u' || g, {PAST.replace('%s', 'g')} FROM generate_series(1, %s) g",
        (rows,),
    )


def tags_rows(conn: psycopg.Connection, rows: int) -> None:
    with conn.cursor() as cur:
        cur.executemany(
            f"INSERT INTO tags (name, created_by, created_at) VALUES (%s, %s, {PAST})",
            [(f"new {i}", f"u{i}", i) for i in range(1, rows + 1)],
        )


def delete_tags_bulk(conn: psycopg.Connection, rows: int) -> None:
    conn.execute("DELETE FROM tags WHERE id <= %s", (rows,))


def delete_tags_rows(conn: psycopg.Connection, rows: int) -> None:
    with conn.cursor() as cur:
        cur.executemany("DELETE FROM tags WHERE id = %s", [(i,) for i in range(1, rows + 1)])


def delete_bulk(conn: psycopg.Connection, rows: int) -> None:
    conn.execute("DELETE FROM recipes WHERE id <= %s", (rows,))


def delete_rows(conn: psycopg.Connection, rows: int) -> None:
    with conn.cursor() as cur:
        cur.executemany("DELETE FROM recipes WHERE id = %s", [(i,) for i in range(1, rows + 1)])


ROWS = [2_000]


def backend_clock(conn: psycopg.Connection) -> Callable[[], float] | None:
    """Seconds the connection's backend process has spent on a CPU, if it runs here."""
    row = conn.execute("SELECT pg_backend_pid(), inet_server_addr()").fetchone()
    pid, address = row if row else (None, None)
    local = address is None or str(address) in ("127.0.0.1", "::1")
    path = f"/proc/{pid}/schedstat"
    if not local or not os.path.exists(path):
        return None

    def seconds() -> float:
        with open(path) as stat:
            return int(stat.read().split()[0]) / 1e9

    return seconds


def pin(conn: psycopg.Connection, cpu: int) -> bool:
    """Keeps the backend on one CPU and this client off it, when the server runs here."""
    row = conn.execute("SELECT pg_backend_pid()").fetchone()
    try:
        os.sched_setaffinity(row[0] if row else 0, {cpu})
    except OSError:  # another machine's pid, or not ours to move
        return False
    others = os.sched_getaffinity(0) - {cpu}
    if others:
        os.sched_setaffinity(0, others)
    return True


def measure(
    conns: dict[str, psycopg.Connection], work: Callable[[psycopg.Connection, int], None],
    rows: int, repeats: int, clocks: dict[str, Callable[[], float]],
) -> dict[str, list[float]]:
    """Seconds of each run per configuration: rounds over the databases in a rotating
    order, each run a transaction rolled back; after each round (untimed) the dead rows are
    vacuumed, so that all runs see the same tables, and a one-row run re-plans what the
    vacuum's statistics invalidated."""
    configs = list(conns)
    timings: dict[str, list[float]] = {c: [] for c in configs}
    for i in range(-1, repeats):  # round -1 warms each backend's caches and plans
        for config in configs[i % len(configs):] + configs[: i % len(configs)]:
            conn, clock = conns[config], clocks[config]
            with conn.transaction(force_rollback=True):
                started = clock()
                work(conn, rows)
                elapsed = clock() - started
            if i >= 0:
                timings[config].append(elapsed)
        for conn in conns.values():
            conn.execute(f"VACUUM {', '.join(WRITTEN)}")
            # VACUUM's new statistics invalidate the cached plans of the triggers' functions;
            # one row, rolled back, plans them again, as a site's statements find them.
            with conn.transaction(force_rollback=True):
                work(conn, 1)
    return timings


def trimmed(runs: list[float]) -> float:
    """The mean of the middle 80 % of the runs: the slow spells that the rounds spread over
    all configurations stay in, a run that the scheduler stopped does not."""
    ordered = sorted(runs)
    cut = len(ordered) // 10
    return statistics.fmean(ordered[cut: len(ordered) - cut] or ordered)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000)
    parser.add_argument("--repeats", type=int, default=60)
    parser.add_argument("--only", default="", help="run the cases whose label contains this")
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu",
                        help="the backend's CPU time (when the server is local) or wall time")
    parser.add_argument("--cpu", type=int, default=min(os.sched_getaffinity(0)),
                        help="the CPU to keep the server's backends on")
    parser.add_argument("--floor", action="store_true",
                        help="also time a fourth database whose activity statement triggers "
                             "only read their rows' timestamps")
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
        ("insert ingredients (past days)", ingredients_bulk, ingredients_rows),
        ("insert tags (past days)", tags_bulk, tags_rows),
        ("delete tags (past days)", delete_tags_bulk, delete_tags_rows),
    ]
    ROWS[0] = args.rows
    with scratch_server() as admin, ExitStack() as stack:
        conns: dict[str, psycopg.Connection] = {}
        configs = CONFIGS + (("floor",) if args.floor else ())
        for config in configs:
            url = stack.enter_context(scratch_database(admin))
            migrate(url)
            conn = stack.enter_context(psycopg.connect(url, autocommit=True))
            prepare(conn, args.rows)
            set_triggers(conn, config)
            conns[config] = conn
        PAST_DAYS[:] = [str(r[0]) for r in conns["all"].execute(
            "SELECT (now() AT TIME ZONE 'utc') - d * interval '1 day' "
            "FROM generate_series(1, 30) d")]
        version = conns["all"].execute("SHOW server_version").fetchone()
        found = {c: backend_clock(conn) for c, conn in conns.items()}
        cpu = args.clock == "cpu" and all(found.values())
        clocks = {c: (found[c] if cpu else None) or time.perf_counter for c in configs}
        timed = "the backends' CPU time" if cpu else "wall-clock time"
        if cpu and all([pin(conn, args.cpu) for conn in conns.values()]):
            timed += f" on CPU {args.cpu}"
        print(f"PostgreSQL {version[0] if version else '?'}, {timed}, trimmed mean (median) of "
              f"{args.repeats} runs; none / 002 / all = no analytics trigger / change tracking / "
              f"also activity" + (" / its floor" if args.floor else ""), flush=True)
        for label, bulk, single in [c for c in cases if args.only in c[0]]:
            for kind, work in (("one statement", bulk), ("one statement per row", single)):
                if work is None:
                    continue
                timings = measure(conns, work, args.rows, args.repeats, clocks)
                statements = 1 if work is bulk else args.rows
                t = {c: trimmed(runs) for c, runs in timings.items()}
                overhead = t["all"] / t["none"] - 1
                new = t["all"] / t["002"] - 1
                per_statement_us = (t["all"] - t["002"]) / statements * 1e6
                total_us = (t["all"] - t["none"]) / statements * 1e6
                if work is bulk:
                    verdict = "ok" if new < 0.05 else "over the 5% target"
                else:
                    verdict = "ok" if per_statement_us < 20 else "over the 20 us target"
                print(
                    f"{label + ', ' + kind:<58} rows={args.rows:>6}"
                    + "".join(f"  {c} {t[c] * 1000:7.2f} ({statistics.median(runs) * 1000:7.2f})"
                              f" ms" for c, runs in timings.items())
                    + f"  all/none {overhead:+6.1%} ({total_us:+8.1f} us/stmt)  activity "
                    f"{new:+6.1%} ({per_statement_us:+8.1f} us/stmt)  {verdict}"
                    + (f"  floor/002 {t['floor'] / t['002'] - 1:+6.1%} "
                       f"({(t['floor'] - t['002']) / statements * 1e6:+8.1f} us/stmt)"
                       if "floor" in t else ""), flush=True,
                )


if __name__ == "__main__":
    main()
