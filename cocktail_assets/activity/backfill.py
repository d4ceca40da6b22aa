"""``cocktail-assets backfill``: a Dagster backfill of activity/daily over a range of days.

The backfill is the one the UI's partition view would launch (an asset backfill stored in the
instance, listed under *Overview → Backfills*), run by the daemon in batches of at most
ACTIVITY_BACKFILL_DAYS_PER_RUN days per run (the asset's backfill policy). When no daemon is
running (none has written a heartbeat in the last 90 s), or the one that was stops before the
backfill ends, the command starts one for the rest of the backfill. It prints a line per day
as each day is materialized, then the runs' outcome.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dagster as dg

from cocktail_assets.activity.assets import DAILY_KEY
from cocktail_assets.activity.late_edits import ensure_baseline
from cocktail_assets.dagster_private import (
    BACKFILL_ID_TAG,
    BaseAssetGraph,
    BulkActionStatus,
    PartitionBackfill,
    make_new_backfill_id,
)
from cocktail_assets.environments import Settings, prepare_dagster_home
from cocktail_assets.errors import CocktailAssetsError, ConfigError
from cocktail_assets.tags import TRIGGER_TAG

FINISHED = {
    BulkActionStatus.COMPLETED, BulkActionStatus.COMPLETED_SUCCESS,
    BulkActionStatus.COMPLETED_FAILED, BulkActionStatus.FAILED, BulkActionStatus.CANCELED,
}


class BackfillError(CocktailAssetsError):
    """The backfill could not run to the end; the message names the backfill and why."""


def day_range(settings: Settings, start: str, end: str, now: datetime | None = None) -> list[str]:
    """Every day from ``start`` to ``end`` inclusive, checked against the partitions."""
    try:
        first, last = date.fromisoformat(start), date.fromisoformat(end)
    except ValueError as exc:
        raise ConfigError(f"--start/--end must be dates YYYY-MM-DD: {exc}") from None
    earliest = date.fromisoformat(settings.activity_start_date)
    yesterday = (now or datetime.now(UTC)).date() - timedelta(days=1)
    if last < first:
        raise ConfigError(f"--end {end} is before --start {start}")
    if first < earliest:
        raise ConfigError(f"--start {start} is before ACTIVITY_START_DATE {earliest}")
    if last > yesterday:
        raise ConfigError(f"--end {end} is not a complete UTC day yet (the latest is {yesterday})")
    return [(first + timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]


def planned_runs(days: int, per_run: int) -> int:
    return math.ceil(days / per_run)


# A running daemon writes a heartbeat every 30 s. Dagster's own ``healthy`` tolerates half an
# hour without one, so a daemon stopped minutes ago (a closed `cocktail-assets ui`) counted as
# running, and the backfill waited for nobody.
LIVE_HEARTBEAT_SECONDS = 90


def daemon_heartbeat_age(instance: dg.DagsterInstance, now: float | None = None) -> float | None:
    """Seconds since the staler of the backfill and run-queue daemons' last heartbeats, if
    both beat within ``LIVE_HEARTBEAT_SECONDS`` (a daemon runs them); None otherwise."""
    now = time.time() if now is None else now
    ages = [
        now - status.last_heartbeat.timestamp if status.last_heartbeat else math.inf
        for status in instance.get_daemon_statuses(
            ["BACKFILL", "QUEUED_RUN_COORDINATOR"]).values()
        if status.required
    ]
    age = max(ages, default=math.inf)
    return age if age <= LIVE_HEARTBEAT_SECONDS else None


def _start_daemon(settings: Settings, env: dict[str, str]) -> subprocess.Popen:
    from cocktail_assets.paths import PROJECT_ROOT

    log_dir = settings.local_dir / "dagster"
    log_dir.mkdir(parents=True, exist_ok=True)
    log = open(log_dir / "backfill-daemon.log", "ab")  # noqa: SIM115 (the process owns it)
    daemon = str(Path(sys.executable).with_name("dagster-daemon"))
    return subprocess.Popen(
        [daemon, "run", "-w", str(PROJECT_ROOT / "workspace.yaml")],
        env={**os.environ, **env}, cwd=PROJECT_ROOT, stdout=log, stderr=subprocess.STDOUT,
    )


def run_backfill(
    settings: Settings, graph: BaseAssetGraph, start: str, end: str,
    out: Callable[[str], None] = print, *, timeout_minutes: float = 60, poll_seconds: float = 1.0,
) -> bool:
    """Submit the backfill, follow it day by day; True when every run succeeded. ``graph`` is
    the code location's asset graph (the backfill is planned over it)."""
    days = day_range(settings, start, end)
    env = prepare_dagster_home(settings)
    os.environ.update(env)

    with dg.DagsterInstance.get() as instance:
        # Before the first run: a day materialized while activity/late_edits has never been
        # observed could never be marked stale by a later edit (late_edits.py).
        ensure_baseline(instance, date.fromisoformat(settings.activity_start_date),
                        datetime.now(UTC).date())
        backfill_id = make_new_backfill_id()
        submitted = time.time()
        backfill = PartitionBackfill.from_asset_partitions(
            backfill_id=backfill_id, asset_graph=graph,
            partition_names=days, asset_selection=[DAILY_KEY], backfill_timestamp=submitted,
            tags={TRIGGER_TAG: "cli"}, dynamic_partitions_store=instance, all_partitions=False,
            title=f"activity {days[0]}..{days[-1]}", description="cocktail-assets backfill",
            run_config=None,
        )
        instance.add_backfill(backfill)
        per_run = settings.activity_days_per_run
        out(f"backfill {backfill_id}: {len(days)} day(s) {days[0]}..{days[-1]} in "
            f"{planned_runs(len(days), per_run)} run(s) of at most {per_run} days "
            f"(UI: Overview > Backfills)")
        started: list[subprocess.Popen] = []

        def own_daemon() -> subprocess.Popen | None:
            """The daemon this command started; one is started whenever no daemon beats (also
            when the one running at submission stops before the backfill ends)."""
            if not started and daemon_heartbeat_age(instance) is None:
                out(f"no Dagster daemon is running (no heartbeat in the last "
                    f"{LIVE_HEARTBEAT_SECONDS} s): starting one for this backfill")
                started.append(_start_daemon(settings, env))
            return started[0] if started else None

        age = daemon_heartbeat_age(instance)
        if age is not None:
            out(f"a Dagster daemon is running (last heartbeat {age:.0f} s ago): it runs the "
                "backfill")
        try:
            return _follow(instance, backfill_id, days, submitted, out, own_daemon,
                           timeout_minutes * 60, poll_seconds)
        finally:
            for daemon in started:
                daemon.terminate()
                try:
                    daemon.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    daemon.kill()


