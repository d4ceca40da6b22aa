"""The cocktail site's PostgreSQL database as a Dagster resource (psycopg 3)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from dagster import ConfigurableResource, InitResourceContext
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from pydantic import PrivateAttr

from cocktail_assets.errors import ConfigError, DatabaseUnavailable


def describe_conninfo(conninfo: str) -> str:
    """'host/dbname' of a connection string, for messages: never the password."""
    params = conninfo_to_dict(conninfo)
    host = params.get("host") or "localhost"
    port = params.get("port")
    where = f"{host}:{port}" if port else str(host)
    return f"{where}/{params.get('dbname') or params.get('user') or 'postgres'}"


def validate_conninfo(conninfo: str, setting: str = "DATABASE_URL") -> str:
    """Check that a connection string parses; a malformed one is a ConfigError naming it."""
    try:
        conninfo_to_dict(conninfo)
    except psycopg.ProgrammingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "cannot be parsed"
        raise ConfigError(f"{setting} is malformed: {first}") from None
    return conninfo


def as_url(conninfo: str) -> str:
    """The same connection as a ``postgresql://`` URL (what SQLAlchemy and dagster-postgres
    accept); a Unix-socket host goes in the query string."""
    from urllib.parse import quote, urlencode

    params = conninfo_to_dict(conninfo)
    user = quote(str(params.pop("user", "") or ""), safe="")
    password = params.pop("password", None)
    auth = f"{user}:{quote(str(password), safe='')}@" if password else (f"{user}@" if user else "")
    host = str(params.pop("host", "") or "")
    port = params.pop("port", None)
    dbname = quote(str(params.pop("dbname", "") or ""), safe="")
    netloc = "" if host.startswith("/") else host + (f":{port}" if port else "")
    if host.startswith("/"):
        params["host"] = host
        if port:
            params["port"] = port
    query = f"?{urlencode(params)}" if params else ""
    return f"postgresql://{auth}{netloc}/{dbname}{query}"


def with_dbname(conninfo: str, dbname: str) -> str:
    """The same server and credentials, another database (libpq key/value form)."""
    return make_conninfo(conninfo, dbname=dbname)


def dagster_storage_url(conninfo: str) -> str:
    """A URL for dagster-postgres: it issues psycopg2-style SQL, while SQLAlchemy 2.1 maps a
    bare ``postgresql://`` to psycopg 3, so the driver is named explicitly."""
    return "postgresql+psycopg2://" + as_url(conninfo).removeprefix("postgresql://")


@contextmanager
def connect(conninfo: str, *, autocommit: bool = False) -> Iterator[psycopg.Connection]:
    """Open a connection, turning 'cannot connect' into one line that names host and database."""
    validate_conninfo(conninfo)
    try:
        conn = psycopg.connect(conninfo, autocommit=autocommit, connect_timeout=10)
    except psycopg.OperationalError as exc:
        reason = (str(exc).strip().splitlines() or ["connection failed"])[-1]
        reason = reason.removeprefix("FATAL:").strip()
        raise DatabaseUnavailable(
            f"cannot connect to database {describe_conninfo(conninfo)}: {reason}"
        ) from None
    with conn:
        yield conn


CHANGE_SNAPSHOT_TAG = "cocktail-assets/change-snapshot"


class CocktailDatabase(ConfigurableResource):
    """The site database: a DATABASE_URL, discrete settings, or the embedded default.

    With neither ``url`` nor ``host`` set, the embedded PostgreSQL of the project is started
    (and migrated and seeded on first use), so the same assets run on a laptop with no setup.
    """

    url: str | None = None
    host: str | None = None
    port: int = 5432
    dbname: str = "cocktails"
    user: str | None = None
    password: str | None = None
    embedded_dir: str | None = None  # the embedded server's folder, when nothing else is set
    require_url: bool = False  # production: never fall back to the embedded server

    _resolved: str | None = PrivateAttr(default=None)

    def conninfo(self) -> str:
        """The connection string; starting the embedded server when nothing is configured."""
        if self._resolved is None:
            if self.url:
                self._resolved = validate_conninfo(self.url)
            elif self.host:
                self._resolved = make_conninfo(
                    host=self.host, port=self.port, dbname=self.dbname,
                    user=self.user, password=self.password,
                )
            elif self.require_url:
                raise ConfigError("DATABASE_URL is not set (COCKTAIL_ENV=production)")
            else:
                from pathlib import Path

                from cocktail_assets.resources.embedded import DEFAULT_LOCAL_DIR, ensure_embedded

                local_dir = Path(self.embedded_dir) if self.embedded_dir else DEFAULT_LOCAL_DIR
                self._resolved = ensure_embedded(local_dir).analytics_url
        return self._resolved

    def setup_for_execution(self, context: InitResourceContext) -> None:
        """Record, once per run, the change-tracking snapshot before any step reads.

        Every step that reads the site initialises this resource first, so the run tag
        ``cocktail-assets/change-snapshot`` always predates the run's reads: when the run
        succeeds, the edits visible in it are covered and can be settled (refresh/settle.py).
        This holds for runs from the UI, the CLI and the sensor alike.
        """
        run = context.dagster_run
        if run is None or context.instance is None or CHANGE_SNAPSHOT_TAG in run.tags:
            return
        stored = context.instance.get_run_by_id(run.run_id)
        if stored is not None and CHANGE_SNAPSHOT_TAG in stored.tags:
            return
        from cocktail_assets.refresh.tracking import current_snapshot

        with self.connect(autocommit=True) as conn:
            snapshot = current_snapshot(conn)
        context.instance.add_run_tags(run.run_id, {CHANGE_SNAPSHOT_TAG: snapshot})

    def describe(self) -> str:
        """Host and database for logs and metadata (no password)."""
        return describe_conninfo(self.conninfo())

    @contextmanager
    def connect(self, *, autocommit: bool = False) -> Iterator[psycopg.Connection]:
        with connect(self.conninfo(), autocommit=autocommit) as conn:
            yield conn

    @contextmanager
    def snapshot(self) -> Iterator[psycopg.Connection]:
        """A REPEATABLE READ READ ONLY transaction: every read of one step sees one state."""
        with self.connect() as conn:
            conn.read_only = True
            conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            with conn.transaction():
                yield conn
