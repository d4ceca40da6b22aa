"""Connection handling for PostgreSQL: connect, validate and describe a conninfo, and the
same server under another database. A leaf module: every other part that opens a connection
(migrations, the embedded server, the database resource, the CLI) goes through it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

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