def _follow(
    instance: dg.DagsterInstance, backfill_id: str, days: list[str], submitted: float,
    out: Callable[[str], None], own_daemon: Callable[[], subprocess.Popen | None],
    timeout: float, poll_seconds: float,
) -> bool:
    done: set[str] = set()
    deadline = time.monotonic() + timeout
    while True:
        daemon = own_daemon()
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=DAILY_KEY, asset_partitions=days,
                                  after_timestamp=submitted),
            limit=len(days) * 2,
        ).records
        for record in sorted(records, key=lambda r: r.partition_key or ""):
            day = record.partition_key
            if day is None or day in done:
                continue
            done.add(day)
            mat = record.asset_materialization
            meta = {k: getattr(v, "value", v) for k, v in (mat.metadata if mat else {}).items()}
            counts = meta.get("activity", {}).get(day) if isinstance(meta.get("activity"), dict) \
                else None
            detail = (f"active_users {counts['active_users']}, ratings {counts['ratings_added']}"
                      if counts else "")
            out(f"[{len(done)}/{len(days)}] {day} materialized (run {record.run_id[:8]}) {detail}"
                .rstrip())
        state = instance.get_backfill(backfill_id)
        if state is not None and state.status in FINISHED:
            runs = instance.get_runs(dg.RunsFilter(tags={BACKFILL_ID_TAG: backfill_id}))
            failed = [r for r in runs if r.status != dg.DagsterRunStatus.SUCCESS]
            ok = state.status == BulkActionStatus.COMPLETED_SUCCESS and not failed and \
                len(done) == len(days)
            out(f"backfill {backfill_id} {state.status.value.lower()}: {len(done)} of {len(days)} "
                f"day(s) in {len(runs)} run(s)" + (f", {len(failed)} failed" if failed else ""))
            return ok
        if daemon is not None and daemon.poll() is not None:
            raise BackfillError(
                f"backfill {backfill_id}: the Dagster daemon exited (status "
                f"{daemon.returncode}); see <COCKTAIL_LOCAL_DIR>/dagster/backfill-daemon.log"
            )
        if time.monotonic() > deadline:
            raise BackfillError(f"backfill {backfill_id} not finished after {timeout / 60:g} min; "
                                f"it continues whenever a daemon runs")
        time.sleep(poll_seconds)
