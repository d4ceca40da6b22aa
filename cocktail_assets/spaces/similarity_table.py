"""Writing the ``recipe_similarity`` table: the rows are checked, then replace the table in one
transaction. The asset ``spaces/recipe_similarity`` and ``benchmarks/similarity_write_bench.py``
both call :func:`write_similarity`, which times each stage of the write.

How, and why (100,000 recipes: about 1.2 GB of JSON):

- the rows are shaped as arrays (``shape.similarity_table``) and checked there, before any
  write: a failing check opens no transaction, so the table is untouched;
- one transaction replaces the rows: it locks the recipes it writes rows for (``FOR KEY
  SHARE``: the lock the foreign key's own check takes per row, taken first for all), leaves
  out those deleted since the snapshot the neighbours were computed from, deletes the old rows
  and COPYs the new ones straight into ``recipe_similarity``. No staging table: the 1.2 GB go
  through COPY, jsonb parsing, TOAST compression and the WAL once. Readers see the old rows
  until the commit, then the new ones (a plain ``DELETE``, not ``TRUNCATE``, whose exclusive
  lock would block them for the whole write). The commit is synchronous as any other;
- where the server can (PostgreSQL 14+ built with lz4), the transaction compresses the JSON it
  writes with lz4 instead of pglz (``SET LOCAL default_toast_compression``): the table and its
  column are unchanged, every reader decompresses either transparently, and the server's
  compression work drops to a fraction;
- the COPY text is made by ``shape.SimilarityCopyText`` chunk by chunk and handed to a sender
  thread (psycopg's queued writer), so Python formats the next rows while the server parses the
  previous ones: at most one chunk plus the writer's queue (128 MB) is in memory.

What remains is the server's own work, in one backend: reading 1.2 GB of COPY text, parsing it
into jsonb (every id, distance and mass a numeric) and compressing it (README, Performance).
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import dagster as dg
import numpy as np
import psycopg
from barcart import EMResult
from psycopg.copy import QueuedLibpqWriter

from cocktail_assets import queries
from cocktail_assets.catalog.load import IngredientCatalog, RecipeVolumes
from cocktail_assets.checks import repeated_or_missing, verdict
from cocktail_assets.errors import DataError
from cocktail_assets.spaces.shape import (
    SimilarityTable,
    similarity_copy_chunks,
    similarity_table,
)

# Tolerance of the neighbours' order check on floating-point distances.
ORDER_TOL = 1e-9
# Rows per COPY chunk: about 24 MB of text at 20 neighbours with 3 flows each.
CHUNK_ROWS = 2000
PROGRESS_ROWS = 20_000


class Stages:
    """Seconds spent per stage of the write, accumulated over many short intervals."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, stage: str) -> None:
        """Charge the time since the previous lap to ``stage``."""
        now = time.perf_counter()
        self.seconds[stage] = self.seconds.get(stage, 0.0) + now - self._last
        self._last = now


@dataclass
class SimilarityWrite:
    """What a write did: its check results, the rows checked and written, seconds per stage
    (rows: neighbours and flows as arrays; checks; swap: lock, delete and the written rows'
    count; json: the COPY text; copy: waiting for the server to take it; commit)."""

    results: list[dg.AssetCheckResult]
    written: int
    staged: int
    seconds: dict[str, float] = field(default_factory=dict)
    compression: str | None = None  # how the written rows' JSON was TOAST-compressed

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)


def neighbor_problems(table: SimilarityTable) -> list[int]:
    """Recipe ids of the rows whose neighbours break an invariant: sorted by distance,
    distances finite and >= 0, never the recipe itself, every transport mass in (0, 1]."""
    nb = table.neighbors
    present = nb.index >= 0
    with np.errstate(invalid="ignore"):
        bad_distance = present & ~(np.isfinite(nb.distance) & (nb.distance >= 0))
        unsorted = present[:, 1:] & (nb.distance[:, 1:] < nb.distance[:, :-1] - ORDER_TOL)
        flowing = nb.flow_from >= 0
        bad_mass = flowing & ~((nb.flow_mass > 0) & (nb.flow_mass <= 1))
    itself = present & (nb.index == table.rows[:, None])
    bad = bad_distance.any(axis=1) | unsorted.any(axis=1) | itself.any(axis=1)
    bad |= bad_mass.any(axis=(1, 2))
    return table.recipe_ids[table.rows[bad]].tolist()


