"""Apply the numbered ``migrations/NNN_name.sql`` files, each once, in order.

Applied files are recorded in ``schema_migrations``. A session-level advisory lock makes a
second runner wait and then find nothing left to do, so two deploys never race. Each file runs
in its own transaction: a failing file leaves no trace and is not recorded.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psycopg

from cocktail_assets.db.connection import connect
from cocktail_assets.errors import MigrationError

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
# Arbitrary but fixed: the key of the advisory lock that serialises migration runners.
ADVISORY_LOCK_KEY = 0x0C0C7A11
_NAME = re.compile(r"^(\d{3})_[a-z0-9_]+\.sql$")


@dataclass(frozen=True)
class Migration:
    version: str
    path: Path

    @property
    def name(self) -> str:
        return self.path.name

    def sql(self) -> str:
        return self.path.read_text(encoding="utf-8")

    def checksum(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()


def discover(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """The migration files in version order; a misnamed or duplicated file is an error."""
    found: dict[str, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        match = _NAME.match(path.name)
        if not match:
            raise MigrationError(f"{path.name}: migration files are named NNN_name.sql")
        version = match.group(1)
        if version in found:
            other = found[version].name
            raise MigrationError(f"{path.name}: version {version} also used by {other}")
        found[version] = Migration(version, path)
    return [found[v] for v in sorted(found)]


_CREATE_LEDGER = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version text PRIMARY KEY,
    name text NOT NULL,
    checksum text NOT NULL,
    applied_at timestamp NOT NULL DEFAULT (now() AT TIME ZONE 'utc')
)
"""


def _applied(conn: psycopg.Connection) -> set[str]:
    exists = conn.execute("SELECT to_regclass('public.schema_migrations')").fetchone()
    if exists is None or exists[0] is None:
        return set()
    return {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}


def pending(conninfo: str, directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """The migrations not yet recorded in the database, without changing anything."""
    migrations = discover(directory)
    with connect(conninfo, autocommit=True) as conn:
        done = _applied(conn)
    return [m for m in migrations if m.version not in done]


def migrate(
    conninfo: str,
    *,
    directory: Path = MIGRATIONS_DIR,
    log: Callable[[str], None] = lambda _msg: None,
) -> list[Migration]:
    """Apply every pending migration; returns those applied (empty when up to date)."""
    migrations = discover(directory)
    applied: list[Migration] = []
    with connect(conninfo, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (ADVISORY_LOCK_KEY,))
        try:
            conn.execute(_CREATE_LEDGER)
            done = _applied(conn)
            for migration in migrations:
                if migration.version in done:
                    continue
                log(f"applying {migration.name}")
                try:
                    with conn.transaction():
                        conn.execute(migration.sql())
                        conn.execute(
                            "INSERT INTO schema_migrations (version, name, checksum) "
                            "VALUES (%s, %s, %s)",
                            (migration.version, migration.name, migration.checksum()),
                        )
                except psycopg.Error as exc:
                    message = (exc.diag.message_primary or str(exc)).strip()
                    raise MigrationError(f"{migration.name} failed: {message}") from None
                applied.append(migration)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (ADVISORY_LOCK_KEY,))
    return applied
