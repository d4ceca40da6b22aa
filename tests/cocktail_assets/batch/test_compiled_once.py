"""No numba compilation inside a Batch step: the cache ``cocktail-assets compile`` builds is
the one the step loads, and the step's own start-up stays within the README's bound.

The real refresh runs with the Batch launcher bound; its three heavy steps go to the test
Batch host, whose workers (``cocktail-assets-step`` subprocesses) get a copy of the cache the
install step built. Each worker records every real numba compilation during its step in its
``result.json``; the copy of the cache is also compared file by file before and after.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import dagster as dg
import psycopg
import pytest

from cocktail_assets.dagster_private import ReconstructableJob
from cocktail_assets.db.seed import seed_sample
from tests.cocktail_assets.batch.batch_host import ROOT, BatchHost, Play
from tests.cocktail_assets.batch.conftest import STAGING_PREFIX
from tests.cocktail_assets.batch.refresh_location import refresh_job

# README, "Compiled once": the worker's start-up, process start to the step's first
# event, on the 2-core development machine: 5-9 s measured under the load of parallel test
# suites, less on a quiet machine.
STARTUP_BOUND_S = 30.0
HEAVY_STEPS = {"spaces__em_fit", "spaces__cocktail_space", "spaces__cocktail_space_em"}


def _fingerprint(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*")) if p.is_file()
    }


@pytest.fixture(scope="module")
def built_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The cache the install step builds (``cocktail-assets compile``), in a folder of its own."""
    folder = tmp_path_factory.mktemp("numba-cache")
    installed = ROOT / ".local" / "numba-cache"
    if installed.is_dir():  # ./dev built it; the compile below then only loads it
        shutil.copytree(installed, folder, dirs_exist_ok=True)
    done = subprocess.run(
        [str(Path(sys.executable).with_name("cocktail-assets")), "compile"],
        env={**_env(), "NUMBA_CACHE_DIR": str(folder)}, capture_output=True, text=True,
        timeout=600, cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "numba function(s) compiled" in done.stdout, done.stdout
    return folder


def _env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("NUMBA_")}


@pytest.fixture
def sample_batch_setup(
    batch_setup: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, str]]:
    # The sample's 157 recipes are above this threshold: the heavy steps go to Batch.
    monkeypatch.setenv("BATCH_MIN_RECIPES", "100")
    with psycopg.connect(batch_setup["db_url"]) as conn:
        conn.execute("DELETE FROM ingredients")  # the shared fixture adds two of its own
        seed_sample(conn)
    yield batch_setup


def materializations(instance: dg.DagsterInstance, run_id: str) -> dict[str, Any]:
    """Step key -> the metadata of its materialization in the run."""
    out = {}
    for record in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION):
        event = record.dagster_event
        out[event.step_key] = event.event_specific_data.materialization.metadata
    return out


def _placement(metadata: dict[str, Any]) -> str:
    value = metadata["placement"]
    return getattr(value, "value", value)


def run_refresh(
    host: BatchHost, bucket: str, numba_cache: Path | None
) -> tuple[bool, dict[str, Any], list[str]]:
    """The real refresh with the Batch launcher bound; each of the (up to three) jobs the host
    runs gets ``numba_cache``. Returns (success, step key -> materialization metadata, the
    run's log messages)."""
    env = {"ANALYTICS_BUCKET": bucket}
    if numba_cache is not None:
        env["NUMBA_CACHE_DIR"] = str(numba_cache)
    host.plays = [Play(env=env)] * 3
    ReconstructableJob.get_definition.cache_clear()
    ReconstructableJob.get_repository_definition.cache_clear()
    with dg.instance_for_test() as instance:
        result = dg.execute_job(
            dg.reconstructable(refresh_job), instance=instance, raise_on_error=False
        )
        records = materializations(instance, result.run_id)
        logs = [r.user_message for r in instance.all_logs(result.run_id)]
    host.settle()
    return result.success, records, logs


def step_results(bucket: str) -> dict[str, dict[str, Any]]:
    """Step key -> the ``result.json`` its Batch worker wrote."""
    s3 = boto3.client("s3")
    found = {}
    for item in s3.list_objects_v2(Bucket=bucket, Prefix=f"{STAGING_PREFIX}/")["Contents"]:
        if item["Key"].endswith("/result.json"):
            body = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
            found[item["Key"].split("/")[2]] = json.loads(body)
    return found


def test_heavy_steps_on_batch_compile_nothing(
    sample_batch_setup: dict[str, str], batch_host: BatchHost, built_cache: Path,
    tmp_path: Path,
) -> None:
    cache = tmp_path / "cache"
    shutil.copytree(built_cache, cache)
    before = _fingerprint(cache)
    bucket = sample_batch_setup["bucket"]
    success, records, _ = run_refresh(batch_host, bucket, cache)
    logs = "\n".join(batch_host.output(j)[-2000:] for j in batch_host.jobs)
    assert success, logs
    assert len(batch_host.jobs) == 3, batch_host.jobs
    results = step_results(bucket)
    assert set(results) == HEAVY_STEPS, results
    for step, outcome in results.items():
        print(f"{step}: start-up {outcome['startup_s']} s, compiled {outcome['compiled']}")
        assert outcome["status"] == "succeeded", (step, outcome)
        assert outcome["compiled"] == [], f"{step} compiled {outcome['compiled']}"
        assert 0 < outcome["startup_s"] < STARTUP_BOUND_S, (step, outcome["startup_s"])
    assert _fingerprint(cache) == before, "a step wrote to the numba cache"
    for step in HEAVY_STEPS:
        placement = _placement(records[step])
        assert placement == "157 recipes >= BATCH_MIN_RECIPES 100: AWS Batch", (step, placement)


@pytest.mark.slow
def test_a_cold_cache_is_seen_and_reported(
    sample_batch_setup: dict[str, str], batch_host: BatchHost, tmp_path: Path,
) -> None:
    """The recording is real: with an empty cache the same steps report what they compiled."""
    empty = tmp_path / "empty-cache"
    empty.mkdir()
    success, _, _ = run_refresh(batch_host, sample_batch_setup["bucket"], empty)
    assert success
    compiled = {step: r["compiled"] for step, r in step_results(sample_batch_setup["bucket"]).items()}
    assert "_emd_pairs_kernel" in compiled["spaces__em_fit"]
    assert "smooth_knn_dist" in compiled["spaces__cocktail_space"]


def test_below_the_threshold_heavy_steps_stay_on_the_host(
    batch_setup: dict[str, str], batch_host: BatchHost, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Batch settings, but the site is smaller than BATCH_MIN_RECIPES: no job is submitted,
    the steps run in-process and say so in their log and metadata."""
    monkeypatch.setenv("BATCH_MIN_RECIPES", "1000")
    with psycopg.connect(batch_setup["db_url"]) as conn:
        conn.execute("DELETE FROM ingredients")
        seed_sample(conn)
    success, records, logs = run_refresh(batch_host, batch_setup["bucket"], None)
    assert success
    assert batch_host.jobs == []
    why = ("157 recipes < BATCH_MIN_RECIPES 1,000: in-process on the Dagster host (Batch's "
           "scale-up and container start would cost more than the work)")
    for step in HEAVY_STEPS:
        assert _placement(records[step]) == why, step
        assert f"placement of {step}: {why}" in logs
