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
        # One run of the code location in progress at a time, whatever job or tags it has.
        assert {"key": "dagster/code_location", "value": "cocktail_assets", "limit": 1} in [
            {k: v for k, v in limit.items() if k in ("key", "value", "limit")}
            for limit in limits
        ]
        assert instance.run_monitoring_enabled
        assert not instance.telemetry_enabled
        run = instance.create_run_for_job(
            dg.GraphDefinition("noop", node_defs=[]).to_job(), run_id=None
        )
        assert instance.get_run_by_id(run.run_id) is not None
        instance.report_engine_event("stored in postgres", run)  # the NOTIFY path of events
        assert any(
            "stored in postgres" in (e.message or "") for e in instance.all_logs(run.run_id)
        )


def test_every_job_of_the_code_location_runs_in_process_under_the_analytics_lock() -> None:
    """Dagster's own asset job (UI Materialize, backfills) included: a per-process lock
    would not hold across a multiprocess executor's step subprocesses."""
    from cocktail_assets.definitions import build_defs
    from cocktail_assets.environments import read_settings
    from cocktail_assets.refresh.jobs import analytics_executor

    defs = build_defs(read_settings({}))
    repo = defs.get_repository_def()
    jobs = [repo.get_job(name) for name in repo.job_names]
    assert any(name.startswith("__ASSET_JOB") for name in repo.job_names)
    assert {job.executor_def.name for job in jobs} == {analytics_executor.name}

