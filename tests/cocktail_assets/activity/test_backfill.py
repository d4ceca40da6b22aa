"""``cocktail-assets backfill`` for real: a Dagster backfill run by the daemon it starts."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import psycopg
import pytest

from cocktail_assets.activity.backfill import (
    LIVE_HEARTBEAT_SECONDS,
    daemon_heartbeat_age,
    day_range,
    planned_runs,
)
from cocktail_assets.db.connection import dagster_storage_url
from cocktail_assets.environments import read_settings
from cocktail_assets.errors import ConfigError
from tests.cocktail_assets.activity.conftest import at, days_ago
from tests.dagster_private import DaemonHeartbeat

ROOT = Path(__file__).resolve().parents[3]
BIN = Path(sys.executable).parent


def test_a_30_day_backfill_publishes_30_artifacts_in_the_planned_runs(
    db_url: str, database_factory, tmp_path: Path
) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("INSERT INTO recipes (name, created_by, created_at) VALUES ('x', 'u1', %s)",
                     (at(days_ago(12), "13:00:00"),))
    storage_url = dagster_storage_url(database_factory(migrated=False))
    env = {
        **os.environ,
        "DAGSTER_HOME": str(ROOT),
        "DAGSTER_PG_URL": storage_url,
        "COCKTAIL_DAGSTER_STORAGE": str(tmp_path / "dagster"),
        "COCKTAIL_DAGSTER_COMPUTE_LOGS": str(tmp_path / "logs"),
        "DATABASE_URL": db_url,
        "COCKTAIL_ENV": "local",
        "COCKTAIL_LOCAL_DIR": str(tmp_path),
        "ANALYTICS_SENSOR_INTERVAL_SECONDS": "3600",
        "ACTIVITY_START_DATE": days_ago(40).isoformat(),
        "ACTIVITY_BACKFILL_DAYS_PER_RUN": "7",
    }
    for key in ("ANALYTICS_BUCKET", "AWS_ENDPOINT_URL"):
        env.pop(key, None)
    proc = subprocess.run(
        [str(BIN / "cocktail-assets"), "backfill", "--start", days_ago(30).isoformat(),
         "--end", days_ago(1).isoformat(), "--timeout-minutes", "8"],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    daemon_log = tmp_path / "dagster" / "backfill-daemon.log"
    assert proc.returncode == 0, proc.stdout + proc.stderr + (
        daemon_log.read_text() if daemon_log.exists() else "")
    lines = proc.stdout.splitlines()
    assert re.match(r"backfill \w+: 30 day\(s\) .* in 5 run\(s\) of at most 7 days", lines[0])
    progress = [line for line in lines if re.match(r"\[\d+/30\] \d{4}-\d\d-\d\d materialized", line)]
    assert len(progress) == 30
    assert {line.split()[1] for line in progress} == {days_ago(n).isoformat() for n in range(1, 31)}
    assert len({re.search(r"run (\w+)", line).group(1) for line in progress}) == 5
    assert re.search(r"completed_success: 30 of 30 day\(s\) in 5 run\(s\)$", lines[-1])

    folder = tmp_path / "artifacts" / "analytics" / "v1" / "activity"
    assert len(list(folder.glob("*.json"))) == 30
    busy = json.loads((folder / f"{days_ago(12).isoformat()}.json").read_text())["data"]
    assert busy["recipes_created"] == 1 and busy["active_users"] == 1

    os.environ.update({k: env[k] for k in ("DAGSTER_HOME", "DAGSTER_PG_URL",
                                           "COCKTAIL_DAGSTER_STORAGE",
                                           "COCKTAIL_DAGSTER_COMPUTE_LOGS")})
    with dg.DagsterInstance.get() as instance:
        (backfill,) = instance.get_backfills()
        assert backfill.is_asset_backfill  # what the UI's partition view launches
        runs = instance.get_runs(dg.RunsFilter(tags={"dagster/backfill": backfill.backfill_id}))
        assert len(runs) == 5 and all(r.status == dg.DagsterRunStatus.SUCCESS for r in runs)


def test_the_range_is_checked_against_the_partitions() -> None:
    settings = read_settings({"ACTIVITY_START_DATE": "2026-01-01"})
    assert len(day_range(settings, "2026-01-01", "2026-12-31",
                         now=at(days_ago(0), "00:00:00").replace(year=2027))) == 365
    with pytest.raises(ConfigError, match="before ACTIVITY_START_DATE"):
        day_range(settings, "2025-12-31", "2026-01-02")
    with pytest.raises(ConfigError, match="is before --start"):
        day_range(settings, "2026-01-05", "2026-01-02")
    with pytest.raises(ConfigError, match="not a complete UTC day"):
        day_range(settings, "2026-01-05", "2999-01-01")
    with pytest.raises(ConfigError, match="YYYY-MM-DD"):
        day_range(settings, "yesterday", "2026-01-02")
    assert planned_runs(365, 31) == 12 and planned_runs(30, 7) == 5


def test_a_bad_range_is_one_line_with_status_2(capsys: pytest.CaptureFixture[str]) -> None:
    from cocktail_assets.cli import EXIT_USER_ERROR, main

    assert main(["backfill", "--start", "2026-02-30", "--end", "2026-03-01"]) == EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert err.startswith("cocktail-assets: --start/--end must be dates YYYY-MM-DD")
    assert err.count("\n") == 1


def test_only_a_daemon_beating_now_counts_as_running(
    database_factory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Dagster calls a daemon healthy for half an hour after its last heartbeat; the backfill
    must not wait for a daemon stopped minutes ago (a closed `cocktail-assets ui`)."""
    monkeypatch.setenv("DAGSTER_HOME", str(ROOT))
    monkeypatch.setenv("DAGSTER_PG_URL", dagster_storage_url(database_factory(migrated=False)))
    monkeypatch.setenv("COCKTAIL_DAGSTER_STORAGE", str(tmp_path / "dagster"))
    monkeypatch.setenv("COCKTAIL_DAGSTER_COMPUTE_LOGS", str(tmp_path / "logs"))
    with dg.DagsterInstance.get() as instance:
        assert daemon_heartbeat_age(instance) is None  # never ran

        def beat(seconds_ago: float) -> None:
            for kind in ("BACKFILL", "QUEUED_RUN_COORDINATOR"):
                instance.add_daemon_heartbeat(
                    DaemonHeartbeat(time.time() - seconds_ago, kind, "test-daemon"))

        beat(10)
        age = daemon_heartbeat_age(instance)
        assert age is not None and 10 <= age < 10 + 30
        beat(10 * 60)  # stopped ten minutes ago
        assert all(s.healthy for s in instance.get_daemon_statuses(["BACKFILL"]).values())
        assert daemon_heartbeat_age(instance) is None
        beat(LIVE_HEARTBEAT_SECONDS - 30)
        assert daemon_heartbeat_age(instance) is not None
