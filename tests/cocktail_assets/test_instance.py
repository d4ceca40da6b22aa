"""dagster.yaml loads as a Dagster instance on the real PostgreSQL server."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest
from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage

from cocktail_assets.db.connection import dagster_storage_url

ROOT = Path(__file__).resolve().parents[2]


def test_dagster_yaml_is_a_postgres_instance_with_the_refresh_limit(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DAGSTER_HOME", str(ROOT))
    monkeypatch.setenv("DAGSTER_PG_URL", dagster_storage_url(db_url))
    monkeypatch.setenv("COCKTAIL_DAGSTER_STORAGE", str(tmp_path / "storage"))
    monkeypatch.setenv("COCKTAIL_DAGSTER_COMPUTE_LOGS", str(tmp_path / "logs"))
    with dg.DagsterInstance.get() as instance:
        assert isinstance(instance.run_storage, PostgresRunStorage)
        assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
        limits = instance.get_concurrency_config().run_queue_config.tag_concurrency_limits
        assert {"key": "cocktail-assets/refresh", "limit": 1} in [
            {k: v for k, v in limit.items() if k in ("key", "limit")} for limit in limits
        ]
        assert not instance.telemetry_enabled
        run = instance.create_run_for_job(
            dg.GraphDefinition("noop", node_defs=[]).to_job(), run_id=None
        )
        assert instance.get_run_by_id(run.run_id) is not None
        instance.report_engine_event("stored in postgres", run)  # the NOTIFY path of events
        assert any(
            "stored in postgres" in (e.message or "") for e in instance.all_logs(run.run_id)
        )
