"""The analytics lock: one analytics run at a time against a site database, from any door.

A run holds a PostgreSQL session-level advisory lock on the SITE database, on a dedicated
connection opened before the run's first read and kept for the run. PostgreSQL releases it
when the session ends, so a killed process can never leave it held. The session's
``application_name`` is ``cocktail-assets run <run id>``, which gives two more answers:

- who holds the lock (a waiting run names the run it waits for), and
- whether a run is alive: a run that is STARTED in the Dagster instance while no session of
  the site database carries its name has lost its process (``live_runs``).

The two-int4 key form is used (pg_locks shows it with ``objsubid = 2``), so it never collides
with the single-bigint keys of the migration and seeding locks.

Within one process, holding is re-entrant per run id (the run's executor and its database
resource both ask for it). When a run lets go, the lock is released at once but the session
lingers until the process starts another run or exits, so a run that has just finished is
never mistaken for a dead one in the moment before its final status is written. A holder that
cannot say when it is done (the database resource, for runs that bypass the executor) passes
``until``: its lock is released once that says the run has ended, checked whenever this
process next wants a lock, and at exit. A Batch step
container marks its run as held by its host (``held_by_host``): the host process holds the
lock while the step runs remotely.
"""

from __future__ import annotations

import atexit
import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg

from cocktail_assets.db.connection import describe_conninfo, open_session
from cocktail_assets.errors import CocktailAssetsError

# Arbitrary but fixed: 'ca' (cocktail-assets) and 1, the analytics runs.
LOCK_CLASS = 0x6361
LOCK_ID = 1
APPLICATION_PREFIX = "cocktail-assets run "
POLL_SECONDS = 0.5


class RunLockBusy(CocktailAssetsError):
    """Another analytics run holds the lock and the caller asked not to wait."""


class RunLockLost(CocktailAssetsError):
    """The run's lock session ended while the run went on (the connection was cut)."""


class RunLockConflict(Exception):
    """The run's lock is held by another process of the same run: a bug (a multiprocess
    executor), refused rather than deadlocked."""


def application_name(run_id: str) -> str:
    return APPLICATION_PREFIX + run_id


@dataclass(frozen=True)
class Holder:
    """The session holding the analytics lock."""

    pid: int
    run_id: str | None  # None: a session that is not a run's (a tool holding the key)
    application_name: str

    def describe(self) -> str:
        return f"run {self.run_id}" if self.run_id else (
            f"session {self.pid} ({self.application_name or 'no application name'})"
        )


_HOLDER = """
SELECT a.pid, coalesce(a.application_name, '')
FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.granted AND l.classid = %s AND l.objid = %s
  AND l.objsubid = 2
  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
LIMIT 1
"""


def lock_holder(conn: psycopg.Connection) -> Holder | None:
    """Who holds the analytics lock of this database now (None: nobody)."""
    row = conn.execute(_HOLDER, (LOCK_CLASS, LOCK_ID)).fetchone()
    if row is None:
        return None
    pid, name = row
    run_id = name[len(APPLICATION_PREFIX):] if name.startswith(APPLICATION_PREFIX) else None
    return Holder(pid=pid, run_id=run_id, application_name=name)


def live_runs(conn: psycopg.Connection) -> set[str]:
    """The run ids with a session on this database: holding the lock, waiting for it, or
    just finished (a lingering session)."""
    rows = conn.execute(
        "SELECT application_name FROM pg_stat_activity "
        "WHERE datname = current_database() AND starts_with(application_name, %s)",
        (APPLICATION_PREFIX,),
    ).fetchall()
    return {name[len(APPLICATION_PREFIX):] for (name,) in rows}


