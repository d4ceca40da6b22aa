"""The cocktail site's PostgreSQL database as a Dagster resource (psycopg 3)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import dagster as dg
import psycopg
from dagster import ConfigurableResource, InitResourceContext
from psycopg.conninfo import make_conninfo
from pydantic import PrivateAttr

from cocktail_assets.db import run_lock
from cocktail_assets.db.change_log import current_snapshot, table_changes
from cocktail_assets.db.connection import connect, describe_conninfo, validate_conninfo
from cocktail_assets.db.embedded import ensure_embedded
from cocktail_assets.errors import ConfigError
from cocktail_assets.paths import DEFAULT_LOCAL_DIR
from cocktail_assets.resources.site_versions import record_moved
from cocktail_assets.tags import CHANGE_SNAPSHOT_TAG, LOCK_TAG, TRIGGER_TAG


def describe_holder(instance: dg.DagsterInstance, holder: run_lock.Holder) -> str:
    """'run 1234… (trigger sensor, STARTED)' for a waiting line."""
    if holder.run_id is None:
        return holder.describe()
    run = instance.get_run_by_id(holder.run_id)
    if run is None:
        return f"run {holder.run_id}"
    return (f"run {holder.run_id} (trigger {run.tags.get(TRIGGER_TAG, 'ui')}, "
            f"{run.status.value})")


def enter_run_lock(
    instance: dg.DagsterInstance, run_id: str, conninfo: str, log: dg.DagsterLogManager,
    *, until: Callable[[], bool] | None = None,
) -> run_lock.RunLock | None:
    """Hold the analytics lock for a Dagster run (``run_lock.enter``), the same from every door:
    the run is tagged once its session exists, and its log says whom it waits for."""

    def opened() -> None:
        instance.add_run_tags(run_id, {LOCK_TAG: "true"})

    def waiting(holder: run_lock.Holder) -> None:
        log.warning(
            f"waiting for the analytics lock on {describe_conninfo(conninfo)}: "
            f"held by {describe_holder(instance, holder)}; one analytics run at a time"
        )

    return run_lock.enter(conninfo, run_id, on_open=opened, on_wait=waiting, until=until)


class CocktailDatabase(ConfigurableResource):
    """The site database: a DATABASE_URL, discrete settings, or the embedded default.

    With neither ``url`` nor ``host`` set, the embedded PostgreSQL of the project is started
    (and migrated and seeded on first use), so the same assets run on a laptop with no setup.
    """

    url: str | None = None
    host: str | None = None
    port: int = 5432
    dbname: str = "cocktails"
    user: str | None = None
    password: str | None = None
    embedded_dir: str | None = None  # the embedded server's folder, when nothing else is set
    require_url: bool = False  # production: never fall back to the embedded server

    _resolved: str | None = PrivateAttr(default=None)

    def conninfo(self) -> str:
        """The connection string; starting the embedded server when nothing is configured."""
        if self._resolved is None:
            if self.url:
                self._resolved = validate_conninfo(self.url)
            elif self.host:
                self._resolved = make_conninfo(
                    host=self.host, port=self.port, dbname=self.dbname,
                    user=self.user, password=self.password,
                )
            elif self.require_url:
                raise ConfigError("DATABASE_URL is not set (COCKTAIL_ENV=production)")
            else:
                from pathlib import Path

                local_dir = Path(self.embedded_dir) if self.embedded_dir else DEFAULT_LOCAL_DIR
                self._resolved = ensure_embedded(local_dir).analytics_url
        return self._resolved

    def setup_for_execution(self, context: InitResourceContext) -> None:
        """Hold the analytics lock, then record, once per run and before any step starts, the
        change-tracking snapshot and the site tables' versions in it.

        The run's executor normally holds the lock already (this is then a no-op); runs that
        bypass it (``execute_in_process``, ``materialize``) take it here, before the snapshot.
        A Batch step container takes none: its host holds the run's lock.

        Every step that reads the site initialises this resource first, so the run tag
        ``cocktail-assets/change-snapshot`` always predates the run's reads: when the run
        succeeds, the edits visible in it are covered and can be settled (``refresh/settle.py``).
        The tables whose version moved since the instance last observed them are observed now,
        from the same snapshot (``resources/site_versions.py``), so the steps record the
        versions they read and the run is not shown stale for an edit it covered.
        This holds for runs from the UI, the CLI and the sensor alike.
        """
        run = context.run
        if run is None or context.instance is None or run_lock.is_held_elsewhere(run.run_id):
            return
        instance = context.instance

        def ended() -> bool:
            stored = instance.get_run_by_id(run.run_id)
            return stored is None or stored.is_finished

        assert context.log is not None
        enter_run_lock(instance, run.run_id, self.conninfo(), context.log, until=ended)
        if CHANGE_SNAPSHOT_TAG in run.tags:
            return
        stored = context.instance.get_run_by_id(run.run_id)
        if stored is not None and CHANGE_SNAPSHOT_TAG in stored.tags:
            return
        with self.connect() as conn:
            # One snapshot for both: the versions observed are exactly those the run covers.
            conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            snapshot = current_snapshot(conn)
            changes = table_changes(conn)
            conn.rollback()
        instance.add_run_tags(run.run_id, {CHANGE_SNAPSHOT_TAG: snapshot})
        record_moved(instance, changes, f"run {run.run_id}, before its first step")

    def describe(self) -> str:
        """Host and database for logs and metadata (no password)."""
        return describe_conninfo(self.conninfo())

    @contextmanager
    def connect(self, *, autocommit: bool = False) -> Iterator[psycopg.Connection]:
        with connect(self.conninfo(), autocommit=autocommit) as conn:
            yield conn

    @contextmanager
    def snapshot(self) -> Iterator[psycopg.Connection]:
        """A REPEATABLE READ READ ONLY transaction: every read of one step sees one state."""
        with self.connect() as conn:
            conn.read_only = True
            conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            with conn.transaction():
                yield conn
