"""A toy code location with the real refresh sensors, and helpers to drive them.

The toy assets have the real asset keys, groups and dependencies on the site tables (so the
sensor's selection logic is the real one) but only count rows, so a run takes a fraction of a
second. Runs are executed in-process into a real (SQLite-backed) Dagster instance, carrying the
tags the daemon would add; the ``fulfil`` helper performs the daemon's run-key check.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import psycopg
import pytest

from cocktail_assets.dagster_private import RUN_KEY_TAG, SENSOR_NAME_TAG
from cocktail_assets.environments import read_settings
from cocktail_assets.refresh.jobs import JOB_NAME, analytics_refresh
from cocktail_assets.refresh.policy import format_duration
from cocktail_assets.refresh.sensors import (
    REFRESH_SENSOR_NAME,
    SETTLE_SENSOR_NAME,
    refresh_sensors,
)
from cocktail_assets.resources.database import CocktailDatabase

SITE_TABLES = ("recipes", "ingredients", "recipe_ingredients", "units", "ratings", "tags",
               "recipe_tags")


class Switch(dg.ConfigurableResource):
    """Test behaviour of the toy run: fail, make a site edit in the middle of it, or pause
    the space after it has read (until the file ``gate`` exists; ``gate.paused`` says so)."""

    fail: bool = False
    edit_sql: str | None = None
    gate: str | None = None


def _site(table: str) -> dg.AssetKey:
    return dg.AssetKey(["site", table])


def _count(database: CocktailDatabase, table: str) -> dg.MaterializeResult:
    with database.connect() as conn:
        row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
    return dg.MaterializeResult(metadata={"rows": row[0] if row else 0})


@dg.asset(key=["catalog", "ingredient_catalog"], group_name="catalog", deps=[_site("ingredients")])
def ingredient_catalog(database: CocktailDatabase) -> dg.MaterializeResult:
    return _count(database, "ingredients")


@dg.asset(
    key=["catalog", "recipe_volumes"], group_name="catalog",
    deps=[_site("recipes"), _site("recipe_ingredients"), _site("units")],
)
def recipe_volumes(database: CocktailDatabase) -> dg.MaterializeResult:
    return _count(database, "recipe_ingredients")


@dg.asset(
    key=["analytics", "ingredient_usage"], group_name="analytics",
    deps=[_site("recipe_ingredients")],
)
def ingredient_usage(database: CocktailDatabase) -> dg.MaterializeResult:
    return _count(database, "recipe_ingredients")


@dg.asset(
    key=["spaces", "cocktail_space"], group_name="spaces",
    deps=[dg.AssetKey(["catalog", "recipe_volumes"]), dg.AssetKey(["catalog", "ingredient_catalog"])],
)
def cocktail_space(database: CocktailDatabase, switch: Switch) -> dg.MaterializeResult:
    if switch.edit_sql:
        with database.connect(autocommit=True) as conn:
            conn.execute(switch.edit_sql)
    if switch.fail:
        raise RuntimeError("toy space failed")
    result = _count(database, "recipes")
    if switch.gate:
        Path(switch.gate + ".paused").touch()
        deadline = time.monotonic() + 60
        while not Path(switch.gate).exists() and time.monotonic() < deadline:
            time.sleep(0.05)
    return result


TOY_ASSETS = [ingredient_catalog, recipe_volumes, ingredient_usage, cocktail_space]
SPACE_KEYS = {dg.AssetKey(["catalog", "recipe_volumes"]), dg.AssetKey(["spaces", "cocktail_space"])}


@dataclasses.dataclass
class Toy:
    """The toy location bound to one test database and instance."""

    db_url: str
    instance: dg.DagsterInstance
    debounce_minutes: float = 15
    max_wait_minutes: float = 60
    fail: bool = False
    edit_sql: str | None = None
    gate: str | None = None

    def database(self) -> CocktailDatabase:
        return CocktailDatabase(url=self.db_url)

    def defs(self) -> dg.Definitions:
        settings = dataclasses.replace(
            read_settings({}), debounce_minutes=self.debounce_minutes,
            max_wait_minutes=self.max_wait_minutes,
        )
        return dg.Definitions(
            assets=[dg.AssetSpec(_site(t), group_name="site") for t in SITE_TABLES]
            + TOY_ASSETS,
            jobs=[analytics_refresh],
            sensors=refresh_sensors(settings),
            resources={
                "database": self.database(),
                "switch": Switch(fail=self.fail, edit_sql=self.edit_sql, gate=self.gate),
            },
        )

    def tick(self, cursor: str | None = None) -> dg.SensorResult:
        """Evaluate the real refresh sensor once, as the daemon would."""
        defs = self.defs()
        sensor = defs.resolve_sensor_def(REFRESH_SENSOR_NAME)
        context = dg.build_sensor_context(
            instance=self.instance, cursor=cursor, definitions=defs,
            sensor_name=REFRESH_SENSOR_NAME, resources={"database": self.database()},
        )
        result = sensor(context)
        assert isinstance(result, dg.SensorResult)
        return result

    def fulfil(
        self, request: dg.RunRequest, settle: bool = True
    ) -> dg.ExecuteInProcessResult | None:
        """Create and execute the run as the daemon does: nothing if its run key exists.

        With ``settle``, the settle sensor then sees the run's end, as the daemon's would.
        """
        if request.run_key and self.instance.get_runs(
            dg.RunsFilter(tags={RUN_KEY_TAG: request.run_key}), limit=1
        ):
            return None
        defs = self.defs()
        job = defs.resolve_job_def(JOB_NAME)
        tags: dict[str, Any] = {**request.tags, SENSOR_NAME_TAG: REFRESH_SENSOR_NAME}
        if request.run_key:
            tags[RUN_KEY_TAG] = request.run_key
        result = job.execute_in_process(
            instance=self.instance, asset_selection=list(request.asset_selection or []),
            tags=tags, raise_on_error=False,
        )
        if settle:
            self.settle_sensor(result)
        return result

    def settle_sensor(self, result: dg.ExecuteInProcessResult) -> None:
        """Evaluate the real settle-on-success sensor for the end of ``result``'s run."""
        run = self.instance.get_run_by_id(result.run_id)
        assert run is not None
        event = next(
            e for e in result.all_events
            if e.event_type in (dg.DagsterEventType.RUN_SUCCESS, dg.DagsterEventType.RUN_FAILURE)
        )
        defs = self.defs()
        context = dg.build_run_status_sensor_context(
            sensor_name=SETTLE_SENSOR_NAME, dagster_event=event, dagster_instance=self.instance,
            dagster_run=run, resources={"database": self.database()},
            repository_def=defs.get_repository_def(),
        )
        if event.event_type == dg.DagsterEventType.RUN_SUCCESS:
            defs.resolve_sensor_def(SETTLE_SENSOR_NAME)(context)

    def refresh_runs(self) -> list[dg.DagsterRun]:
        return list(self.instance.get_runs(dg.RunsFilter(job_name=JOB_NAME)))[::-1]

    def sql(self, statement: str, params: tuple = ()) -> list[tuple]:
        with psycopg.connect(self.db_url, autocommit=True) as conn:
            cur = conn.execute(statement, params)
            return cur.fetchall() if cur.description else []

    def pending(self) -> dict[str, int]:
        return dict(self.sql(
            "SELECT table_name, count(*) FROM analytics_change_log WHERE settled_at IS NULL "
            "GROUP BY table_name"
        ))

    def advance(self, minutes: float) -> None:
        """Let ``minutes`` pass: move every recorded change that much into the past."""
        self.sql(
            "UPDATE analytics_change_log SET changed_at = changed_at - %s", (timedelta(minutes=minutes),)
        )


