"""``cocktail-assets status``: the sensor's view, for a person."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import dagster as dg
import psycopg
import pytest

from cocktail_assets.db.connection import dagster_storage_url
from cocktail_assets.definitions import build_defs
from cocktail_assets.environments import read_settings
from cocktail_assets.refresh.jobs import JOB_NAME
from cocktail_assets.refresh.policy import Policy
from cocktail_assets.refresh.status import print_status, status_lines
from cocktail_assets.tags import REFRESH_TAG
from tests.cocktail_assets.refresh.conftest import Toy, about

ROOT = Path(__file__).resolve().parents[3]


def _status(toy: Toy) -> str:
    graph = toy.defs().resolve_asset_graph()
    return "\n".join(
        status_lines(toy.instance, toy.database(), graph, Policy.from_minutes(15, 60), 30)
    )


def test_status_shows_pending_tables_times_runs_and_the_verdict(site: Toy) -> None:
    toy = site
    assert "pending changes: none" in _status(toy)
    toy.sql("UPDATE recipes SET name = name || '!'")
    toy.sql("UPDATE recipes SET name = name || '!'")
    toy.sql("INSERT INTO tags (name) VALUES ('tiki')")
    toy.advance(5)
    text = _status(toy)
    assert "debounce 15m00s, max wait 1h00m, sensor every 30s" in text
    assert "  recipes        2  " in text
    assert "tags" in text and "no asset reads it: settled by the next tick" in text
    assert re.search(f"quiet time left: {about(10)}; max-wait time left: {about(55)}", text)
    assert "refresh run in progress: none" in text and "last refresh run: none" in text
    assert "sensor: no tick recorded yet" in text
    assert "the sensor would now skip: debouncing." in text
    assert toy.pending() == {"recipes": 2, "tags": 1}  # status changes nothing

    toy.advance(11)
    text = _status(toy)
    assert "the sensor would now request a run (key changes-" in text
    assert "catalog/recipe_volumes, spaces/cocktail_space" in text
    assert toy.fulfil(toy.tick().run_requests[0]).success
    text = _status(toy)
    assert "last refresh run:" in text and "SUCCESS" in text and "trigger sensor" in text

    running = toy.instance.create_run_for_job(
        toy.defs().resolve_job_def(JOB_NAME), tags={REFRESH_TAG: "true"},
        status=dg.DagsterRunStatus.STARTED,
    )
    assert f"refresh run in progress: {running.run_id} (STARTED)" in _status(toy)


def test_print_status_opens_the_projects_instance(
    db_url: str, database_factory: Callable[..., str], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The instance of dagster.yaml (storage in PostgreSQL), as the CLI opens it.
    for name, value in {
        "DAGSTER_HOME": str(ROOT), "DAGSTER_PG_URL": dagster_storage_url(database_factory()),
        "COCKTAIL_DAGSTER_STORAGE": str(tmp_path / "storage"),
        "COCKTAIL_DAGSTER_COMPUTE_LOGS": str(tmp_path / "logs"),
    }.items():
        monkeypatch.setenv(name, value)
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("INSERT INTO units (name) VALUES ('dash')")
    settings = read_settings({"DATABASE_URL": db_url, "COCKTAIL_LOCAL_DIR": str(tmp_path)})
    lines: list[str] = []
    code = print_status(settings, build_defs(settings).resolve_asset_graph(), out=lines.append)
    text = "\n".join(lines)
    # nothing published yet, no check evaluated, the pending edit is fresh: exit status 0
    assert code == 0, text
    assert "  spaces/recipe_similarity: never materialized" in text
    assert "monitoring: OK" in text
    assert "units" in text
    assert re.search(f"quiet time left: {about(15)};", text), text
    assert "the sensor would now skip: debouncing." in text
