"""Database settings and failures give one line naming host and database, never a secret."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from cocktail_assets.db.connection import connect
from cocktail_assets.environments import read_settings
from cocktail_assets.errors import ConfigError, DatabaseUnavailable
from cocktail_assets.resources.database import CocktailDatabase


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cocktail_assets.cli", *args],
        capture_output=True, text=True, env={**os.environ, **env}, timeout=120,
    )


def test_snapshot_is_repeatable_read_and_read_only(db_url: str) -> None:
    database = CocktailDatabase(url=db_url)
    with database.snapshot() as conn:
        level = conn.execute("SHOW transaction_isolation").fetchone()
        read_only = conn.execute("SHOW transaction_read_only").fetchone()
        assert level == ("repeatable read",) and read_only == ("on",)
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute("INSERT INTO units (name) VALUES ('nope')")


def test_unreachable_host_names_host_and_database() -> None:
    url = "postgresql://app:s3cret-pw@127.0.0.1:1/sitedb"
    with pytest.raises(DatabaseUnavailable) as info, connect(url):
        pass
    message = str(info.value)
    assert "127.0.0.1:1/sitedb" in message and "s3cret-pw" not in message


def test_wrong_password_is_one_line_without_the_password(
    db_url: str, pg_admin_url: str
) -> None:
    params = conninfo_to_dict(pg_admin_url)
    host = params.get("host", "")
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute("DROP ROLE IF EXISTS pw_user")
        conn.execute("CREATE ROLE pw_user LOGIN PASSWORD 'right-password'")
        hba = Path(conn.execute("SHOW hba_file").fetchone()[0])
    original = hba.read_text() if hba.exists() else None
    if original is not None and host.startswith("/"):
        # The embedded server trusts every local login; demand a password from this role only.
        hba.write_text("local all pw_user scram-sha-256\n" + original)
        with psycopg.connect(pg_admin_url, autocommit=True) as conn:
            conn.execute("SELECT pg_reload_conf()")
    try:
        wrong = make_conninfo(db_url, user="pw_user", password="wrong-password")
        result = _cli("migrate", "--dry-run", env={"DATABASE_URL": wrong})
        assert result.returncode == 2, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in result.stderr
        assert "password authentication failed" in lines[0]
        assert "wrong-password" not in result.stderr
        dbname = conninfo_to_dict(db_url)["dbname"]
        assert f"/{dbname}" in lines[0]
    finally:
        if original is not None and host.startswith("/"):
            hba.write_text(original)
            with psycopg.connect(pg_admin_url, autocommit=True) as conn:
                conn.execute("SELECT pg_reload_conf()")


def test_cli_unreachable_database_exits_2_with_one_line() -> None:
    result = _cli("migrate", env={"DATABASE_URL": "postgresql://u:pw@127.0.0.1:1/sitedb"})
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "127.0.0.1:1/sitedb" in result.stderr


def test_malformed_database_url_is_a_config_error_naming_it() -> None:
    with pytest.raises(ConfigError, match="DATABASE_URL is malformed"):
        read_settings({"DATABASE_URL": "postgresql://host:notaport/db?sslmode"})
    result = _cli("refresh", env={"DATABASE_URL": "host=x port"})
    assert result.returncode == 2 and "DATABASE_URL is malformed" in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_numeric_setting_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="ANALYTICS_DEBOUNCE_MINUTES"):
        read_settings({"ANALYTICS_DEBOUNCE_MINUTES": "soon"})