def about(minutes: float, slack_seconds: int = 15) -> str:
    """A regex for a duration as the policy prints it, ``minutes`` or up to
    ``slack_seconds`` less: real seconds pass between an edit and a tick."""
    whole = round(minutes * 60)
    shown = {format_duration(timedelta(seconds=whole - d)) for d in range(slack_seconds + 1)}
    return "(?:" + "|".join(sorted(shown)) + ")"


def age_cursor(cursor: str | None, minutes: float) -> str | None:
    """The sensor's cursor with its backoff clock moved ``minutes`` into the past."""
    data = json.loads(cursor or "{}")
    if data.get("seen_at"):
        seen = datetime.fromisoformat(data["seen_at"]) - timedelta(minutes=minutes)
        data["seen_at"] = seen.isoformat()
    return json.dumps(data)


def skip_text(result: dg.SensorResult) -> str:
    assert not result.run_requests, result.run_requests
    assert result.skip_reason is not None
    return result.skip_reason.skip_message or ""


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as inst:
        yield inst


@pytest.fixture
def toy(db_url: str, instance: dg.DagsterInstance) -> Toy:
    return Toy(db_url, instance)


@pytest.fixture
def site(toy: Toy) -> Toy:
    """The toy on a minimal site (a unit, two ingredients, a recipe), its changes settled."""
    toy.sql("INSERT INTO units (name, conversion_to_ml) VALUES ('ml', 1)")
    toy.sql("INSERT INTO ingredients (name, path) VALUES ('gin', '/1/'), ('vermouth', '/2/')")
    toy.sql("INSERT INTO recipes (name) VALUES ('martini')")
    toy.sql(
        "INSERT INTO recipe_ingredients (recipe_id, ingredient_id, unit_id, amount) "
        "SELECT r.id, i.id, u.id, 30 FROM recipes r, ingredients i, units u"
    )
    toy.sql("UPDATE analytics_change_log SET settled_at = now() AT TIME ZONE 'utc'")
    return toy


