"""A run holds its Dagster storage connections instead of opening one per event."""

from __future__ import annotations

import psycopg

from tests.cocktail_assets.refresh.conftest import Cli

SELECT = ["catalog/ingredient_catalog", "analytics/ingredient_tree", "analytics/ingredient_usage",
          "analytics/recipe_complexity"]


def sessions(cli: Cli) -> int:
    """Sessions ever opened on the instance's storage database (PostgreSQL's own count)."""
    url = cli.env["DAGSTER_PG_URL"].replace("postgresql+psycopg2://", "postgresql://")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_stat_clear_snapshot()")
        row = conn.execute(
            "SELECT sessions FROM pg_stat_database WHERE datname = current_database()"
        ).fetchone()
    assert row is not None
    return int(row[0])


def test_a_refresh_opens_a_bounded_number_of_storage_connections(cli: Cli) -> None:
    """Four steps write some fifty events and read asset records: with Dagster's default of a
    connection per call this refresh opened 168 sessions (53 when only the run held them).
    Held from the CLI's first read, the process needs the instance's start-up checks and one
    pool per storage (run, event log, schedules): 16 here."""
    warm = cli.run("refresh", "--select", *SELECT)  # the instance's schema is created here
    assert warm.returncode == 0, warm.stderr
    before = sessions(cli)
    done = cli.run("refresh", "--select", *SELECT)
    assert done.returncode == 0, done.stderr
    opened = sessions(cli) - before - 1  # this test's own count query
    assert 0 < opened <= 30, opened
