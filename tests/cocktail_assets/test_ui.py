"""The Dagster UI for real: webserver and daemon started on this project's workspace.

Lineage is browsed and an asset materialized through the webserver's GraphQL API, exactly the
calls the UI makes, with the run going through the daemon's queue.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from cocktail_assets.db.connection import dagster_storage_url
from cocktail_assets.db.seed import seed_sample
from tests.cocktail_assets.webserver import free_port, graphql

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


@pytest.fixture
def dagster_ui(db_url: str, database_factory, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """Webserver and daemon with the sensor effectively idle (one tick an hour)."""
    yield from _start_dagster(db_url, database_factory, tmp_path, sensor_interval=3600)


@pytest.fixture
def dagster_eager_sensor(
    db_url: str, database_factory, tmp_path: Path
) -> Iterator[tuple[str, Path]]:
    """Webserver and daemon whose refresh sensor ticks every 5 s with no debounce."""
    yield from _start_dagster(
        db_url, database_factory, tmp_path, sensor_interval=5, debounce_minutes=0
    )


def _start_dagster(
    db_url: str, database_factory, tmp_path: Path, *, sensor_interval: int,
    debounce_minutes: float = 15,
) -> Iterator[tuple[str, Path]]:
    with psycopg.connect(db_url) as conn:
        seed_sample(conn)
    store = tmp_path / "artifacts"
    env = {
        **os.environ,
        "DAGSTER_HOME": str(ROOT),
        "DAGSTER_PG_URL": dagster_storage_url(database_factory(migrated=False)),
        "COCKTAIL_DAGSTER_STORAGE": str(tmp_path / "dagster"),
        "COCKTAIL_DAGSTER_COMPUTE_LOGS": str(tmp_path / "logs"),
        "DATABASE_URL": db_url,
        "COCKTAIL_ENV": "local",
        "COCKTAIL_LOCAL_DIR": str(tmp_path),
        "ANALYTICS_SENSOR_INTERVAL_SECONDS": str(sensor_interval),
        "ANALYTICS_DEBOUNCE_MINUTES": str(debounce_minutes),
    }
    env.pop("ANALYTICS_BUCKET", None)
    env.pop("AWS_ENDPOINT_URL", None)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    workspace = str(ROOT / "workspace.yaml")
    logs = [open(tmp_path / name, "w") for name in ("webserver.log", "daemon.log")]  # noqa: SIM115
    procs = [
        subprocess.Popen([str(BIN / "dagster-webserver"), "-w", workspace, "-h", "127.0.0.1",
                          "-p", str(port)], env=env, cwd=ROOT, stdout=logs[0],
                         stderr=subprocess.STDOUT),
        subprocess.Popen([str(BIN / "dagster-daemon"), "run", "-w", workspace], env=env,
                         cwd=ROOT, stdout=logs[1], stderr=subprocess.STDOUT),
    ]
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{url}/server_info", timeout=5):
                    break
            except OSError:
                if time.monotonic() > deadline or procs[0].poll() is not None:
                    raise AssertionError(
                        "webserver did not start:\n" + (tmp_path / "webserver.log").read_text()
                    ) from None
                time.sleep(1)
        yield url, store
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        for log in logs:
            log.close()


LINEAGE = """
{ assetNodes { assetKey { path } dependencyKeys { path } groupName isObservable } }
"""
LAUNCH = """
mutation Launch($params: ExecutionParams!) {
  launchPipelineExecution(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
    ... on InvalidSubsetError { message }
  }
}
"""
STATUS = "query R($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }"
RUN_TAGS = "query R($id: ID!) { runOrError(runId: $id) { ... on Run { tags { key value } } } }"
RUN_LOGS = """
query L($id: ID!) {
  logsForRun(runId: $id) { ... on EventConnection { events { ... on MessageEvent { message } } } }
}
"""


def test_lineage_is_browsable_and_an_asset_materializes_from_the_ui(
    dagster_ui: tuple[str, Path],
) -> None:
    url, store = dagster_ui
    nodes = {
        "/".join(n["assetKey"]["path"]): n for n in graphql(url, LINEAGE)["assetNodes"]
    }
    assert nodes["site/ratings"]["isObservable"]
    deps = {k: {"/".join(d["path"]) for d in n["dependencyKeys"]} for k, n in nodes.items()}
    assert "spaces/em_fit" in deps["spaces/cocktail_space_em"]
    assert "site/recipe_ingredients" in deps["analytics/recipe_complexity"]
    assert nodes["spaces/cocktail_space"]["groupName"] == "spaces"

    # What the UI's Materialize button sends: Dagster's own asset job, tagged from_ui.
    params = {
        "selector": {
            "repositoryLocationName": "cocktail_assets",
            "repositoryName": "__repository__",
            "pipelineName": "__ASSET_JOB",
            "assetSelection": [{"path": ["analytics", "recipe_complexity"]}],
        },
        "mode": "default",
        "executionMetadata": {"tags": [{"key": "dagster/from_ui", "value": "true"}]},
    }
    launched = graphql(url, LAUNCH, {"params": params})["launchPipelineExecution"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    run_id = launched["run"]["runId"]
    deadline = time.monotonic() + 240
    status = None
    while time.monotonic() < deadline:
        status = graphql(url, STATUS, {"id": run_id})["runOrError"]["status"]
        if status in ("SUCCESS", "FAILURE", "CANCELED"):
            break
        time.sleep(2)
    assert status == "SUCCESS"
    # a refresh run (one at a time, shown by status with its trigger), executed in one process
    tags = {t["key"]: t["value"] for t in graphql(url, RUN_TAGS, {"id": run_id})[
        "runOrError"]["tags"]}
    assert tags["cocktail-assets/refresh"] == "true"
    assert tags["cocktail-assets/trigger"] == "ui"
    assert "cocktail-assets/change-snapshot" in tags
    messages = [e["message"] for e in graphql(url, RUN_LOGS, {"id": run_id})[
        "logsForRun"]["events"]]
    assert any(m.startswith("Executing steps in process") for m in messages), messages
    document = json.loads((store / "analytics" / "v1" / "recipe-complexity.json").read_text())
    assert document["metadata"]["analytics_type"] == "recipe-complexity"
    assert sum(row["recipe_count"] for row in document["data"]) > 100


RUNS = """
query Runs($filter: RunsFilter) {
  runsOrError(filter: $filter) { ... on Runs { results { runId status tags { key value } } } }
}
"""


def test_the_daemon_sensor_refreshes_after_an_edit_and_settles_it(
    dagster_eager_sensor: tuple[str, Path], db_url: str
) -> None:
    """Sensor-driven auto refresh for real: the daemon's tick launches the run."""
    url, store = dagster_eager_sensor
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("UPDATE units SET conversion_to_ml = 30 WHERE name = 'oz'")
    deadline = time.monotonic() + 420
    succeeded: list[dict] = []
    while time.monotonic() < deadline and not succeeded:
        runs = graphql(url, RUNS, {"filter": {"tags": [
            {"key": "cocktail-assets/trigger", "value": "sensor"}]}})["runsOrError"]["results"]
        assert not [r for r in runs if r["status"] == "FAILURE"], runs
        succeeded = [r for r in runs if r["status"] == "SUCCESS"]
        time.sleep(3)
    assert succeeded, "no sensor-triggered refresh succeeded in time"
    space = json.loads((store / "analytics" / "v1" / "cocktail-space.json").read_text())
    assert len(space["data"]) > 100
    # The run covered every pending edit (the seed's and the units change): all settled.
    deadline = time.monotonic() + 60
    with psycopg.connect(db_url, autocommit=True) as conn:
        while True:
            pending = conn.execute(
                "SELECT count(*) FROM analytics_change_log WHERE settled_at IS NULL"
            ).fetchone()
            if pending == (0,) or time.monotonic() > deadline:
                break
            time.sleep(2)
    assert pending == (0,)