def similarity_checks(
    table: SimilarityTable, expected_ids: np.ndarray
) -> list[dg.AssetCheckResult]:
    """The two blocking checks on the rows about to be written."""
    ids = table.recipe_ids[table.rows]
    return [
        verdict("each_recipe_once", repeated_or_missing(ids.tolist(), expected_ids.tolist()),
                "recipes missing, repeated or unexpected in the staged rows",
                metadata={"staged": int(ids.size)}),
        verdict("neighbors_valid", neighbor_problems(table),
                "recipes whose neighbours are unsorted, include the recipe or carry a "
                "mass outside (0, 1]"),
    ]


def _lock_recipes(conn: psycopg.Connection, ids: np.ndarray) -> np.ndarray:
    """The ids among ``ids`` of recipes that still exist, locked ``FOR KEY SHARE`` until the
    commit (a concurrent delete waits; the foreign key's check then always finds them).

    Locking rows needs the UPDATE privilege on ``recipes``; a role with SELECT alone gets the
    ids unlocked, and a recipe deleted between this read and its row's foreign-key check then
    fails the COPY (nothing is replaced; the next refresh writes the table)."""
    try:
        with conn.transaction():  # a savepoint: the fallback continues the transaction
            rows = conn.execute(queries.SIMILARITY_LOCK_RECIPES, (ids.tolist(),)).fetchall()
    except psycopg.errors.InsufficientPrivilege:
        rows = conn.execute(queries.SIMILARITY_ALIVE_RECIPES, (ids.tolist(),)).fetchall()
    return np.array([r for r, in rows], dtype=np.int64)


def write_similarity(
    conn: psycopg.Connection, fit: EMResult, volumes: RecipeVolumes,
    catalog: IngredientCatalog, n_neighbors: int,
    progress: Callable[[str], None] | None = None,
) -> SimilarityWrite:
    """Shape each recipe's ``n_neighbors`` nearest recipes, check them, and when every check
    passed replace the table's rows with them in one transaction (otherwise nothing is
    written). Recipes deleted since the snapshot the rows were computed from are left out.

    ``conn`` must not be in a transaction; ``progress`` is told each stage and every
    ``PROGRESS_ROWS`` rows copied."""
    say = progress or (lambda _message: None)
    stages = Stages()
    table = similarity_table(fit, volumes, catalog, n_neighbors)
    stages.lap("rows")
    results = similarity_checks(table, volumes.expected_recipe_ids)
    staged = int(table.rows.size)
    stages.lap("checks")
    if not all(r.passed for r in results):
        say(f"recipe_similarity: {staged} rows shaped, a check failed: nothing written")
        return SimilarityWrite(results, 0, staged, stages.seconds)
    say(f"recipe_similarity: {staged} rows shaped and checked; replacing the table")
    ids = table.recipe_ids[table.rows]
    with conn.transaction():
        created_at = conn.execute(queries.SIMILARITY_NOW).fetchone()[0]
        lz4 = bool(conn.execute(queries.SIMILARITY_LZ4).fetchone()[0])
        if lz4:
            conn.execute(queries.SIMILARITY_USE_LZ4)
        alive = _lock_recipes(conn, ids)
        conn.execute(queries.SIMILARITY_DELETE)
        selected = np.flatnonzero(np.isin(ids, alive))
        stages.lap("swap")
        cursor = conn.cursor()
        try:
            with cursor.copy(queries.SIMILARITY_COPY, writer=QueuedLibpqWriter(cursor)) as copy:
                chunks = similarity_copy_chunks(table, created_at, selected, CHUNK_ROWS,
                                                conn.info.encoding)
                for k, chunk in enumerate(chunks, 1):
                    stages.lap("json")
                    copy.write(chunk)
                    stages.lap("copy")
                    if k * CHUNK_ROWS % PROGRESS_ROWS == 0:
                        say(f"recipe_similarity: {k * CHUNK_ROWS}/{selected.size} rows copied")
        except psycopg.errors.ForeignKeyViolation as exc:
            # only without the lock (see _lock_recipes): a recipe deleted in between
            raise DataError(
                "recipe_similarity not replaced: a recipe was deleted while its row was being "
                f"written ({exc.diag.message_detail}); the table is unchanged and the next "
                "refresh, which the deletion asks for, writes it"
            ) from None
        stages.lap("copy")
        written = conn.execute(queries.SIMILARITY_COUNT).fetchone()[0]
        if written != selected.size:  # a bug, never bad data: roll back
            raise RuntimeError(f"recipe_similarity: {written} rows after writing "
                               f"{selected.size}; nothing was replaced")
        stages.lap("swap")
    stages.lap("commit")
    return SimilarityWrite(results, int(written), staged, stages.seconds,
                           "lz4" if lz4 else "pglz")
