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

def _instance_env(monkeypatch: pytest.MonkeyPatch, db_url: str, tmp_path: Path) -> None:
    monkeypatch.setenv("DAGSTER_HOME", str(ROOT))
    monkeypatch.setenv("DAGSTER_PG_URL", dagster_storage_url(db_url))
    monkeypatch.setenv("COCKTAIL_DAGSTER_STORAGE", str(tmp_path / "storage"))
    monkeypatch.setenv("COCKTAIL_DAGSTER_COMPUTE_LOGS", str(tmp_path / "logs"))


def test_every_analytics_run_submitted_is_a_refresh_run(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The UI's Materialize runs Dagster's own asset job: the coordinator makes it a refresh
    run (tag and trigger) before it is queued, so the one-refresh limit holds for it; a run
    that only observes the sources stays what it is."""
    from cocktail_assets.definitions import defs
    from cocktail_assets.instance import RefreshRunCoordinator
    from cocktail_assets.tags import REFRESH_TAG, TRIGGER_TAG

    _instance_env(monkeypatch, db_url, tmp_path)
    job = defs.resolve_implicit_global_asset_job_def()
    with dg.DagsterInstance.get() as instance:
        assert isinstance(instance.run_coordinator, RefreshRunCoordinator)
        space = dg.AssetKey(["spaces", "cocktail_space"])
        ui_run = instance.create_run_for_job(
            job, asset_selection=frozenset({space}), tags={"dagster/from_ui": "true"})
        observe = instance.create_run_for_job(
            job, asset_selection=frozenset({dg.AssetKey(["site", "ratings"])}))
        backfill = instance.create_run_for_job(
            job, asset_selection=frozenset({space}), tags={"dagster/backfill": "abc"})
        queued: dict[str, dict[str, str]] = {}

        def enqueue(self, context: dg.SubmitRunContext) -> dg.DagsterRun:
            # what the queue receives (the real one needs a code location's job origin)
            queued[context.dagster_run.run_id] = dict(context.dagster_run.tags)
            return context.dagster_run

        monkeypatch.setattr(dg.QueuedRunCoordinator, "submit_run", enqueue)
        for run in (ui_run, observe, backfill):
            instance.run_coordinator.submit_run(dg.SubmitRunContext(run, workspace=None))
            assert queued[run.run_id] == instance.get_run_by_id(run.run_id).tags
        assert queued[ui_run.run_id][REFRESH_TAG] == "true"
        assert queued[ui_run.run_id][TRIGGER_TAG] == "ui"
        assert queued[backfill.run_id][TRIGGER_TAG] == "backfill"
        assert REFRESH_TAG not in queued[observe.run_id]


def test_plain_dg_and_dagster_commands_need_no_variable(tmp_path: Path) -> None:
    """In the project folder, with no DAGSTER_HOME, DAGSTER_PG_URL or DATABASE_URL, Dagster's
    own commands find the instance (dagster.yaml, on the embedded default) and load the code
    location. This is also CI's `dg check defs`."""
    import os
    import subprocess
    import sys
    import tempfile

    from cocktail_assets.db.embedded import stop_embedded

    local = Path(tempfile.mkdtemp(prefix="cocktail-assets-dg-"))  # reachable by pgserver's user
    local.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "COCKTAIL_"))
           and k not in ("DATABASE_URL", "ANALYTICS_BUCKET", "AWS_ENDPOINT_URL")}
    env["COCKTAIL_LOCAL_DIR"] = str(local)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(Path(sys.executable).parent.parent)
    try:
        for command in (["dg", "check", "defs"], ["dg", "list", "defs"],
                        ["dagster", "definitions", "validate"]):
            done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                                  timeout=300)
            output = done.stdout + done.stderr
            assert done.returncode == 0, f"{' '.join(command)}:\n{output}"
            assert "DAGSTER_PG_URL" not in output and "XDG_RUNTIME_DIR" not in output, output
        assert "refresh_sensor" in subprocess.run(
            ["dg", "list", "defs"], cwd=ROOT, env=env, capture_output=True, text=True,
            timeout=300).stdout
    finally:
        stop_embedded(local)


@pytest.mark.parametrize("where", ["local", "s3"])
def test_the_webserver_route_serves_previews_from_the_store(
    where: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    """/logs/previews/<stem>/png resolves, through the compute-log manager, to a local copy of
    the preview in the analytics store (S3 when a Batch step wrote it); anything that is not a
    preview name keeps Dagster's own compute-log path."""
    from cocktail_assets.environments import read_settings, store_resource
    from cocktail_assets.instance import ProjectComputeLogManager
    from cocktail_assets.previews import preview_metadata

    monkeypatch.setenv("COCKTAIL_LOCAL_DIR", str(tmp_path / "local"))
    monkeypatch.delenv("COCKTAIL_DAGSTER_COMPUTE_LOGS", raising=False)
    if where == "s3":
        monkeypatch.setenv("ANALYTICS_BUCKET", request.getfixturevalue("s3_bucket"))
    store = store_resource(read_settings())
    png = b"\x89PNG\r\n\x1a\n" + b"picture"
    markdown = preview_metadata(store, "cocktail-space", png, "cocktail-space").value
    stem = markdown.split("/logs/previews/")[1].split("/png")[0]
    manager = ProjectComputeLogManager()
    served = Path(manager.get_captured_local_path(["previews", stem], "png"))
    assert served.read_bytes() == png
    assert served.is_relative_to(tmp_path / "local" / "dagster" / "compute_logs")
    absent = f"cocktail-space-{'0' * 16}"
    assert not Path(manager.get_captured_local_path(["previews", absent], "png")).exists()
    with pytest.raises(ValueError, match="Invalid path"):  # Dagster's own check still applies
        manager.get_captured_local_path(["previews", "../../../etc/passwd"], "png")
