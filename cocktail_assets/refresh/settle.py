"""Settle the edits a successful run covered, whoever launched it (UI, CLI or sensor).

A run covers a table's edits when it materialized every asset downstream of that table; the
edits covered are those visible in the snapshot the run recorded before its first read
(``CocktailDatabase.setup_for_execution``). Settling is idempotent, and a settled run is tagged
``cocktail-assets/settled`` so that the refresh sensor, which settles any successful run still
missing the tag, does not redo it every tick.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import dagster as dg

from cocktail_assets.dagster_private import BaseAssetGraph
from cocktail_assets.db.change_log import TRACKED_TABLES, settle
from cocktail_assets.environments import Settings, database_resource
from cocktail_assets.resources.database import CocktailDatabase
from cocktail_assets.resources.site_versions import SOURCE_TABLES, site_table_key
from cocktail_assets.tags import CHANGE_SNAPSHOT_TAG, SETTLED_TAG


def downstream_of_tables(graph: BaseAssetGraph) -> dict[str, set[dg.AssetKey]]:
    """Each tracked table's materializable downstream assets (empty: nothing reads it).

    ``graph`` is the code location's: the sensor's own, or the CLI's from ``build_defs``.
    """
    out: dict[str, set[dg.AssetKey]] = {}
    for table in TRACKED_TABLES:
        key = site_table_key(table) if table in SOURCE_TABLES else None
        if key is None or not graph.has(key):
            out[table] = set()
            continue
        down = dg.AssetSelection.assets(key).downstream().resolve(graph) - {key}
        out[table] = {k for k in down if graph.get(k).is_materializable}
    return out


def covered_tables(
    materialized: Iterable[dg.AssetKey], downstream: Mapping[str, set[dg.AssetKey]]
) -> list[str]:
    """The tables all of whose downstream assets are in ``materialized``."""
    done = set(materialized)
    return [t for t, down in downstream.items() if down <= done]


def materialized_in_run(instance: dg.DagsterInstance, run_id: str) -> set[dg.AssetKey]:
    records = instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)
    return {r.dagster_event.asset_key for r in records if r.dagster_event is not None}


def settle_run(
    instance: dg.DagsterInstance,
    run_id: str,
    database: Settings | CocktailDatabase,
    graph: BaseAssetGraph,
) -> int:
    """Settle what run ``run_id`` covered; returns the number of change rows settled.

    ``database`` is the Settings (CLI) or the sensor's database resource. A run that did not
    succeed, or recorded no snapshot, settles nothing.
    """
    run = instance.get_run_by_id(run_id)
    if run is None or run.status != dg.DagsterRunStatus.SUCCESS:
        return 0
    snapshot = run.tags.get(CHANGE_SNAPSHOT_TAG)
    if not snapshot:
        return 0
    tables = covered_tables(materialized_in_run(instance, run_id), downstream_of_tables(graph))
    settled = 0
    if tables:
        if isinstance(database, Settings):
            database = database_resource(database, for_dagster=False)
        with database.connect(autocommit=True) as conn:
            settled = settle(conn, snapshot, tables)
    instance.add_run_tags(run_id, {SETTLED_TAG: str(settled)})
    return settled


def settle_unsettled_runs(
    instance: dg.DagsterInstance,
    database: CocktailDatabase,
    graph: BaseAssetGraph,
    limit: int = 25,
) -> dict[str, int]:
    """Settle the recent successful runs that recorded a snapshot but were never settled.

    The safety net behind the run-status sensor and the CLI: a daemon that was down when a run
    finished, or a settlement that failed because the database was unreachable, is made good
    on the next refresh-sensor tick. Settling an older run late is still exact, because it
    settles only the edits visible in that run's own snapshot. Returns {run_id: rows settled}.
    """
    runs = instance.get_runs(
        filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.SUCCESS]), limit=limit
    )
    done: dict[str, int] = {}
    for run in reversed(list(runs)):  # oldest first
        if CHANGE_SNAPSHOT_TAG in run.tags and SETTLED_TAG not in run.tags:
            done[run.run_id] = settle_run(instance, run.run_id, database, graph)
    return done