class RunLock:
    """The analytics lock of one run, on its own session."""

    def __init__(self, conninfo: str, run_id: str) -> None:
        self.conninfo = conninfo
        self.run_id = run_id
        self.where = describe_conninfo(conninfo)
        self.conn: psycopg.Connection | None = None
        self.held = False

    def open(self) -> None:
        """Open the session (it names the run from now on: the run counts as alive)."""
        self.conn = open_session(self.conninfo, application_name(self.run_id))

    def try_acquire(self) -> Holder | None:
        """Take the lock if free; otherwise return who holds it."""
        assert self.conn is not None
        got = self.conn.execute(
            "SELECT pg_try_advisory_lock(%s, %s)", (LOCK_CLASS, LOCK_ID)
        ).fetchone()
        if got and got[0]:
            self.held = True
            return None
        holder = lock_holder(self.conn)
        if holder is None:  # released between the two statements: try again
            return self.try_acquire()
        if holder.run_id == self.run_id:
            raise RunLockConflict(
                f"run {self.run_id} already holds the analytics lock on {self.where} in "
                f"another process (pid {holder.pid}): analytics runs must use the in-process "
                "executor"
            )
        return holder

    def acquire(
        self, *, wait: bool = True, on_wait: Callable[[Holder], None] | None = None
    ) -> None:
        """Take the lock, waiting (and saying for whom) while another session holds it."""
        announced: Holder | None = None
        while True:
            holder = self.try_acquire()
            if holder is None:
                return
            if not wait:
                raise RunLockBusy(
                    f"another analytics run holds the lock on {self.where}: "
                    f"{holder.describe()}; one analytics run at a time"
                )
            if on_wait is not None and holder != announced:
                on_wait(holder)
                announced = holder
            time.sleep(POLL_SECONDS)
            _release_ended()  # it may be this process's own finished run

    def still_held(self) -> bool:
        """True if the session is alive and still holds the lock."""
        if self.conn is None or not self.held:
            return False
        try:
            row = self.conn.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
                "AND pid = pg_backend_pid() AND classid = %s AND objid = %s AND objsubid = 2",
                (LOCK_CLASS, LOCK_ID),
            ).fetchone()
        except psycopg.Error:
            return False
        return bool(row and row[0])

    def release(self) -> None:
        """Let go of the lock; the session lingers (see the module docstring)."""
        if self.conn is None:
            return
        if self.held:
            with contextlib.suppress(psycopg.Error):  # a dead session holds nothing
                self.conn.execute("SELECT pg_advisory_unlock(%s, %s)", (LOCK_CLASS, LOCK_ID))
            self.held = False

    def close(self) -> None:
        if self.conn is not None:
            try:
                self.conn.close()
            finally:
                self.conn = None
                self.held = False


# -- the process's registry ----------------------------------------------------------------
_mutex = threading.RLock()
_held: dict[str, tuple[RunLock, int]] = {}  # run id -> (lock, how many holders)
_until: dict[str, Callable[[], bool]] = {}  # run id -> "has the run ended?"
_lingering: list[RunLock] = []
_host_held: set[str] = set()


def held_by_host(run_id: str) -> None:
    """In a Batch step container: run ``run_id``'s lock is its host's; take nothing here."""
    _host_held.add(run_id)


def is_held_elsewhere(run_id: str) -> bool:
    return run_id in _host_held


def _close_lingering() -> None:
    with _mutex:
        while _lingering:
            _lingering.pop().close()


def _release_ended() -> None:
    """Release the locks whose ``until`` says their run has ended."""
    with _mutex:
        for run_id, ended in list(_until.items()):
            try:
                done = ended()
            except Exception:
                done = True
            if done and run_id in _held:
                _until.pop(run_id, None)
                lock, _count = _held.pop(run_id)
                lock.release()
                _lingering.append(lock)


def _at_exit() -> None:
    with _mutex:
        for lock, _count in _held.values():
            lock.close()
        _held.clear()
        _until.clear()
    _close_lingering()


atexit.register(_at_exit)


def enter(
    conninfo: str,
    run_id: str,
    *,
    wait: bool = True,
    on_open: Callable[[], None] | None = None,
    on_wait: Callable[[Holder], None] | None = None,
    until: Callable[[], bool] | None = None,
) -> RunLock | None:
    """Hold the analytics lock for ``run_id`` in this process (re-entrant); None when the
    run's host holds it. ``on_open`` runs once the run's session exists (to tag the run),
    ``on_wait`` whenever the holder it waits for changes; ``until``: see the module docstring
    (such a hold is not undone by ``leave``)."""
    if run_id in _host_held:
        return None
    _release_ended()
    with _mutex:
        if run_id in _held:
            lock, count = _held[run_id]
            if until is None:
                _held[run_id] = (lock, count + 1)
            return lock
        _close_lingering()
    lock = RunLock(conninfo, run_id)
    lock.open()
    try:
        if on_open is not None:
            on_open()
        lock.acquire(wait=wait, on_wait=on_wait)
    except BaseException:
        lock.close()
        raise
    with _mutex:
        _held[run_id] = (lock, 1 if until is None else 0)
        if until is not None:
            _until[run_id] = until
    return lock


def leave(lock: RunLock | None) -> None:
    """Undo one ``enter``; the last one releases the lock and leaves the session lingering."""
    if lock is None:
        return
    with _mutex:
        held, count = _held.get(lock.run_id, (lock, 1))
        if count > 1 or lock.run_id in _until:
            _held[lock.run_id] = (held, max(count - 1, 0))
            return
        _held.pop(lock.run_id, None)
        lock.release()
        _lingering.append(lock)


@contextmanager
def holding(conninfo: str, run_id: str, **kwargs: object) -> Iterator[RunLock | None]:
    lock = enter(conninfo, run_id, **kwargs)  # type: ignore[arg-type]
    try:
        yield lock
    finally:
        leave(lock)
