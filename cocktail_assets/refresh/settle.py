"""Settle the edits a successful run covered, whoever launched it (UI, CLI or sensor).

A run covers a table's edits when it materialized every asset downstream of that table; the
edits covered are those visible in the snapshot the run recorded before its first read
(``CocktailDatabase.setup_for_execution``). Settling is idempotent.
"""

from __future__ import annotations

from collections.abc import Iterable

import dagster as dg

from cocktail_assets.environments import Settings, database_resource
from cocktail_assets.refresh.tracking import TRACKED_TABLES, settle
from cocktail_assets.resources.database import CHANGE_SNAPSHOT_TAG


def downstream_of_tables() -> dict[str, set[dg.AssetKey]]:
    """Each tracked table's materializable downstream assets (empty: nothing reads it)."""
    from cocktail_assets.definitions import defs

    graph = defs.resolve_asset_graph()
    out: dict[str, set[dg.AssetKey]] = {}
    for table in TRACKED_TABLES:
        key = dg.AssetKey(["site", table])
        if not graph.has(key):
            out[table] = set()
            continue
        down = dg.AssetSelection.assets(key).downstream().resolve(graph) - {key}
        out[table] = {k for k in down if graph.get(k).is_materializable}
    return out


def covered_tables(materialized: Iterable[dg.AssetKey]) -> list[str]:
    done = set(materialized)
    return [t for t, down in downstream_of_tables().items() if down <= done]


def materialized_in_run(instance: dg.DagsterInstance, run_id: str) -> set[dg.AssetKey]:
    records = instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)
    return {r.dagster_event.asset_key for r in records if r.dagster_event is not None}


def settle_run(instance: dg.DagsterInstance, run_id: str, settings: Settings) -> int:
    """Settle what run ``run_id`` covered; returns the number of change rows settled."""
    run = instance.get_run_by_id(run_id)
    if run is None or run.status != dg.DagsterRunStatus.SUCCESS:
        return 0
    snapshot = run.tags.get(CHANGE_SNAPSHOT_TAG)
    if not snapshot:
        return 0
    tables = covered_tables(materialized_in_run(instance, run_id))
    if not tables:
        return 0
    with database_resource(settings, for_dagster=False).connect(autocommit=True) as conn:
        return settle(conn, snapshot, tables)
