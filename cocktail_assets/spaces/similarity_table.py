"""Writing the ``recipe_similarity`` table: the rows are checked, then replace the table in one
transaction. The asset ``spaces/recipe_similarity`` and ``benchmarks/similarity_write_bench.py``
both call :func:`write_similarity`, which times each stage of the write."""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import dagster as dg
import numpy as np
import psycopg
from barcart import EMResult

from cocktail_assets import queries
from cocktail_assets.catalog.load import IngredientCatalog, RecipeVolumes
from cocktail_assets.checks import repeated_or_missing, verdict
from cocktail_assets.spaces.shape import SimilarityRow, iter_similarity_rows

# Tolerance of the neighbours' order check on floating-point distances.
ORDER_TOL = 1e-9


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
    """What a write did: its check results, rows written, and seconds per stage."""

    results: list[dg.AssetCheckResult]
    written: int
    staged: int
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)


class NeighborCheck:
    """The neighbour invariants, evaluated on each row as it streams into COPY (the rows of
    100,000 recipes are never held together): sorted by distance, never the recipe itself,
    distances finite and >= 0, transport masses in (0, 1]."""

    def __init__(self) -> None:
        self.offending: list[int] = []

    def see(self, recipe_id: int, neighbors: list[dict[str, Any]]) -> None:
        distances = [nb["distance"] for nb in neighbors]
        ok = all(np.isfinite(distances)) and all(x >= 0 for x in distances)
        ok = ok and all(b >= a - ORDER_TOL for a, b in itertools.pairwise(distances))
        ok = ok and all(nb["neighbor_recipe_id"] != recipe_id for nb in neighbors)
        ok = ok and all(
            0 < f["mass"] <= 1 for nb in neighbors for f in nb["transport_plan"]
        )
        if not ok:
            self.offending.append(recipe_id)


def _stage(
    conn: psycopg.Connection, rows: Iterator[SimilarityRow], check: NeighborCheck,
    stages: Stages,
) -> int:
    conn.execute(queries.SIMILARITY_STAGING)
    staged = 0
    with conn.cursor().copy(queries.SIMILARITY_COPY) as copy:
        stages.lap("copy")
        for recipe_id, name, neighbors in rows:
            stages.lap("rows")
            check.see(recipe_id, neighbors)
            stages.lap("checks")
            text = json.dumps(neighbors, ensure_ascii=False)
            stages.lap("json")
            copy.write_row((recipe_id, name, text))
            stages.lap("copy")
            staged += 1
        stages.lap("rows")
    stages.lap("copy")
    return staged


def write_similarity(
    conn: psycopg.Connection, fit: EMResult, volumes: RecipeVolumes,
    catalog: IngredientCatalog, n_neighbors: int,
) -> SimilarityWrite:
    """Shape each recipe's ``n_neighbors`` nearest recipes, stage them by COPY, check them,
    and replace the table with them in the same transaction when every check passed
    (otherwise the table is left as it was). Recipes deleted since the snapshot the rows were
    computed from are left out.

    ``conn`` must not be in a transaction; stages: rows, json, copy, checks, swap, commit."""
    stages = Stages()
    rows = iter_similarity_rows(fit, volumes, catalog, n_neighbors)
    expected_ids = volumes.expected_recipe_ids
    neighbors = NeighborCheck()
    written = 0
    with conn.transaction():
        staged = _stage(conn, rows, neighbors, stages)
        counted = conn.execute(queries.SIMILARITY_STAGED_IDS).fetchall()
        results = [
            verdict("each_recipe_once",
                    repeated_or_missing([r for r, k in counted for _ in range(k)],
                                        expected_ids.tolist()),
                    "recipes missing, repeated or unexpected in the staged rows",
                    metadata={"staged": staged}),
            verdict("neighbors_valid", neighbors.offending,
                    "recipes whose neighbours are unsorted, include the recipe or carry a "
                    "mass outside (0, 1]"),
        ]
        stages.lap("checks")
        if all(r.passed for r in results):
            conn.execute(queries.SIMILARITY_SWAP_DELETE)
            written = conn.execute(queries.SIMILARITY_SWAP_INSERT).rowcount
        stages.lap("swap")
        # otherwise the transaction commits nothing but a dropped temporary table
    stages.lap("commit")
    return SimilarityWrite(results, written, staged, stages.seconds)
