"""The project's parts of the Dagster instance, named in ``dagster.yaml``.

``RefreshRunCoordinator`` is Dagster's queued run coordinator that makes every run of the
analytics a refresh run as it is submitted: a "Materialize" of any selection from the UI (which
runs Dagster's own asset job, not ``analytics_refresh``), a backfill or a ``dagster job launch``
gets the refresh tag and its trigger before it is queued, so the run queue's limit of one
refresh in progress holds for it, ``cocktail-assets status`` shows it as the last refresh run
with its trigger, and the sensor waits for it. Runs that materialize no analytics asset (an
"Observe" of the site sources) are left as they are.

``ProjectStorage``, ``ProjectArtifactStorage`` and ``ProjectComputeLogManager`` are Dagster's
PostgreSQL storage and local folders with the project's defaults, so that any Dagster process
started in this folder (``dg dev``, ``dg check defs``, ``dagster definitions validate``, the
systemd units) finds its storage with no variable set: ``DAGSTER_PG_URL`` when set, otherwise
the embedded server's ``dagster`` database (started on first use, like every other door), and
folders under ``$COCKTAIL_LOCAL_DIR/dagster``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_postgres import DagsterPostgresStorage

from cocktail_assets.dagster_private import LocalArtifactStorage, LocalComputeLogManager
from cocktail_assets.environments import read_settings
from cocktail_assets.previews import preview_name
from cocktail_assets.refresh.jobs import ANALYTICS_GROUPS, JOB_NAME
from cocktail_assets.tags import REFRESH_TAG, TRIGGER_TAG

# Dagster's own job behind the UI's Materialize buttons, and the tags that say who launched a
# run (Dagster's public names for them are not exported).
ASSET_JOB_NAME = "__ASSET_JOB"
_LAUNCHERS = (("dagster/backfill", "backfill"), ("dagster/schedule_name", "schedule"),
              ("dagster/sensor_name", "sensor"), ("dagster/from_ui", "ui"))


def materializes_analytics(run: dg.DagsterRun) -> bool:
    """Whether ``run`` materializes an asset of the analytics groups (key prefix = group)."""
    if run.asset_selection is None:
        return run.job_name == JOB_NAME or run.job_name.startswith(ASSET_JOB_NAME)
    return any(key.path[0] in ANALYTICS_GROUPS for key in run.asset_selection)


def refresh_tags(run: dg.DagsterRun) -> Mapping[str, str]:
    """The tags that make ``run`` a refresh run (none when it is one already, or is none)."""
    if REFRESH_TAG in run.tags or not materializes_analytics(run):
        return {}
    trigger = next((name for tag, name in _LAUNCHERS if tag in run.tags), "launch")
    return {REFRESH_TAG: "true", TRIGGER_TAG: run.tags.get(TRIGGER_TAG, trigger)}


class RefreshRunCoordinator(dg.QueuedRunCoordinator):
    """The queued run coordinator, tagging every analytics run as a refresh before queueing."""

    def submit_run(self, context: dg.SubmitRunContext) -> dg.DagsterRun:
        tags = refresh_tags(context.dagster_run)
        if tags:
            instance = self._instance
            instance.add_run_tags(context.dagster_run.run_id, tags)
            run = instance.get_run_by_id(context.dagster_run.run_id)
            if run is not None:
                context = context._replace(dagster_run=run)
        return super().submit_run(context)


def dagster_storage_url() -> str:
    """DAGSTER_PG_URL, or the embedded server's ``dagster`` database (the embedded default)."""
    if os.environ.get("DAGSTER_PG_URL"):
        return os.environ["DAGSTER_PG_URL"]
    from cocktail_assets.environments import prepare_dagster_home

    return prepare_dagster_home(read_settings())["DAGSTER_PG_URL"]


def _folder(variable: str, *parts: str) -> str:
    return os.environ.get(variable) or str(read_settings().local_dir.joinpath("dagster", *parts))


class _NoConfig:
    """The ConfigurableClass half of the project's instance parts: they take no configuration
    in ``dagster.yaml`` (their defaults come from the project's settings)."""

    @classmethod
    def config_type(cls) -> dict:
        return {}

    @classmethod
    def from_config_value(cls, inst_data: Any, config_value: Mapping[str, Any]) -> Any:
        return cls(inst_data=inst_data)


class ProjectStorage(_NoConfig, DagsterPostgresStorage):
    """Dagster's PostgreSQL run, event-log and schedule storage on the project's database."""

    def __init__(self, inst_data: Any = None) -> None:
        super().__init__(postgres_url=dagster_storage_url(), inst_data=inst_data)


class ProjectArtifactStorage(_NoConfig, LocalArtifactStorage):
    """Dagster's local artifact storage under the project's local folder."""

    def __init__(self, inst_data: Any = None) -> None:
        super().__init__(base_dir=_folder("COCKTAIL_DAGSTER_STORAGE"), inst_data=inst_data)


class ProjectComputeLogManager(_NoConfig, LocalComputeLogManager):
    """Dagster's local compute-log manager under the project's local folder, which also hands
    the webserver the asset previews (``previews.py``).

    The webserver serves ``/logs/<key...>/<extension>`` from this manager's local path for the
    key. For a key ``previews/<name>-<digest>`` with extension ``png`` that path is a local copy
    of the preview from the analytics store, fetched on first request (the store may be S3,
    written by a step on AWS Batch). Compute-log keys start with a run id, never ``previews``.
    """

    def get_captured_local_path(
        self, log_key: Sequence[str], extension: str, partial: bool = False
    ) -> str:
        if len(log_key) == 2 and log_key[0] == "previews" and extension == "png" and not partial:
            store_key = preview_name(log_key[1])
            if store_key is not None:
                return self._preview_copy(log_key[1], store_key)
        return super().get_captured_local_path(log_key, extension, partial)

    def _preview_copy(self, stem: str, store_key: str) -> str:
        path = Path(self._base_dir).resolve() / "previews" / f"{stem}.png"
        if not path.exists():
            from cocktail_assets.environments import store_resource
            from cocktail_assets.errors import StoreError

            try:
                body = store_resource(read_settings()).get_bytes(store_key)
            except StoreError:
                return str(path)  # missing: the webserver answers 404
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_name(f".{path.name}.{os.getpid()}")
            partial.write_bytes(body)
            partial.replace(path)
        return str(path)

    def __init__(self, inst_data: Any = None) -> None:
        super().__init__(
            base_dir=_folder("COCKTAIL_DAGSTER_COMPUTE_LOGS", "compute_logs"), inst_data=inst_data
        )
