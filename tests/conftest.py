"""Shared fixtures: a real PostgreSQL server and a moto server for AWS.

PostgreSQL: the server named by ``DATABASE_URL`` (a role that may CREATE DATABASE), or one
started from the ``pgserver`` package for the session. Each test gets a fresh database copied
from a migrated template, so tests stay independent and fast.

AWS: one moto server (server mode, on loopback) for the session; tests talk to it with boto3
through ``AWS_ENDPOINT_URL`` and create their own buckets.
"""

from __future__ import annotations

import os
import socket
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from cocktail_assets.db.connection import as_url, with_dbname
from cocktail_assets.db.migrate import migrate

TEMPLATE_DB = "cocktail_assets_template"


def _with_db(url: str, dbname: str) -> str:
    return as_url(with_dbname(url, dbname))


@pytest.fixture(scope="session")
def pg_admin_url() -> Iterator[str]:
    """A connection string with CREATE DATABASE rights on a real PostgreSQL server."""
    configured = os.environ.get("DATABASE_URL")
    if configured:
        yield configured
        return
    import pgserver

    # Not under pytest's tmp_path: pytest keeps that 0700 and root-run pgserver starts postgres
    # as another user, which must be able to reach its data folder.
    pgdata = Path(tempfile.mkdtemp(prefix="cocktail-assets-pg-"))
    server = pgserver.get_server(pgdata, cleanup_mode="delete")
    yield server.get_uri("postgres")
    server.cleanup()


@pytest.fixture(scope="session")
def template_db(pg_admin_url: str) -> str:
    """Name of a database with every migration applied, to copy per test."""
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{TEMPLATE_DB}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{TEMPLATE_DB}"')
    migrate(_with_db(pg_admin_url, TEMPLATE_DB))
    return TEMPLATE_DB


def create_database(admin_url: str, template: str | None = None) -> str:
    """Create a uniquely named database (optionally from a template); returns its name."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        if template:
            # A template must have no sessions: a test that materialized into it in this
            # process may still hold the idle analytics-lock session of that run (released,
            # kept until the process exits or takes the next lock; db/run_lock.py).
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = %s AND pid <> pg_backend_pid()", (template,),
            )
        clause = f' TEMPLATE "{template}"' if template else ""
        conn.execute(f'CREATE DATABASE "{name}"{clause}')
    return name


def drop_database(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def db_url(pg_admin_url: str, template_db: str) -> Iterator[str]:
    """A fresh, migrated, empty database for one test."""
    name = create_database(pg_admin_url, template_db)
    yield _with_db(pg_admin_url, name)
    drop_database(pg_admin_url, name)


@pytest.fixture
def empty_db_url(pg_admin_url: str) -> Iterator[str]:
    """A fresh database with no schema at all (for migration tests)."""
    name = create_database(pg_admin_url)
    yield _with_db(pg_admin_url, name)
    drop_database(pg_admin_url, name)


@pytest.fixture
def database_factory(pg_admin_url: str, template_db: str) -> Iterator:
    """Make extra fresh databases in one test: ``factory(migrated=True) -> url``."""
    made: list[str] = []

    def make(migrated: bool = True) -> str:
        name = create_database(pg_admin_url, template_db if migrated else None)
        made.append(name)
        return _with_db(pg_admin_url, name)

    yield make
    for name in made:
        drop_database(pg_admin_url, name)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """A moto server on loopback; AWS credentials and region point every boto3 client at it."""
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    saved = {k: os.environ.get(k) for k in _AWS_ENV}
    os.environ.update(
        AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1", AWS_REGION="us-east-1", AWS_ENDPOINT_URL=endpoint,
    )
    yield endpoint
    server.stop()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


_AWS_ENV = (
    "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION", "AWS_REGION",
    "AWS_ENDPOINT_URL",
)


@pytest.fixture
def s3_bucket(moto_endpoint: str) -> str:
    """A new, empty bucket on the moto server."""
    import boto3

    name = f"analytics-{uuid.uuid4().hex[:10]}"
    boto3.client("s3", endpoint_url=moto_endpoint).create_bucket(Bucket=name)
    return name
