"""The recipe_similarity write at N recipes, stage by stage, against its 10 s target.

What it times: ``cocktail_assets.spaces.similarity_table.write_similarity``, the very function
the asset ``spaces/recipe_similarity`` calls, on a site of ``--recipes`` recipes, into a
recipe_similarity table that is already full (every timed write replaces the rows of the
previous one, as a refresh does, after an untimed ``VACUUM`` of the table: what autovacuum does
between two refreshes, so that the runs do not pile up each other's dead rows). The write
reports its own seconds per stage (the asset puts them in its materialization metadata as
``<stage>_s``); this script prints their medians over ``--repeats`` writes with the total and
its ratio to the 10 s target, and the process's peak RSS during the writes (sampled every
20 ms) above what the inputs already held.

The inputs, without the two-minute EM fit:

- the site: ``cocktail_assets.db.synth.synthesize(N, seed=0)`` (what ``cocktail-assets db synth``
  loads) in a scratch database, read back with the catalog assets' own loaders
  (``load_catalog``, ``load_recipe_volumes``) in one snapshot, rolled up as ``spaces/em_fit``'s
  input is;
- the fit: an ``EMResult`` with the real one's structure. Each recipe is paired with
  ``--candidates`` random other recipes (default 100, the EM's K; pairs kept once, i < j,
  sorted: about N x K pairs, the upper end of what the EM computes). Each pair's plan is the
  north-west-corner transport between the two rolled-up recipes' fractions (mass from the first
  recipe's ingredients to the second's, identity flows where they share one, at most m + n - 1
  flows), and its distance is that plan's cost under the tree distances the EM starts from.
  ``barcart.nearest_neighbors`` reads it exactly as it reads a fitted one.

Where the server runs on this machine (the pgserver default), each write's line also gives the
CPU seconds its PostgreSQL backend spent (reading the COPY, parsing the jsonb, compressing it
into TOAST, writing the WAL): the part of the total no client-side change can remove. The TOAST
compression the write used is shown too (lz4 where the server supports it, else pglz).

``--verify K`` then compares K random rows of the table (0: none, -1: all) with the reference
construction (``shape.similarity_rows``: dicts, ``json.dumps``) as Python values: same keys,
same ids and names, bit-identical floats.

    NUMBA_CACHE_DIR=$PWD/.local/numba-cache .venv/bin/python \\
        benchmarks/similarity_write_bench.py [--recipes 100000] [--candidates 100] \\
        [--repeats 3] [--verify 2000]

Uses a scratch database on the server of DATABASE_URL (created and dropped here; that role
needs CREATEDB), or a throwaway pgserver when DATABASE_URL is not set. Not a test: nothing
here is collected by pytest.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time

import numba
import numpy as np
import psycopg
from barcart import EMResult, TransportPlans, rollup, tree_distance_matrix

sys.path.insert(0, os.path.dirname(__file__))
from trigger_overhead import scratch_database

from cocktail_assets.catalog.load import load_catalog, load_recipe_volumes
from cocktail_assets.db.migrate import migrate
from cocktail_assets.db.synth import synthesize
from cocktail_assets.resources.database import CocktailDatabase
from cocktail_assets.resources.params import AnalyticsParams
from cocktail_assets.spaces.shape import iter_similarity_rows
from cocktail_assets.spaces.similarity_table import write_similarity

TARGET_S = 10.0


@numba.njit(cache=False)
def _north_west(indptr, positions, fractions, pair_i, pair_j, cost, count_only, ptr,
                source, target, mass, distance):
    """North-west-corner plan of each pair (i, j): mass of i's ingredients (in id order) to
    j's, segment by segment of the two cumulative fractions. With ``count_only`` it only
    counts the flows into ``ptr[q + 1]``."""
    for q in range(pair_i.shape[0]):
        i, j = pair_i[q], pair_j[q]
        a, a_end = indptr[i], indptr[i + 1]
        b, b_end = indptr[j], indptr[j + 1]
        ca, cb = fractions[a], fractions[b]
        previous = 0.0
        f = 0 if count_only else ptr[q]
        d = 0.0
        while a < a_end and b < b_end:
            upto = min(ca, cb)
            if upto - previous > 1e-12:
                if not count_only:
                    source[f] = positions[a]
                    target[f] = positions[b]
                    mass[f] = upto - previous
                    d += (upto - previous) * cost[positions[a], positions[b]]
                f += 1
            previous = upto
            if ca <= upto:
                a += 1
                if a < a_end:
                    ca += fractions[a]
            if cb <= upto:
                b += 1
                if b < b_end:
                    cb += fractions[b]
        if count_only:
            ptr[q + 1] = f
        else:
            distance[q] = d


def synthetic_fit(rolled, catalog, candidates: int, edge_weight: float, seed: int = 0):
    """An EMResult shaped like a fitted one (see the module docstring)."""
    n = rolled.n_recipes
    rng = np.random.default_rng(seed)
    first = np.repeat(np.arange(n, dtype=np.int64), candidates)
    other = rng.integers(0, n - 1, size=first.size)
    other += other >= first  # never the recipe itself
    keys = np.unique(np.minimum(first, other) * n + np.maximum(first, other))
    del first, other
    pair_i, pair_j = (keys // n).astype(np.int32), (keys % n).astype(np.int32)
    del keys
    cost_ids = catalog.tree.ancestors_closure(rolled.ingredient_ids)
    cost = tree_distance_matrix(catalog.tree, cost_ids, edge_weight=edge_weight)
    csr = rolled.fractions.tocsr()
    csr.sort_indices()
    positions = np.searchsorted(cost_ids, rolled.ingredient_ids[csr.indices]).astype(np.int32)
    fractions = csr.data.astype(np.float64)
    indptr = csr.indptr.astype(np.int64)
    p = pair_i.size
    counts = np.zeros(p + 1, dtype=np.int64)
    none_i, none_f = np.zeros(0, np.int32), np.zeros(0)
    _north_west(indptr, positions, fractions, pair_i, pair_j, cost, True, counts,
                none_i, none_i, none_f, none_f)
    ptr = np.zeros(p + 1, dtype=np.int64)
    np.cumsum(counts[1:], out=ptr[1:])
    source = np.empty(ptr[-1], dtype=np.int32)
    target = np.empty(ptr[-1], dtype=np.int32)
    mass = np.empty(ptr[-1])
    distance = np.empty(p)
    _north_west(indptr, positions, fractions, pair_i, pair_j, cost, False, ptr,
                source, target, mass, distance)
    plans = TransportPlans(ptr, source, target, mass)
    return EMResult(cost_ids, cost, pair_i, pair_j, distance, plans, 5, True, ())


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a local process (the server's backend), None when the
    server runs elsewhere."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        with open(f"/proc/{pid}/comm") as f:
            if "postgres" not in f.read():
                return None
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class PeakRss:
    """The process's largest RSS while the block runs, sampled every 20 ms."""

    def __enter__(self) -> PeakRss:
        self.peak = _rss_mib()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, _rss_mib())

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_mib())


