"""The embedded default: a PostgreSQL server of the project's own, with the sample data.

With no DATABASE_URL, the project runs against a server started from the ``pgserver`` package
whose data lives in the git-ignored ``.local/pgdata`` folder. It holds two databases: the
site's (``cocktails``, migrated and seeded on first use) and Dagster's instance storage
(``dagster``). The server stops when the last process that uses it exits.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from cocktail_assets.db.migrate import migrate
from cocktail_assets.db.seed import seed_sample
from cocktail_assets.errors import DatabaseUnavailable
from cocktail_assets.paths import DEFAULT_LOCAL_DIR

ANALYTICS_DB = "cocktails"
DAGSTER_DB = "dagster"


@dataclass(frozen=True)
class EmbeddedDatabases:
    analytics_url: str
    dagster_url: str


@cache
def ensure_embedded(local_dir: Path = DEFAULT_LOCAL_DIR) -> EmbeddedDatabases:
    """Start (or join) the embedded server; create, migrate and seed its databases once."""
    import psycopg

    with warnings.catch_warnings():
        # pgserver finds its lock folder through platformdirs on import, which warns (once per
        # process: every Dagster process joins the server) when XDG_RUNTIME_DIR is unset, as
        # outside a login session; the fallback it then uses, /tmp/runtime-<uid>, is fine.
        warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
        import pgserver  # only the embedded default needs it (not in the arm64 Batch image)

    pgdata = Path(local_dir) / "pgdata"
    pgdata.mkdir(parents=True, exist_ok=True)
    logging.getLogger("pgserver").setLevel(logging.WARNING)
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            server = pgserver.get_server(pgdata, cleanup_mode="stop")
    except Exception as exc:  # pgserver raises plain subprocess / assertion errors
        raise DatabaseUnavailable(
            f"cannot start the embedded PostgreSQL in {pgdata}: {exc} (see {pgdata / 'log'})"
        ) from None
    admin = server.get_uri("postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        existing = {r[0] for r in conn.execute("SELECT datname FROM pg_database")}
        for name in (ANALYTICS_DB, DAGSTER_DB):
            if name not in existing:
                conn.execute(f'CREATE DATABASE "{name}"')
    analytics_url = server.get_uri(ANALYTICS_DB)
    migrate(analytics_url)
    with psycopg.connect(analytics_url) as conn:
        empty = conn.execute("SELECT NOT EXISTS (SELECT 1 FROM recipes)").fetchone()
        if empty and empty[0]:
            seed_sample(conn)
    # Keep the server object alive for the life of this process (its handle stops the server).
    _servers.append(server)
    return EmbeddedDatabases(analytics_url, server.get_uri(DAGSTER_DB))


_servers: list[object] = []


def embedded_running(local_dir: Path = DEFAULT_LOCAL_DIR) -> bool:
    """Whether the embedded server of ``local_dir`` is running (its postmaster.pid names a live
    process)."""
    import psutil

    pid_file = Path(local_dir) / "pgdata" / "postmaster.pid"
    try:
        pid = int(pid_file.read_text().splitlines()[0])
    except (OSError, ValueError, IndexError):
        return False
    return psutil.pid_exists(pid)


def stop_embedded(local_dir: Path = DEFAULT_LOCAL_DIR) -> bool:
    """Stop the embedded server (fast shutdown: open sessions are closed, nothing is lost).

    The server is shared: every process of the project that uses it joins it, and it stops by
    itself when the last one exits normally. A process that was killed leaves its handle
    behind and the server running; this stops it for good. Returns False when it was not
    running.
    """
    import os

    pgdata = Path(local_dir) / "pgdata"
    if not embedded_running(local_dir):
        return False
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
        from pgserver._commands import pg_ctl

    user = "pgserver" if os.geteuid() == 0 else None  # as pgserver runs it when root
    try:
        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=user)
    except Exception as exc:  # pg_ctl's failures are subprocess errors
        raise DatabaseUnavailable(
            f"cannot stop the embedded PostgreSQL in {pgdata}: {exc} (see {pgdata / 'log'})"
        ) from None
    (pgdata / ".handle_pids.json").unlink(missing_ok=True)
    return True
