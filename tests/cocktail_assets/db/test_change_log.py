"""The change-tracking triggers and queries on a real PostgreSQL database."""

from __future__ import annotations

import psycopg
import pytest

from cocktail_assets.db.change_log import pending_changes, settle


def _log(conn: psycopg.Connection) -> list[tuple[str, str]]:
    return conn.execute(
        "SELECT table_name, operation FROM analytics_change_log ORDER BY id"
    ).fetchall()


@pytest.mark.parametrize(
    ("table", "insert", "update", "delete"),
    [
        ("units", "INSERT INTO units (name) VALUES ('dash')",
         "UPDATE units SET conversion_to_ml = 0.6", "DELETE FROM units"),
        ("tags", "INSERT INTO tags (name) VALUES ('tiki')",
         "UPDATE tags SET name = 'Tiki'", "DELETE FROM tags"),
        ("ingredients", "INSERT INTO ingredients (name) VALUES ('rum')",
         "UPDATE ingredients SET path = '/1/'", "DELETE FROM ingredients"),
    ],
)
def test_each_statement_records_its_table_and_operation(
    db_url: str, table: str, insert: str, update: str, delete: str
) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        for statement in (insert, update, delete):
            conn.execute(statement)
        # A delete may add rows for the tables its foreign keys cascade to (statement-level
        # triggers fire even when the cascade touches no row): more, never less.
        assert [row for row in _log(conn) if row[0] == table] == [
            (table, "INSERT"), (table, "UPDATE"), (table, "DELETE")
        ]


def test_one_row_per_statement_not_per_row(db_url: str) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("INSERT INTO units (name) SELECT 'u' || g FROM generate_series(1, 500) g")
        assert _log(conn) == [("units", "INSERT")]


def test_a_rolled_back_transaction_records_nothing(db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        conn.execute("INSERT INTO units (name) VALUES ('dash')")
        conn.execute("INSERT INTO tags (name) VALUES ('tiki')")
        conn.rollback()
        assert _log(conn) == []
        assert pending_changes(conn).tables == ()


def test_pending_changes_per_table_with_the_database_clock(db_url: str) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("INSERT INTO units (name) VALUES ('dash')")
        conn.execute("INSERT INTO units (name) VALUES ('barspoon')")
        conn.execute("INSERT INTO tags (name) VALUES ('tiki')")
        conn.execute(
            "UPDATE analytics_change_log SET changed_at = changed_at - interval '10 minutes' "
            "WHERE table_name = 'tags'"
        )
        pending = pending_changes(conn)
        ids = dict(conn.execute(
            "SELECT table_name, max(id) FROM analytics_change_log GROUP BY table_name"
        ).fetchall())
    assert pending.table_names == ("tags", "units")
    tags, units = pending.tables
    assert (tags.changes, units.changes) == (1, 2)
    assert (tags.last_id, units.last_id) == (ids["tags"], ids["units"])
    assert pending.last_id == max(ids.values())
    assert pending.first_changed_at == tags.first_changed_at
    assert 9.9 < (pending.now - tags.last_changed_at).total_seconds() / 60 < 10.5
    assert pending.last_changed_at == units.last_changed_at <= pending.now


def test_settle_covers_only_what_its_snapshot_saw(db_url: str) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn, psycopg.connect(db_url) as late:
        conn.execute("INSERT INTO units (name) VALUES ('dash')")
        late.execute("INSERT INTO units (name) VALUES ('late')")  # in flight: not yet committed
        snapshot = pending_changes(conn).snapshot
        # The open site transaction holds analytics_refresh_state: settling must not wait.
        assert settle(conn, snapshot, ["units"]) == 1
        late.commit()
        conn.execute("INSERT INTO units (name) VALUES ('after')")
        assert settle(conn, snapshot, ["units"]) == 0  # idempotent
        assert pending_changes(conn).tables[0].changes == 2
        assert settle(conn, pending_changes(conn).snapshot, ["units"]) == 2
        stamped = conn.execute("SELECT last_run_at FROM analytics_refresh_state").fetchone()
        assert stamped is not None and stamped[0] is not None
