"""One analytics run at a time from any door, lossless whatever the interleaving, and no run
left hanging (issue 12, findings 1 and 2)."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
import threading
from pathlib import Path

import dagster as dg

from cocktail_assets.definitions import build_defs
from cocktail_assets.environments import read_settings
from cocktail_assets.refresh.jobs import PAUSE_ENV
from cocktail_assets.refresh.sensors import REFRESH_SENSOR_NAME
from cocktail_assets.resources.database import CocktailDatabase
from cocktail_assets.tags import LOCK_TAG
from tests.cocktail_assets.refresh.conftest import Cli, Toy, age_cursor, wait_for

SPACE = dg.AssetKey(["spaces", "cocktail_space"])


def _sessions(toy: Toy) -> int:
    return toy.sql(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND application_name LIKE 'cocktail-assets run %%'"
    )[0][0]


def _step_times(instance: dg.DagsterInstance, run_id: str) -> tuple[float, float]:
    times = [
        r.timestamp for r in instance.all_logs(run_id)
        if r.dagster_event is not None and r.dagster_event.is_step_event
    ]
    return min(times), max(times)


def test_a_paused_run_makes_the_other_wait_and_the_edit_between_is_not_lost(
    site: Toy, tmp_path: Path
) -> None:
    """The issue's STOP/CONT interleaving, deterministically: run A reads the recipes and
    pauses before publishing; a recipe is inserted; run B starts. Without the lock B settled
    the insert and A then published the space without it. Now B waits for A (its log names A),
    runs after it and publishes the insert, which is then settled."""
    gate = tmp_path / "gate"
    paused = dataclasses.replace(site, gate=str(gate))
    results: dict[str, dg.ExecuteInProcessResult | None] = {}
    everything = dg.RunRequest(asset_selection=sorted(
        {k for k in site.defs().resolve_asset_graph().get_all_asset_keys()
         if site.defs().resolve_asset_graph().get(k).is_materializable},
        key=lambda k: k.to_user_string(),
    ))
    a = threading.Thread(target=lambda: results.update(a=paused.fulfil(everything)))
    a.start()
    wait_for(Path(str(gate) + ".paused"))
    site.sql("INSERT INTO recipes (name) VALUES ('gibson')")
    b = threading.Thread(target=lambda: results.update(b=site.fulfil(everything)))
    b.start()
    for _ in range(100):  # until B has opened its lock session (or, wrongly, finished)
        if _sessions(site) >= 2 or not b.is_alive():
            break
        threading.Event().wait(0.2)
    threading.Event().wait(1.0)
    assert b.is_alive(), "B must wait for A"
    assert _sessions(site) == 2
    gate.touch()
    a.join(60)
    b.join(60)
    run_a, run_b = results["a"], results["b"]
    assert run_a is not None and run_b is not None and run_a.success and run_b.success
    a_end = _step_times(site.instance, run_a.run_id)[1]
    b_start = _step_times(site.instance, run_b.run_id)[0]
    assert b_start > a_end, "the two runs overlapped"
    # execute_in_process bypasses the locked executor: the database resource took B's lock and
    # says, as the executor would, which run it waited for, who started it and its state.
    waited = [r.user_message for r in site.instance.all_logs(run_b.run_id)
              if "waiting for the analytics lock" in r.user_message]
    assert len(waited) == 1, waited
    assert f"held by run {run_a.run_id} (trigger ui, STARTED)" in waited[0], waited[0]
    # Lossless: nothing is settled that the latest published space does not contain.
    latest = site.instance.get_latest_materialization_event(SPACE)
    assert latest is not None and latest.asset_materialization is not None
    assert latest.asset_materialization.metadata["rows"].value == 2
    assert site.pending() == {}


def test_two_cli_refreshes_started_together_run_one_after_the_other(
    cli: Cli, tmp_path: Path
) -> None:
    """Both started at once and both paused before their step: the one with the lock pauses,
    the other says which run it waits for; released, both succeed, never alongside."""
    gate = tmp_path / "gate"
    pause = {PAUSE_ENV: f"analytics__recipe_complexity:{gate}"}
    procs = [cli.popen("refresh", "--select", "analytics/recipe_complexity", **pause)
             for _ in range(2)]
    wait_for(Path(str(gate) + ".paused"), procs=tuple(procs))
    lines = ""
    for _ in range(300):
        lines = cli.sql(
            "SELECT string_agg(application_name, ',') FROM pg_stat_activity WHERE "
            "application_name LIKE 'cocktail-assets run %%'"
        )[0][0] or ""
        if lines.count("cocktail-assets run") == 2 or any(p.poll() is not None for p in procs):
            break
        threading.Event().wait(0.2)
    threading.Event().wait(1.0)
    assert all(p.poll() is None for p in procs), "the second refresh must wait, not run"
    assert lines.count("cocktail-assets run") == 2, lines
    gate.touch()
    outputs = [proc.communicate(timeout=300) for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], outputs
    waited = [out for out, _ in outputs if "waiting for the analytics lock" in out]
    assert len(waited) == 1, outputs
    with cli.instance() as instance:
        runs = list(instance.get_runs(dg.RunsFilter(tags={LOCK_TAG: "true"})))
        assert len(runs) == 2 and all(r.status == dg.DagsterRunStatus.SUCCESS for r in runs)
        first, second = sorted(runs, key=lambda r: _step_times(instance, r.run_id)[0])
        assert f"held by run {first.run_id} (trigger cli" in waited[0]
        assert _step_times(instance, second.run_id)[0] > _step_times(instance, first.run_id)[1]


def test_a_killed_cli_refresh_is_marked_failed_and_the_sensor_refreshes_again(
    cli: Cli, tmp_path: Path
) -> None:
    """kill -9 during the run: the next sensor tick marks the run failed (no session holds
    its lock), edits stay pending, and after the usual 1-minute backoff a run is requested."""
    gate = tmp_path / "gate"
    proc = cli.popen("refresh", "--select", "analytics/recipe_complexity",
                     **{PAUSE_ENV: f"analytics__recipe_complexity:{gate}"})
    wait_for(Path(str(gate) + ".paused"), procs=(proc,))
    settings = dataclasses.replace(
        read_settings({"DATABASE_URL": cli.db_url, "COCKTAIL_LOCAL_DIR": str(tmp_path)}),
        debounce_minutes=0,
    )
    defs = build_defs(settings)
    database = CocktailDatabase(url=cli.db_url)

    def tick(instance: dg.DagsterInstance, cursor: str | None) -> dg.SensorResult:
        context = dg.build_sensor_context(
            instance=instance, cursor=cursor, definitions=defs,
            sensor_name=REFRESH_SENSOR_NAME, resources={"database": database},
        )
        return defs.resolve_sensor_def(REFRESH_SENSOR_NAME)(context)

    with cli.instance() as instance:
        (run,) = instance.get_runs(dg.RunsFilter(tags={LOCK_TAG: "true"}))
        alive = tick(instance, None)
        assert alive.skip_reason is not None
        assert f"refresh run {run.run_id} is STARTED; waiting" in alive.skip_reason.skip_message
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
        first = tick(instance, alive.cursor)
        dead = instance.get_run_by_id(run.run_id)
        assert dead is not None and dead.status == dg.DagsterRunStatus.FAILURE
        assert first.skip_reason is not None
        assert re.search(r"backing off after 1 consecutive failed run .*retry in "
                         r"(?:1m00s|5\ds)", first.skip_reason.skip_message)
        assert cli.sql("SELECT count(*) FROM analytics_change_log WHERE settled_at IS NULL")[0][0]
        again = tick(instance, age_cursor(first.cursor, 1.05))
        assert len(again.run_requests) == 1, again.skip_reason
        message = json.dumps([
            r.dagster_event.message for r in instance.all_logs(run.run_id)
            if r.dagster_event is not None and r.dagster_event.event_type == dg.DagsterEventType.RUN_FAILURE
        ])
        assert "no session of database" in message and "holds its analytics lock" in message
