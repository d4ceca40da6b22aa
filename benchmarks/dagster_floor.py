"""Dagster's own floor under a refresh: the refresh graph with assets that do nothing.

    python benchmarks/dagster_floor.py [--repeats 5]

What a warm ``cocktail-assets refresh`` spends outside its assets' work (``outside s`` in
``benchmarks/refresh_bench.py``) is partly ours (the IO manager, the settle step, our imports)
and partly Dagster's: the interpreter and Dagster's import, building the definitions, the
reconstructable job, creating the run in the instance, and each step's events. This script
measures the second part on its own. A child process builds the refresh job's exact shape (the
same asset keys and dependencies, read from the real definitions, each asset returning
``None`` through Dagster's in-memory IO manager) and runs it with ``dg.execute_job`` on a
reconstructable job and the project's instance (``dagster.yaml``: run, event-log and compute-log
storage in PostgreSQL), as the CLI does. Three variants, each ``--repeats`` times in a fresh
process (the table shows the median wall time and the largest peak RSS):

- ``import dagster``: the interpreter and ``import dagster`` only;
- ``no-op graph``: that, plus the definitions and the run of the no-op graph;
- ``no-op graph, held connections``: that, with the storages' connections held for the run as
  the project's executor holds them (``refresh.jobs.hold_storage_connections``);
- ``no-op graph + libraries``: held connections, also importing what the real assets import
  (numpy, SciPy, pandas, numba, umap-learn and through it scikit-learn and pynndescent,
  barcart): the time and memory any refresh that computes a UMAP starts from.

Uses a throwaway pgserver for the instance storage (or the server of DATABASE_URL, with CREATE
DATABASE rights). Not a test: nothing here is collected by pytest.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))  # the benchmarks' shared scratch database
LIBRARIES = ("numpy", "scipy.sparse", "scipy.optimize", "pandas", "numba", "umap", "barcart")


def graph_shape() -> dict[str, list[str]]:
    """Each asset of the refresh job and the assets of the job it depends on."""
    from cocktail_assets.definitions import analytics_refresh_job, defs

    job = analytics_refresh_job()
    graph = defs.resolve_asset_graph()
    keys = {k for k in job.asset_layer.executable_asset_keys}
    return {
        key.to_user_string(): sorted(
            p.to_user_string() for p in graph.get(key).parent_keys if p in keys
        )
        for key in sorted(keys)
    }


def noop_job():
    """The refresh job's shape with assets that return nothing (child process)."""
    import dagster as dg

    shape = json.loads(os.environ["FLOOR_SHAPE"])

    def noop(key: str, deps: list[str]) -> dg.AssetsDefinition:
        @dg.asset(key=dg.AssetKey.from_user_string(key),
                  deps=[dg.AssetKey.from_user_string(d) for d in deps],
                  io_manager_key="mem")
        def body() -> None:
            return None

        return body

    defs = dg.Definitions(
        assets=[noop(k, d) for k, d in shape.items()],
        jobs=[dg.define_asset_job("floor", selection="*", executor_def=dg.in_process_executor)],
        resources={"mem": dg.InMemoryIOManager()},
    )
    return defs.resolve_job_def("floor")


def child(variant: str) -> None:
    """One measured process: import dagster, and per variant run the no-op graph."""
    import dagster as dg

    if variant == "import":
        return
    if variant == "libraries":
        import importlib

        for name in LIBRARIES:
            importlib.import_module(name)
    with dg.DagsterInstance.get() as instance:
        if variant in ("held", "libraries"):
            from cocktail_assets.refresh.jobs import hold_storage_connections

            hold_storage_connections(instance)
        result = dg.execute_job(dg.reconstructable(noop_job), instance=instance)
        if not result.success:
            raise SystemExit("the no-op graph failed")


@contextlib.contextmanager
def storage_url() -> Iterator[str]:
    """A new empty database for the instance, as a Dagster storage URL."""
    from trigger_overhead import scratch_database

    from cocktail_assets.db.connection import dagster_storage_url

    with scratch_database() as url:
        yield dagster_storage_url(url)


def measure(variant: str, env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, peak RSS MiB) of one child process."""
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, __file__, "--child", variant], env=env, cwd=ROOT)
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"the {variant} child failed")
    return time.perf_counter() - started, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--child", choices=("import", "graph", "held", "libraries"))
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    shape = graph_shape()
    with storage_url() as url, tempfile.TemporaryDirectory(prefix="floor-") as work:
        env = {
            **os.environ,
            "DAGSTER_HOME": str(ROOT),
            "DAGSTER_PG_URL": url,
            "COCKTAIL_DAGSTER_STORAGE": str(Path(work) / "dagster"),
            "COCKTAIL_DAGSTER_COMPUTE_LOGS": str(Path(work) / "dagster" / "compute_logs"),
            "FLOOR_SHAPE": json.dumps(shape),
        }
        measure("graph", env)  # the instance's schema is created by the first run
        print(f"refresh graph: {len(shape)} assets; median wall (largest peak RSS) of "
              f"{args.repeats} fresh processes")
        for variant, label in (("import", "import dagster"), ("graph", "no-op graph"),
                               ("held", "no-op graph, held connections"),
                               ("libraries", "no-op graph + libraries")):
            runs = [measure(variant, env) for _ in range(args.repeats)]
            wall = statistics.median(r[0] for r in runs)
            print(f"{label:<30} {wall:6.2f} s  {max(r[1] for r in runs):6.0f} MiB", flush=True)


if __name__ == "__main__":
    main()
