"""``cocktail-assets refresh``: materialize now through the Dagster instance, with progress."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import dagster as dg

from cocktail_assets.dagster_private import BaseAssetGraph, ReconstructableJob
from cocktail_assets.environments import Settings, prepare_dagster_home, store_resource
from cocktail_assets.errors import ConfigError
from cocktail_assets.refresh.settle import settle_run
from cocktail_assets.tags import REFRESH_TAG, TRIGGER_TAG


def parse_selection(
    select: Sequence[str] | None, graph: BaseAssetGraph
) -> list[dg.AssetKey] | None:
    """The asset keys ``--select`` names; an unknown one is a ConfigError listing the known."""
    if not select:
        return None
    known = {key.to_user_string(): key for key in graph.get_all_asset_keys()}
    keys = []
    for item in select:
        if item not in known:
            raise ConfigError(
                f"--select {item!r} is not an asset; known: {', '.join(sorted(known))}"
            )
        keys.append(known[item])
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
) -> bool:
    """Run the refresh ``job`` once (all assets, or ``select``); True when it succeeded.

    ``job`` is reconstructable so a step launcher can rebuild it elsewhere; ``graph`` is the
    same code location's asset graph (for the selection and what the run settles).
    """
    os.environ.update(prepare_dagster_home(settings))
    keys = parse_selection(select, graph)
    with dg.DagsterInstance.get() as instance:
        out(f"refreshing {'all analytics' if keys is None else ', '.join(select or [])}")
        result = dg.execute_job(
            job,
            instance=instance,
            asset_selection=keys,
            tags={REFRESH_TAG: "true", TRIGGER_TAG: "cli"},
            raise_on_error=False,
            run_config={"loggers": {"progress": {}}},
        )
        table = summarize(instance, result.run_id)
        out(format_table(table, ("asset", "rows", "uri", "seconds")))
        if result.success:
            settle_run(instance, result.run_id, settings, graph)
            out(f"refresh succeeded (run {result.run_id}); artifacts in "
                f"{store_resource(settings).uri('')}")
        else:
            for event in result.all_events:
                if event.event_type_value == "STEP_FAILURE":
                    error = event.event_specific_data.error
                    message = error.message.strip().splitlines()[-1] if error else ""
                    out(f"step {event.step_key} failed: {message}")
            out(f"refresh failed (run {result.run_id})")
        return result.success
