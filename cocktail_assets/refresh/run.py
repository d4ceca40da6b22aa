"""``cocktail-assets refresh``: materialize now through the Dagster instance, with progress."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import dagster as dg

from cocktail_assets.dagster_private import BaseAssetGraph, ReconstructableJob
from cocktail_assets.db.run_lock import RunLockBusy, lock_holder
from cocktail_assets.environments import (
    Settings,
    database_resource,
    open_instance_environment,
    store_resource,
)
from cocktail_assets.errors import CocktailAssetsError, ConfigError
from cocktail_assets.refresh.causes import failure_cause
from cocktail_assets.refresh.jobs import hold_storage_connections
from cocktail_assets.refresh.liveness import fail_dead_runs
from cocktail_assets.refresh.settle import materialized_in_run, settle_run
from cocktail_assets.resources.database import describe_holder
from cocktail_assets.tags import CODE_LOCATION, CODE_LOCATION_TAG, REFRESH_TAG, TRIGGER_TAG


class RefreshFailed(CocktailAssetsError):
    """The refresh run failed for a reason the user can fix (named in the message)."""


def parse_selection(
    select: Sequence[str] | None, graph: BaseAssetGraph
) -> list[dg.AssetKey] | None:
    """The asset keys ``--select`` names; an unknown one, or a source table (observed, never
    materialized), is a ConfigError listing what can be selected."""
    if select is None:
        return None
    known = {
        key.to_user_string(): key for key in graph.get_all_asset_keys()
        if graph.get(key).is_materializable
    }
    if not select:
        raise ConfigError(f"--select needs at least one asset; known: {', '.join(sorted(known))}")
    keys = []
    for item in select:
        if item in known:
            keys.append(known[item])
            continue
        key = dg.AssetKey.from_user_string(item)
        if graph.has(key):
            readers = sorted(
                k.to_user_string() for k in graph.get(key).child_keys
                if k.to_user_string() in known
            )
            raise ConfigError(
                f"--select {item!r} is a site table (observed, not materialized): select the "
                f"assets that read it, e.g. {', '.join(readers) or 'catalog/recipe_volumes'}"
            )
        raise ConfigError(f"--select {item!r} is not an asset; known: {', '.join(sorted(known))}")
    return keys


def summarize(instance: dg.DagsterInstance, run_id: str) -> list[tuple[str, str, str, str]]:
    """(asset, rows, uri, seconds) per materialization of the run."""
    starts: dict[str | None, float] = {}
    rows: list[tuple[str, str, str, str]] = []
    for record in instance.all_logs(run_id):
        event = record.dagster_event
        if event is None:
            continue
        if event.event_type_value == "STEP_START":
            starts[event.step_key] = record.timestamp
        elif event.event_type_value == "ASSET_MATERIALIZATION":
            mat = event.event_specific_data.materialization
            meta = {k: getattr(v, "value", v) for k, v in mat.metadata.items()}
            count = meta.get("dagster/row_count", "")
            uri = meta.get("dagster/uri") or meta.get("work_uri") or ""
            seconds = meta.get("duration_s")
            if seconds is None and event.step_key in starts:
                seconds = round(record.timestamp - starts[event.step_key], 2)
            rows.append((mat.asset_key.to_user_string(), str(count), str(uri), str(seconds)))
    return rows


def format_table(rows: list[tuple[str, ...]], header: tuple[str, ...]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) for r in
             [header, tuple("-" * w for w in widths), *rows]]
    return "\n".join(lines)


def run_refresh(
    settings: Settings,
    job: ReconstructableJob,
    graph: BaseAssetGraph,
    select: Sequence[str] | None,
    out: Callable[[str], None] = print,
    wait: bool = True,
) -> bool:
    """Run the refresh ``job`` once (all assets, or ``select``); True when it succeeded.

    ``job`` is reconstructable so a step launcher can rebuild it elsewhere; ``graph`` is the
    same code location's asset graph (for the selection and what the run settles). Another
    analytics run holding the lock is waited for (the run's log says for which), or with
    ``wait=False`` refused before any run is created. A failure the user can fix raises
    RefreshFailed naming the cause (the CLI's exit status 2); other failures return False.
    """
    if settings.env == "production" and not settings.database_url:
        raise ConfigError("COCKTAIL_ENV=production needs DATABASE_URL (the site database)")
    keys = parse_selection(select, graph)
    os.environ.update(open_instance_environment(settings))
    database = database_resource(settings, for_dagster=False)
    with dg.DagsterInstance.get() as instance:
        hold_storage_connections(instance)  # the CLI's reads before and after the run too
        with database.connect(autocommit=True) as conn:
            for _run_id, message in fail_dead_runs(instance, conn, database.describe()):
                out(message)
            holder = lock_holder(conn)
        if holder is not None and not wait:
            raise RunLockBusy(
                f"another analytics run holds the lock on {database.describe()}: "
                f"{describe_holder(instance, holder)}; try again when it has finished"
            )
        out(f"refreshing {'all analytics' if keys is None else ', '.join(select or [])}")
        result = dg.execute_job(
            job,
            instance=instance,
            asset_selection=keys,
            tags={REFRESH_TAG: "true", TRIGGER_TAG: "cli", CODE_LOCATION_TAG: CODE_LOCATION},
            raise_on_error=False,
            run_config={"loggers": {"progress": {}}},
        )
        table = summarize(instance, result.run_id)
        if table:
            out(format_table(table, ("asset", "rows", "uri", "seconds")))
        if result.success and not materialized_in_run(instance, result.run_id):
            out(f"refresh failed (run {result.run_id}): it materialized nothing")
            return False
        if result.success:
            settle_run(instance, result.run_id, settings, graph)
            out(f"refresh succeeded (run {result.run_id}); artifacts in "
                f"{store_resource(settings).uri('')}")
            return True
        cause = failure_cause(instance, result.run_id)
        where = f" in step {cause.step}" if cause and cause.step else ""
        text = f"refresh failed (run {result.run_id}){where}: " + (
            cause.message if cause else "no error recorded"
        )
        if cause is not None and cause.user:
            raise RefreshFailed(text)
        out(text)
        return False
