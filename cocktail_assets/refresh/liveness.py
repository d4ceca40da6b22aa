"""No run left hanging: a run whose process died is marked failed within one sensor tick.

Every analytics run opens its lock session on the site database (``db/run_lock.py``) and tags
itself ``cocktail-assets/lock-session`` once that session exists. PostgreSQL ends the session
when the process dies (at once on a live host; within about a minute, by TCP keepalives, when
the host or the network goes), so a run still STARTED or CANCELING in the instance with that
tag and no session in its name is dead. The refresh sensor, ``status`` and ``refresh`` check
this first; the dead run is reported failed (canceled if it was being canceled), its edits stay
pending, and the sensor retries after its usual backoff.

Runs that die before their executor starts (stuck in STARTING) are run monitoring's
(``dagster.yaml``).
"""

from __future__ import annotations

import dagster as dg
import psycopg

from cocktail_assets.db.run_lock import live_runs
from cocktail_assets.tags import LOCK_TAG

_JUDGED = [dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING]


def fail_dead_runs(
    instance: dg.DagsterInstance, conn: psycopg.Connection, where: str
) -> list[tuple[str, str]]:
    """Report the dead runs failed; returns (run id, message) for each."""
    runs = instance.get_runs(dg.RunsFilter(statuses=_JUDGED, tags={LOCK_TAG: "true"}))
    if not runs:
        return []
    alive = live_runs(conn)
    done: list[tuple[str, str]] = []
    for run in runs:
        if run.run_id in alive:
            continue
        fresh = instance.get_run_by_id(run.run_id)  # it may have ended since we listed it
        if fresh is None or fresh.status not in _JUDGED:
            continue
        message = (
            f"run {run.run_id} died: no session of database {where} holds its analytics lock "
            "any more (its process was killed or lost its connection); its edits stay pending"
        )
        if fresh.status == dg.DagsterRunStatus.CANCELING:
            instance.report_run_canceled(fresh, message=message)
        else:
            instance.report_run_failed(fresh, message=message)
        done.append((run.run_id, message))
    return done
