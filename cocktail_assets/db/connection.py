"""Connection handling for PostgreSQL: connect, validate and describe a conninfo, and the
same server under another database. A leaf module: every other part that opens a connection
(migrations, the embedded server, the database resource, the CLI) goes through it."""

from __future__ import annotations

import re
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


_QUOTED = re.compile(r'"[^"]*"')
_URL_FORM = "postgresql://user:password@host:port/dbname or key=value pairs"


def _redacted_reason(exc: Exception, conninfo: str) -> str:
    """psycopg's parse error without the text it quotes (it echoes the string, password
    and all); nothing of it at all if a piece of the string still shows."""
    first = (str(exc).strip().splitlines() or ["cannot be parsed"])[0]
    reason = _QUOTED.sub("…", first).replace(" in connection info string", "").strip()
    pieces = [p for p in re.split(r"[:/@?&=\s]+", conninfo) if len(p) >= 3]
    if any(p in reason for p in pieces):
        return "cannot be parsed"
    return reason


def validate_conninfo(conninfo: str, setting: str = "DATABASE_URL") -> str:
    """Check that a connection string parses; a malformed one is a ConfigError naming the
    setting and the problem, never the string (it may hold the password)."""
    try:
        params = conninfo_to_dict(conninfo)
    except psycopg.ProgrammingError as exc:
        raise ConfigError(
            f"{setting} is malformed ({_redacted_reason(exc, conninfo)}); expected {_URL_FORM}"
        ) from None
    port = str(params.get("port") or "5432")
    if not all(p.isdigit() and 0 < int(p) < 65536 for p in port.split(",")):
        raise ConfigError(f"{setting} is malformed (port {port!r} is not a number from 1 to "
                          f"65535); expected {_URL_FORM}")
    return conninfo


def check_dagster_storage(url: str, setting: str = "DAGSTER_PG_URL") -> None:
    """Fail fast, in one line, on a Dagster storage URL that is malformed or unreachable,
    instead of Dagster's retries and tracebacks. Never echoes the URL."""
    from urllib.parse import urlsplit

    scheme, sep, rest = url.partition("://")
    if not sep or not scheme.startswith("postgres"):
        raise ConfigError(f"{setting} is malformed; expected postgresql+psycopg2://user:password"
                          "@host:port/dbname")
    try:
        parts = urlsplit("postgresql://" + rest)
        parts.port  # noqa: B018 (raises on a bad port)
    except ValueError:
        raise ConfigError(f"{setting} is malformed (bad host or port); expected "
                          "postgresql+psycopg2://user:password@host:port/dbname") from None
    conninfo = "postgresql://" + rest
    validate_conninfo(conninfo, setting)
    try:
        psycopg.connect(conninfo, connect_timeout=5).close()
    except psycopg.OperationalError as exc:
        raise DatabaseUnavailable(
            f"cannot connect to the Dagster instance database {describe_conninfo(conninfo)} "
            f"({setting}): {_reason(exc)}"
        ) from None


def _reason(exc: psycopg.OperationalError) -> str:
    """libpq's first line without its 'connection to server at … failed:' preamble."""
    reason = (str(exc).strip().splitlines() or ["connection failed"])[0]
    reason = re.sub(r"^(connection failed: )?connection to server .*? failed: ", "", reason)
    return reason.strip().removeprefix("FATAL:").strip() or "connection failed"


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


def _open(conninfo: str, **kwargs: object) -> psycopg.Connection:
    validate_conninfo(conninfo)
    try:
        return psycopg.connect(conninfo, connect_timeout=10, **kwargs)  # type: ignore[arg-type]
    except psycopg.OperationalError as exc:
        raise DatabaseUnavailable(
            f"cannot connect to database {describe_conninfo(conninfo)}: {_reason(exc)}"
        ) from None


@contextmanager
def connect(conninfo: str, *, autocommit: bool = False) -> Iterator[psycopg.Connection]:
    """Open a connection, turning 'cannot connect' into one line that names host and database."""
    conn = _open(conninfo, autocommit=autocommit)
    with conn:
        yield conn


def open_session(conninfo: str, application_name: str) -> psycopg.Connection:
    """A long-lived autocommit session named ``application_name`` (the analytics lock's).

    TCP keepalives on both ends: if the host dies or the network goes, the server ends the
    session (and releases its locks) within about a minute instead of hours.
    """
    conn = _open(
        conninfo, autocommit=True, application_name=application_name,
        keepalives=1, keepalives_idle=30, keepalives_interval=10, keepalives_count=3,
    )
    conn.execute("SET tcp_keepalives_idle = 30")
    conn.execute("SET tcp_keepalives_interval = 10")
    conn.execute("SET tcp_keepalives_count = 3")
    return conn
