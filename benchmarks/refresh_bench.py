"""Whole-refresh benchmark: the real asset graph, as ``cocktail-assets refresh`` runs it.

    python benchmarks/refresh_bench.py [--sizes sample,1000,5000,20000,100000]
        [--warm-repeats 3] [--repeat-max 5000] [--warm-max 100000]

For each size a fresh pair of databases (the site's and Dagster's instance storage) is created
on a PostgreSQL server: an embedded ``pgserver`` started by this script in a temporary folder,
or the server of DATABASE_URL (a URL with CREATE DATABASE rights) when it is set. The site
database is migrated and loaded with the bundled sample (``sample``) or with
``cocktail_assets.db.synth.synthesize(n, seed=0)`` (what ``cocktail-assets db synth`` runs).

Then, as after an install on a new machine, ``cocktail-assets compile`` fills an empty numba
cache folder (timed: the install step's compile), and ``cocktail-assets refresh`` runs as a
subprocess with DATABASE_URL, DAGSTER_PG_URL, COCKTAIL_LOCAL_DIR (artifacts) and
NUMBA_CACHE_DIR pointing at the benchmark's own places:

- first: the first refresh after that install (a new process on new databases, nothing
  compiled in the run); with ``--empty-cache`` no install step, so the first refresh compiles
  everything itself, as before the compile step existed;
- warm: the next ``--warm-repeats`` refreshes (sizes up to ``--repeat-max``; one above); the
  table shows their median.

Per run: wall seconds of the whole refresh process (Python start-up, Dagster, every asset and
the settle step included), its peak RSS (``os.wait4`` rusage of that child), each asset's
seconds from the refresh's own summary (the ``duration_s`` metadata of the materializations,
e.g. ``spaces/em_fit``, ``spaces/cocktail_space`` / ``cocktail_space_em`` (the UMAPs),
``spaces/recipe_similarity`` (the similarity write)), their sum (``assets s``) and the rest of
the wall time (``outside s``: interpreter and imports, Dagster's run and step machinery, the
IO manager, the settle step). Below each size, where the time of the two big assets goes, read
from the run's materialization metadata in Dagster's event log: the EM fit's stages
(``stage_seconds``) and the similarity write's (``rows_s``, ``json_s``, ``copy_s``, ``swap_s``,
...). Every line carries N. At the end: the first ÷ warm ratio per size, and the fitted
exponent (log-log slope) of warm time and peak RSS versus N over the sizes >= 5,000.

Not a test: nothing here is collected by pytest.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import psycopg

ROOT = Path(__file__).resolve().parents[1]
CLI = Path(sys.executable).with_name("cocktail-assets")
ASSETS_SHOWN = (
    ("catalog/recipe_volumes", "volumes"),
    ("spaces/rolled_up_recipes", "rollup"),
    ("spaces/manhattan_neighbors", "l1 knn"),
    ("spaces/em_fit", "em_fit"),
    ("spaces/cocktail_space", "umap l1"),
    ("spaces/cocktail_space_em", "umap em"),
    ("spaces/recipe_similarity", "sim write"),
)


@contextlib.contextmanager
def admin_url() -> Iterator[str]:
    configured = os.environ.get("DATABASE_URL")
    if configured:
        yield configured
        return
    import pgserver

    pgdata = Path(tempfile.mkdtemp(prefix="refresh-bench-pg-"))
    server = pgserver.get_server(pgdata, cleanup_mode="delete")
    try:
        yield server.get_uri("postgres")
    finally:
        server.cleanup()


def fresh_databases(admin: str, label: str) -> tuple[str, str]:
    """(site conninfo, dagster storage URL) of two new empty databases for one size."""
    from cocktail_assets.db.connection import dagster_storage_url, with_dbname
    from cocktail_assets.db.migrate import migrate

    names = (f"bench_{label}", f"bench_{label}_dagster")
    with psycopg.connect(admin, autocommit=True) as conn:
        for name in names:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
    site = with_dbname(admin, names[0])
    migrate(site)
    return site, dagster_storage_url(with_dbname(admin, names[1]))


def load(site: str, size: str) -> int:
    """Fill the site database; returns the number of recipes."""
    from cocktail_assets.db.seed import seed_sample
    from cocktail_assets.db.synth import synthesize

    with psycopg.connect(site) as conn:
        if size == "sample":
            seed_sample(conn)
        else:
            synthesize(conn, int(size), 0)
        return int(conn.execute("SELECT count(*) FROM recipes").fetchone()[0])


def run_refresh(env: dict[str, str], log: Path) -> tuple[float, float, dict[str, float], str]:
    """One ``cocktail-assets refresh``: (wall seconds, peak RSS MiB, seconds per asset, run
    id)."""
    t0 = time.perf_counter()
    with open(log, "w") as out:
        proc = subprocess.Popen([str(CLI), "refresh"], env=env, stdout=out, stderr=out, cwd=ROOT)
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    text = log.read_text()
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"refresh failed, see {log}:\n{text[-2000:]}")
    per_asset: dict[str, float] = {}
    for line in text.splitlines():
        cells = re.split(r"\s{2,}", line.strip())
        if len(cells) >= 2 and "/" in cells[0] and not cells[0].startswith("["):
            with contextlib.suppress(ValueError):
                per_asset[cells[0]] = float(cells[-1])
    found = re.search(r"refresh succeeded \(run ([0-9a-f-]+)\)", text)
    return wall, usage.ru_maxrss / 1024.0, per_asset, found.group(1) if found else ""


def compile_cache(env: dict[str, str], log: Path) -> float:
    """``cocktail-assets compile`` into the (empty) cache of ``env``, as the install does."""
    t0 = time.perf_counter()
    with open(log, "w") as out:
        done = subprocess.run([str(CLI), "compile"], env=env, stdout=out, stderr=out, cwd=ROOT,
                              check=False)
    if done.returncode != 0:
        raise RuntimeError(f"compile failed, see {log}:\n{log.read_text()[-2000:]}")
    return time.perf_counter() - t0


def stage_seconds(dagster_url: str, run_id: str) -> dict[str, dict[str, float]]:
    """Per asset of the run, its ``stage_seconds`` metadata (empty when it has none)."""
    import dagster as dg

    from cocktail_assets.db.connection import as_url

    url = as_url(dagster_url.replace("postgresql+psycopg2://", "postgresql://"))
    out: dict[str, dict[str, float]] = {}
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT event FROM event_logs WHERE run_id = %s "
            "AND dagster_event_type = 'ASSET_MATERIALIZATION'", (run_id,)).fetchall()
    for (text,) in rows:
        mat = dg.deserialize_value(text, dg.EventLogEntry).asset_materialization
        if mat is None:
            continue
        meta = {k: getattr(v, "value", v) for k, v in mat.metadata.items()}
        stages = dict(meta.get("stage_seconds") or {})
        # the similarity write's stages are flat metadata: rows_s, json_s, copy_s, ...
        stages.update({k.removesuffix("_s"): float(v) for k, v in meta.items()
                       if k.endswith("_s") and k != "duration_s" and isinstance(v, int | float)})
        if stages:
            out[mat.asset_key.to_user_string()] = stages
    return out


def bench_size(
    admin: str, size: str, warm_repeats: int, work: Path, empty_cache: bool
) -> dict:
    label = size
    site, dagster_url = fresh_databases(admin, label)
    t0 = time.perf_counter()
    n = load(site, size)
    load_s = time.perf_counter() - t0
    local = work / f"local-{label}"
    cache = work / f"numba-{label}"  # empty: a new machine
    local.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "DATABASE_URL": site,
        "DAGSTER_PG_URL": dagster_url,
        "COCKTAIL_LOCAL_DIR": str(local),
        "NUMBA_CACHE_DIR": str(cache),
        # measure the code of this checkout (e.g. a git worktree), not another editable install
        "PYTHONPATH": os.pathsep.join(
            [str(ROOT), str(ROOT / "packages" / "barcart"), os.environ.get("PYTHONPATH", "")]
        ),
    }
    for name in ("ANALYTICS_BUCKET", "BATCH_JOB_QUEUE", "BATCH_JOB_DEFINITION", "DAGSTER_HOME"):
        env.pop(name, None)
    compile_s = None if empty_cache else compile_cache(env, work / f"compile-{label}.log")
    runs = []
    for k in range(1 + warm_repeats):
        runs.append(run_refresh(env, work / f"refresh-{label}-{k}.log"))
    shutil.rmtree(local, ignore_errors=True)
    first = runs[0]
    warm = runs[1:]
    out = {
        "n": n,
        "size": size,
        "load_s": load_s,
        "compile_s": compile_s,
        "first": {"wall": first[0], "rss": first[1], "assets": first[2], "runs": 1},
        "warm": {"runs": 0},
        "stages": stage_seconds(dagster_url, (warm or runs)[-1][3]),
    }
    if warm:
        out["warm"] = {
            "wall": statistics.median(r[0] for r in warm),
            "rss": max(r[1] for r in warm),
            "assets": {
                key: statistics.median(r[2].get(key, float("nan")) for r in warm)
                for key in first[2]
            },
            "runs": len(warm),
        }
    return out


def print_row(r: dict, which: str) -> None:
    run = r[which]
    cells = " ".join(f"{run['assets'].get(key, float('nan')):9.2f}" for key, _ in ASSETS_SHOWN)
    assets = sum(v for v in run["assets"].values() if v == v)
    n_runs = f"x{run['runs']}" if which == "warm" else ""
    print(
        f"{r['n']:>7} {which + n_runs:<7} {cells} {assets:9.1f} {run['wall'] - assets:9.1f} "
        f"{run['wall']:9.1f} {run['rss']:9.0f}",
        flush=True,
    )


def print_stages(r: dict) -> None:
    for asset, stages in sorted(r["stages"].items()):
        cells = ", ".join(f"{k} {v:.2f}" for k, v in stages.items())
        print(f"{r['n']:>7}   {asset} stages (s): {cells}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="sample,1000,5000,20000,100000")
    ap.add_argument("--warm-repeats", type=int, default=3, help="warm refreshes per size")
    ap.add_argument("--repeat-max", type=int, default=5000,
                    help="above this many recipes, one warm refresh only")
    ap.add_argument("--warm-max", type=int, default=100_000,
                    help="above this many recipes, no warm refresh (cold only)")
    ap.add_argument("--empty-cache", action="store_true",
                    help="no install step: the first refresh compiles everything itself")
    ap.add_argument("--keep-logs", action="store_true")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="refresh-bench-"))
    header = " ".join(f"{short:>9}" for _, short in ASSETS_SHOWN)
    print(f"load average at start: {os.getloadavg()[0]:.2f} (2-core machine: other jobs count)")
    print(f"{'N':>7} {'run':<7} {header} {'assets s':>9} {'outside s':>9} {'whole s':>9} "
          f"{'peak MiB':>9}", flush=True)
    results = []
    with admin_url() as admin:
        for size in [s.strip() for s in args.sizes.split(",") if s.strip()]:
            n_hint = 157 if size == "sample" else int(size)
            repeats = 0 if n_hint > args.warm_max else (
                args.warm_repeats if n_hint <= args.repeat_max else 1
            )
            r = bench_size(admin, size, max(repeats, 0), work, args.empty_cache)
            results.append(r)
            print_row(r, "first")
            if r["warm"]["runs"]:
                print_row(r, "warm")
            print_stages(r)
            install = ("no install step" if r["compile_s"] is None
                       else f"install compile {r['compile_s']:.1f} s")
            print(f"{r['n']:>7} (data load {r['load_s']:.1f} s, {install}, load average "
                  f"{os.getloadavg()[0]:.2f})", flush=True)
    for r in results:
        if r["warm"]["runs"]:
            print(f"{r['n']:>7} first ÷ warm refresh: {r['first']['wall'] / r['warm']['wall']:.2f}"
                  f" (target <= 1.3 at 1,000 recipes)")
    big = [r for r in results if r["n"] >= 5000]
    if len(big) >= 2:
        x = np.log([r["n"] for r in big])
        which = "warm" if all(r["warm"]["runs"] for r in big) else "first"
        t = np.polyfit(x, np.log([r[which]["wall"] for r in big]), 1)[0]
        fit = np.polyfit(x, np.log([r[which]["assets"]["spaces/em_fit"] for r in big]), 1)[0]
        m = np.polyfit(x, np.log([r[which]["rss"] for r in big]), 1)[0]
        sizes = ",".join(str(r["n"]) for r in big)
        print(f"exponent vs N over N in {sizes} ({which}): whole refresh time {t:.2f}, "
              f"em_fit time {fit:.2f}, peak RSS {m:.2f}")
    if args.keep_logs:
        print(f"logs in {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
