"""When the refresh sensor requests a run: pure decision logic, no I/O.

Kept apart from the sensor so that the debounce, max-wait and backoff rules can be read (and
tested) on their own, and so that ``cocktail-assets status`` explains exactly what the sensor
would do. Every time here is the database's clock (UTC, naive), except that the backoff is
measured from when the sensor first saw the failure, also on the database's clock.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from cocktail_assets.db.change_log import PendingChanges, PendingTable

# Retry delay after the n-th consecutive failed refresh: 1, 2, 4, ... minutes, at most 30.
BACKOFF_BASE = timedelta(minutes=1)
BACKOFF_CAP = timedelta(minutes=30)


@dataclass(frozen=True)
class Policy:
    """The sensor's timing rules (from Settings: debounce and max-wait minutes)."""

    debounce: timedelta
    max_wait: timedelta
    backoff_base: timedelta = BACKOFF_BASE
    backoff_cap: timedelta = BACKOFF_CAP

    @classmethod
    def from_minutes(cls, debounce_minutes: float, max_wait_minutes: float) -> Policy:
        return cls(timedelta(minutes=debounce_minutes), timedelta(minutes=max_wait_minutes))

    @property
    def freshness_windows(self) -> tuple[timedelta, timedelta | None]:
        """(fail, warn) windows of a published asset's freshness.

        The sensor requests a run at the latest ``max_wait`` after the oldest pending edit, so
        an edit should be published within ``max_wait`` (WARN after it) plus the run's own time
        and a retry, for which one ``debounce`` is allowed (FAIL after ``max_wait + debounce``).
        Dagster wants windows of at least a minute and warn < fail.
        """
        fail = max(self.max_wait + self.debounce, timedelta(minutes=2))
        warn = max(self.max_wait, timedelta(minutes=1))
        return fail, (warn if warn < fail else None)

    def backoff(self, failures: int) -> timedelta:
        """How long to wait after ``failures`` consecutive failed runs (0: no wait)."""
        if failures <= 0:
            return timedelta(0)
        # Exponent bounded so that a long failure streak cannot overflow timedelta.
        return min(self.backoff_base * 2 ** min(failures - 1, 30), self.backoff_cap)


@dataclass(frozen=True)
class RunHistory:
    """What the Dagster instance says about refresh runs, as the sensor sees it."""

    in_progress_run: str | None = None  # a queued/starting/running/canceling refresh run
    in_progress_status: str | None = None
    consecutive_failures: int = 0  # failed or canceled refresh runs since the last success
    last_failed_run: str | None = None  # the newest of those
    failure_seen_at: datetime | None = None  # database time the sensor first saw it
    last_finished_run: str | None = None  # the newest finished refresh run, whatever its end


@dataclass(frozen=True)
class Decision:
    """The sensor's verdict for one tick, with the numbers behind it."""

    request: bool
    reason: str
    run_tables: tuple[str, ...] = ()  # tables whose downstream assets the run selects
    settle_tables: tuple[str, ...] = ()  # pending tables no asset reads: settled in the tick
    run_key: str | None = None
    quiet_left: timedelta | None = None
    max_wait_left: timedelta | None = None
    retry_left: timedelta | None = None
    pending: tuple[PendingTable, ...] = field(default=())


def format_duration(delta: timedelta) -> str:
    """'1h02m', '4m10s', '35s': short enough for a tick log line."""
    seconds = max(0, round(delta.total_seconds()))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def describe_tables(tables: Collection[PendingTable]) -> str:
    """'recipes (3 changes), units (1 change)'."""
    return ", ".join(
        f"{t.table} ({t.changes} change{'s' if t.changes != 1 else ''})" for t in tables
    )


def run_key_for(last_id: int, history: RunHistory) -> str:
    """The run key of a refresh for the change point ``last_id``.

    The newest pending change id names the change point, qualified by the newest finished
    refresh run: the same pending edits in the same run history always give the same key, so
    racing or restarted sensors ask for one run, while a new edit, or a run that ended without
    settling them (a failure), allows exactly one new run.
    """
    key = f"changes-{last_id}"
    if history.last_finished_run:
        key += f"-after-{history.last_finished_run[:8]}"
    return key


def decide(
    pending: PendingChanges,
    tables_with_assets: Collection[str],
    history: RunHistory,
    policy: Policy,
) -> Decision:
    """Request a refresh now, or say why not.

    ``tables_with_assets`` are the tracked tables that some materializable asset reads; pending
    edits of the others need no run and are settled in the tick (``settle_tables``).
    """
    needs_run = tuple(t for t in pending.tables if t.table in tables_with_assets)
    settle_tables = tuple(t.table for t in pending.tables if t.table not in tables_with_assets)
    common = {"settle_tables": settle_tables, "pending": pending.tables}
    settled_note = (
        f"; settling {', '.join(settle_tables)} (no asset reads them)" if settle_tables else ""
    )
    if not needs_run:
        return Decision(False, "no pending changes that any asset reads" + settled_note, **common)

    now = pending.now
    first = min(t.first_changed_at for t in needs_run)
    last = max(t.last_changed_at for t in needs_run)
    quiet_left = policy.debounce - (now - last)
    wait_left = policy.max_wait - (now - first)
    timing = (
        f"quiet for {format_duration(now - last)} of {format_duration(policy.debounce)} "
        f"({format_duration(quiet_left)} left), oldest change {format_duration(now - first)} "
        f"old (max wait {format_duration(policy.max_wait)}, {format_duration(wait_left)} left)"
    )
    common.update(
        run_tables=tuple(t.table for t in needs_run), quiet_left=quiet_left,
        max_wait_left=wait_left,
    )
    pending_text = f"pending: {describe_tables(needs_run)}"

    if history.in_progress_run:
        return Decision(
            False,
            f"refresh run {history.in_progress_run} is {history.in_progress_status}; "
            f"waiting for it to finish. {pending_text}; {timing}{settled_note}",
            **common,
        )
    if quiet_left > timedelta(0) and wait_left > timedelta(0):
        return Decision(
            False, f"debouncing. {pending_text}; {timing}{settled_note}", **common
        )
    if history.consecutive_failures:
        delay = policy.backoff(history.consecutive_failures)
        seen = history.failure_seen_at or now
        retry_left = delay - (now - seen)
        failures = (
            f"{history.consecutive_failures} consecutive failed run"
            f"{'s' if history.consecutive_failures != 1 else ''} "
            f"(last {history.last_failed_run})"
        )
        if retry_left > timedelta(0):
            return Decision(
                False,
                f"backing off after {failures}: retry in {format_duration(retry_left)} "
                f"(backoff {format_duration(delay)}). {pending_text}; {timing}{settled_note}",
                retry_left=retry_left, **common,
            )
        why = f"retrying after {failures}"
    else:
        why = "quiet period over" if quiet_left <= timedelta(0) else "max wait reached"
    return Decision(
        True,
        f"refreshing: {why}. {pending_text}; {timing}{settled_note}",
        run_key=run_key_for(max(t.last_id for t in needs_run), history),
        **common,
    )