def verify(url: str, fit, volumes, catalog, n_neighbors: int, sample: int) -> str:
    """Compare table rows with the reference construction; a mismatch raises."""
    import json

    ids = volumes.matrix.recipe_ids
    if sample < 0 or sample >= ids.size:
        chosen = set(ids.tolist())
    else:
        chosen = set(np.random.default_rng(1).choice(ids, sample, replace=False).tolist())
    with psycopg.connect(url) as conn:
        table = {r: (name, nbs) for r, name, nbs in conn.execute(
            "SELECT recipe_id, recipe_name, neighbors FROM recipe_similarity "
            "WHERE recipe_id = ANY(%s)", (sorted(chosen),))}
        stamps = conn.execute(
            "SELECT count(DISTINCT created_at) FROM recipe_similarity").fetchone()[0]
    checked = 0
    for recipe_id, name, neighbors in iter_similarity_rows(fit, volumes, catalog, n_neighbors):
        if recipe_id not in chosen:
            continue
        want = (name, json.loads(json.dumps(neighbors, ensure_ascii=False)))
        if table.get(recipe_id) != want:
            raise AssertionError(f"recipe {recipe_id}: the table's row differs from the "
                                 f"reference: {table.get(recipe_id)!r:.300} != {want!r:.300}")
        checked += 1
    if checked != len(chosen) or len(table) != len(chosen):
        raise AssertionError(f"{len(table)} rows of {len(chosen)} chosen, {checked} checked")
    if stamps != 1:
        raise AssertionError(f"{stamps} distinct created_at values, expected 1")
    return f"{checked} rows identical to the reference construction"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipes", type=int, default=100_000)
    parser.add_argument("--candidates", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--verify", type=int, default=2000)
    args = parser.parse_args()
    n = args.recipes
    params = AnalyticsParams()
    with scratch_database() as url:
        migrate(url)
        started = time.perf_counter()
        with psycopg.connect(url) as conn:
            synthesize(conn, n, 0, activity_days=0)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE")
        database = CocktailDatabase(url=url)
        with database.snapshot() as conn:
            catalog = load_catalog(conn)
            volumes = load_recipe_volumes(conn, catalog)
        rolled = rollup(volumes.matrix, catalog.tree, catalog.allow_substitution)
        fit = synthetic_fit(rolled, catalog, args.candidates, params.edge_weight)
        flows = int(fit.plans.ptr[-1])
        print(f"N={n} inputs: {fit.pair_i.size} pairs, {flows} flows "
              f"({flows / fit.pair_i.size:.1f} per plan), built in "
              f"{time.perf_counter() - started:.1f} s; load average {os.getloadavg()[0]:.2f}",
              flush=True)

        def write() -> tuple[dict[str, float], float, int, float | None, str | None]:
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("VACUUM recipe_similarity")
            with database.connect() as conn:
                backend = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
                conn.commit()
                cpu = _cpu_seconds(backend)
                t = time.perf_counter()
                done = write_similarity(conn, fit, volumes, catalog, params.similarity_neighbors)
                total = time.perf_counter() - t
                after = _cpu_seconds(backend)
            if not done.passed:
                raise SystemExit(f"N={n} a check failed: {[r.description for r in done.results]}")
            server = after - cpu if cpu is not None and after is not None else None
            return done.seconds, total, done.written, server, getattr(done, "compression", None)

        write()  # fills the table (and loads the compiled kernels): each timed write replaces
        inputs = _rss_mib()
        runs = []
        with PeakRss() as rss:
            for k in range(args.repeats):
                seconds, total, written, server, compression = write()
                runs.append((seconds, total, server))
                busy = f", server backend CPU {server:.2f} s" if server is not None else ""
                print(f"N={n} write {k + 1}/{args.repeats}: {total:.2f} s, {written} rows "
                      f"({', '.join(f'{s} {v:.2f}' for s, v in seconds.items())}){busy}; "
                      f"TOAST compression {compression or '-'}; load average "
                      f"{os.getloadavg()[0]:.2f}", flush=True)
        with psycopg.connect(url) as conn:
            size = conn.execute(
                "SELECT pg_total_relation_size('recipe_similarity'), "
                "sum(octet_length(neighbors::text)) FROM recipe_similarity").fetchone()
        print(f"N={n} table: {size[0] / 2**20:.0f} MiB on disk (TOAST and index included), "
              f"{size[1] / 2**20:.0f} MiB of JSON text")
        print(f"{'N':>7} {'stage':<8} {'seconds':>8}   (median of {args.repeats} writes)")
        for stage in runs[0][0]:
            value = statistics.median(r[0].get(stage, 0.0) for r in runs)
            print(f"{n:>7} {stage:<8} {value:8.2f}")
        total = statistics.median(r[1] for r in runs)
        print(f"{n:>7} {'total':<8} {total:8.2f}   {total / TARGET_S:.2f} x the "
              f"{TARGET_S:.0f} s target ({'ok' if total <= TARGET_S else 'over'})")
        if all(r[2] is not None for r in runs):
            server = statistics.median(r[2] for r in runs)
            print(f"{n:>7} {'server':<8} {server:8.2f}   CPU seconds of the PostgreSQL backend "
                  "(parsing, TOAST, WAL), within the total")
        print(f"{n:>7} peak RSS during the writes {rss.peak:.0f} MiB, "
              f"{rss.peak - inputs:.0f} MiB above the inputs' {inputs:.0f} MiB")
        if args.verify:
            print(f"N={n} verify: "
                  f"{verify(url, fit, volumes, catalog, params.similarity_neighbors, args.verify)}")


if __name__ == "__main__":
    main()