ROOT = Path(__file__).resolve().parents[3]
CLI = str(Path(sys.executable).with_name("cocktail-assets"))


@dataclasses.dataclass
class Cli:
    """The real command in subprocesses, on one test database and a Dagster instance of its
    own (this project's dagster.yaml, storage in PostgreSQL)."""

    env: dict[str, str]
    db_url: str
    tmp: Path

    def popen(self, *args: str, **env: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [CLI, *args], env={**self.env, **env}, cwd=ROOT, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )

    def run(self, *args: str, timeout: float = 300, **env: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [CLI, *args], env={**self.env, **env}, cwd=ROOT, text=True, capture_output=True,
            timeout=timeout,
        )

    def instance(self) -> dg.DagsterInstance:
        """The same instance as the subprocesses' (call with their environment applied)."""
        return dg.DagsterInstance.get()

    def sql(self, statement: str, params: tuple = ()) -> list[tuple]:
        with psycopg.connect(self.db_url, autocommit=True) as conn:
            cur = conn.execute(statement, params)
            return cur.fetchall() if cur.description else []


def wait_for(path: Path, timeout: float = 120, procs: tuple = ()) -> None:
    """Until ``path`` exists; fails early, with their output, if a process ended first."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        for proc in procs:
            if proc.poll() is not None:
                out, err = proc.communicate()
                raise AssertionError(f"process ended early ({proc.returncode}):\n{out}\n{err}")
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.1)


@pytest.fixture
def cli(
    db_url: str, database_factory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Cli]:
    """The sample site on the test database and an initialised instance; the test process
    gets the same Dagster environment so it can read the runs."""
    from cocktail_assets.db.connection import dagster_storage_url
    from cocktail_assets.db.seed import seed_sample

    with psycopg.connect(db_url) as conn:
        seed_sample(conn)
    env = {
        **os.environ,
        "DAGSTER_HOME": str(ROOT),
        "DAGSTER_PG_URL": dagster_storage_url(database_factory(migrated=False)),
        "COCKTAIL_DAGSTER_STORAGE": str(tmp_path / "dagster"),
        "COCKTAIL_DAGSTER_COMPUTE_LOGS": str(tmp_path / "logs"),
        "DATABASE_URL": db_url,
        "COCKTAIL_ENV": "local",
        "COCKTAIL_LOCAL_DIR": str(tmp_path),
    }
    for name in ("ANALYTICS_BUCKET", "AWS_ENDPOINT_URL", "BATCH_JOB_QUEUE", "BATCH_JOB_DEFINITION"):
        env.pop(name, None)
        monkeypatch.delenv(name, raising=False)
    for name in ("DAGSTER_HOME", "DAGSTER_PG_URL", "COCKTAIL_DAGSTER_STORAGE",
                 "COCKTAIL_DAGSTER_COMPUTE_LOGS", "DATABASE_URL", "COCKTAIL_ENV",
                 "COCKTAIL_LOCAL_DIR"):
        monkeypatch.setenv(name, env[name])
    with dg.DagsterInstance.get():  # create the storage schema once, before any race
        pass
    yield Cli(env, db_url, tmp_path)
