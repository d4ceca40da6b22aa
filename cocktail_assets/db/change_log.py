"""Queries over the change tracking that migration 002 installs.

Each statement on a tracked site table appends a row to ``analytics_change_log``. Pending rows
(``settled_at IS NULL``) are the edits no successful refresh has covered yet. A refresh is
planned from a snapshot (``pg_current_snapshot()``); when it succeeds, exactly the rows visible
in that snapshot are settled, so nothing that committed later (or was in flight) is lost.
All times are the database's clock, in UTC.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import psycopg

TRACKED_TABLES: tuple[str, ...] = (
    "recipes", "ingredients", "recipe_ingredients", "units", "ratings", "tags", "recipe_tags",
    "user_ingredients",
)


@dataclass(frozen=True)
class PendingTable:
    table: str
    changes: int
    first_changed_at: datetime
    last_changed_at: datetime
    last_id: int = 0  # the newest pending change's id: the change point a refresh is keyed on


@dataclass(frozen=True)
class PendingChanges:
    """What is waiting for a refresh, read in one statement with the database's ``now()``."""

    now: datetime
    snapshot: str
    tables: tuple[PendingTable, ...]

    @property
    def table_names(self) -> tuple[str, ...]:
        return tuple(t.table for t in self.tables)

    @property
    def first_changed_at(self) -> datetime | None:
        return min((t.first_changed_at for t in self.tables), default=None)

    @property
    def last_changed_at(self) -> datetime | None:
        return max((t.last_changed_at for t in self.tables), default=None)

    @property
    def last_id(self) -> int:
        return max((t.last_id for t in self.tables), default=0)


_PENDING = """
SELECT now() AT TIME ZONE 'utc', pg_current_snapshot()::text,
       coalesce(json_agg(json_build_object(
           'table', table_name, 'changes', n, 'first', first_at, 'last', last_at,
           'last_id', last_id)
           ORDER BY table_name) FILTER (WHERE table_name IS NOT NULL), '[]')
FROM (
    SELECT table_name, count(*) AS n, min(changed_at) AS first_at, max(changed_at) AS last_at,
           max(id) AS last_id
    FROM analytics_change_log WHERE settled_at IS NULL GROUP BY table_name
) pending
"""


def pending_changes(conn: psycopg.Connection) -> PendingChanges:
    """The pending edits per table, the database clock, and the snapshot they were read in."""
    row = conn.execute(_PENDING).fetchone()
    assert row is not None
    now, snapshot, tables = row
    return PendingChanges(
        now=now,
        snapshot=snapshot,
        tables=tuple(
            PendingTable(
                table=t["table"], changes=t["changes"],
                first_changed_at=datetime.fromisoformat(t["first"]),
                last_changed_at=datetime.fromisoformat(t["last"]),
                last_id=int(t["last_id"]),
            )
            for t in tables
        ),
    )


def current_snapshot(conn: psycopg.Connection) -> str:
    """The snapshot a refresh is planned from: what it covers when it succeeds."""
    row = conn.execute("SELECT pg_current_snapshot()::text").fetchone()
    assert row is not None
    return row[0]


def settle(conn: psycopg.Connection, snapshot: str, tables: Sequence[str]) -> int:
    """Mark settled the pending changes of ``tables`` visible in ``snapshot``; returns how many.

    Idempotent, so a retried settlement is harmless. Never waits for the site's open
    transactions. Also stamps ``last_run_at`` (best effort) for the tools that read
    ``analytics_refresh_state``, and prunes settled rows except each table's newest
    (whose id is the table's data version).
    """
    with conn.transaction():
        cur = conn.execute(
            "UPDATE analytics_change_log SET settled_at = now() AT TIME ZONE 'utc' "
            "WHERE settled_at IS NULL AND table_name = ANY(%s) "
            "AND pg_visible_in_snapshot(txid, %s::pg_snapshot)",
            (list(tables), snapshot),
        )
        settled = cur.rowcount
        # Every site transaction that wrote a tracked table holds this row's lock (its trigger
        # stamps dirty_at) until it commits: skip the stamp rather than wait for one.
        conn.execute(
            "UPDATE analytics_refresh_state SET last_run_at = now() AT TIME ZONE 'utc' "
            "WHERE id = (SELECT id FROM analytics_refresh_state WHERE id = 1 "
            "FOR UPDATE SKIP LOCKED)"
        )
        conn.execute(
            "DELETE FROM analytics_change_log l WHERE settled_at IS NOT NULL AND id < "
            "(SELECT max(id) FROM analytics_change_log m WHERE m.table_name = l.table_name)"
        )
    return settled


def reopen_latest(conn: psycopg.Connection) -> int:
    """Mark each tracked table's newest change pending again; returns how many tables.

    For a run that may have published alongside another (its lock was lost): whatever it
    published is then refreshed by a later run, and nothing it wrote can hide an edit that
    another run settled. A spurious refresh is the price, and it is rare.
    """
    cur = conn.execute(
        "UPDATE analytics_change_log SET settled_at = NULL WHERE settled_at IS NOT NULL "
        "AND id IN (SELECT max(id) FROM analytics_change_log GROUP BY table_name)"
    )
    return cur.rowcount
@dataclass(frozen=True)
class TableVersion:
    """A tracked table's data version and its last change, as a source observation reports it."""

    table: str
    version: str  # the id of its newest change-log row ('0' if it never changed)
    last_changed_at: datetime | None  # database clock, UTC
    last_operation: str | None  # INSERT, UPDATE, DELETE or TRUNCATE
    pending: int  # changes no successful refresh has covered yet


_VERSIONS = """
SELECT l.table_name, l.id, l.changed_at, l.operation,
       (SELECT count(*) FROM analytics_change_log p
        WHERE p.table_name = l.table_name AND p.settled_at IS NULL)
FROM (SELECT table_name, max(id) AS id FROM analytics_change_log GROUP BY table_name) newest
JOIN analytics_change_log l ON l.id = newest.id
"""


def table_changes(conn: psycopg.Connection) -> dict[str, TableVersion]:
    """Every tracked table's data version with its newest change, in one statement."""
    found = {
        name: TableVersion(name, str(version), changed_at, operation, int(pending))
        for name, version, changed_at, operation, pending in conn.execute(_VERSIONS).fetchall()
    }
    return {t: found.get(t, TableVersion(t, "0", None, None, 0)) for t in TRACKED_TABLES}


def table_versions(conn: psycopg.Connection) -> dict[str, str]:
    """Each tracked table's data version: the id of its newest change ('0' if none yet)."""
    return {table: change.version for table, change in table_changes(conn).items()}
