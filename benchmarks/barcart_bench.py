"""Speed and memory of barcart's fast path against the plain reference, on the site's data.

    python benchmarks/barcart_bench.py [--sizes sample,1000,5000,20000,100000] [--repeats 3]
        [--reference-max 1000] [--data synth|barcart]

Data (``benchmarks/site_data.py``): ``sample`` is the bundled sample; a number N is the
synthetic site ``cocktail-assets db synth --recipes N`` loads (``--data synth``, the default)
or barcart's own uniform-Zipf generator (``--data barcart``).

Each size runs in its own subprocess (so peak RSS is per size). Prints one line per
(N, stage): median seconds over the repeats, peak RSS of the process so far (MiB), and where
the reference ran (N <= --reference-max) two ratios, reference seconds / fast seconds:

- ``plain/fast``: against the PLAIN reference, ``fit_em_reference(..., tie_break=False)``:
  exactly one ``ot.emd`` per pair, dense matrices, straight from docs/analytics.md. This is the
  baseline the issue's "30x" target is measured against.
- ``canon/fast``: against the canonical-plan reference (``tie_break=True``, a second
  ``ot.emd`` per pair to pick the same optimal plan as the fast path; the test oracle).

Same data, same K (EMParams default 100) and the same iterations: every fit runs with
``EMParams(tol=0)``, i.e. exactly ``max_iter`` = 5 iterations (with the default tolerance the
plain reference, whose plans differ on ties, may stop after a different number of
iterations). Median of --repeats.
Then the fitted exponent of time and memory versus N over the sizes >= 5,000.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

import numpy as np


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run_one(size: str, data: str, repeats: int, with_reference: bool) -> dict:
    from barcart import (
        EMParams,
        TreeMetric,
        embed_em,
        embed_manhattan,
        fit_em,
        nearest_neighbors,
        rollup,
        synthetic_recipes,
        tree_distance_matrix,
    )
    from barcart.reference import fit_em_reference
    from scipy.stats import spearmanr

    # warm-up: load the compiled kernels from numba's cache (or compile them once)
    tree, allow, small = synthetic_recipes(60, 50, seed=1)
    rs = rollup(small, tree, allow)
    ids = tree.ancestors_closure(rs.ingredient_ids)
    res = fit_em(rs, ids, tree_distance_matrix(tree, ids), EMParams(k_candidates=5, max_iter=1))
    embed_em(res, rs.n_recipes)
    embed_manhattan(small)
    nearest_neighbors(res, rs.n_recipes)

    from site_data import recipe_set

    tree, allow, matrix = recipe_set(size, data)
    n = matrix.n_recipes
    rolled = rollup(matrix, tree, allow)
    ids = tree.ancestors_closure(rolled.ingredient_ids)
    cost = tree_distance_matrix(tree, ids)
    metric = TreeMetric.from_tree(tree, ids)  # as the em_fit asset passes it
    params = EMParams(tol=0.0)  # exactly max_iter iterations for every implementation
    stages: dict[str, list[float]] = {}
    rss: dict[str, float] = {}

    def record(name: str, seconds: float) -> None:
        stages.setdefault(name, []).append(seconds)
        rss[name] = _rss_mib()

    for _ in range(repeats):
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        res = fit_em(rolled, ids, cost, params, timings=timings, tree_metric=metric)
        total = time.perf_counter() - t0
        for k in ("candidates", "e-step", "m-step"):
            record(k, timings[k])
        record("em total", total)
        t0 = time.perf_counter()
        embed_manhattan(matrix)
        record("umap manhattan", time.perf_counter() - t0)
        t0 = time.perf_counter()
        embed_em(res, rolled.n_recipes)
        record("umap em", time.perf_counter() - t0)
        t0 = time.perf_counter()
        nearest_neighbors(res, rolled.n_recipes)
        record("similarity", time.perf_counter() - t0)
    out = {
        "size": size,
        "n": n,
        "pairs": len(res.pair_i),
        "iterations": res.iterations,
        "fast": {k: statistics.median(v) for k, v in stages.items()},
        "rss": rss,
        "reference": {},
    }
    out["canonical"] = {}
    if with_reference:
        iu = np.triu_indices(len(ids), 1)
        for label, tie in (("reference", False), ("canonical", True)):
            ref_t: dict[str, list[float]] = {}
            for _ in range(repeats):
                timings = {}
                t0 = time.perf_counter()
                ref = fit_em_reference(rolled, ids, cost, params, timings=timings, tie_break=tie)
                timings["em total"] = time.perf_counter() - t0
                for k, v in timings.items():
                    ref_t.setdefault(k, []).append(v)
            out[label] = {k: statistics.median(v) for k, v in ref_t.items()}
            out[f"{label}_iterations"] = ref.iterations
            out[f"{label}_max_abs_cost_diff"] = float(np.abs(ref.cost[iu] - res.cost[iu]).max())
            out[f"{label}_spearman"] = float(spearmanr(ref.cost[iu], res.cost[iu]).statistic)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="sample,1000,5000,20000,100000")
    ap.add_argument("--data", choices=("synth", "barcart"), default="synth")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--reference-max", type=int, default=1000)
    ap.add_argument("--one", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one is not None:
        small = args.one == "sample" or int(args.one) <= args.reference_max
        print(json.dumps(run_one(args.one, args.data, args.repeats, small)))
        return
    results = []
    print(
        f"{'N':>7} {'stage':<15} {'seconds':>9} {'peak MiB':>9} {'plain/fast':>10} "
        f"{'canon/fast':>10}"
    )
    for size in [s for s in args.sizes.split(",") if s]:
        cmd = [
            sys.executable,
            __file__,
            "--one",
            size,
            "--data",
            args.data,
            "--repeats",
            str(args.repeats),
            "--reference-max",
            str(args.reference_max),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        results.append(r)
        n = r["n"]
        for stage, sec in r["fast"].items():
            ratios = []
            for label in ("reference", "canonical"):
                ref = r[label].get(stage)
                ratios.append(f"{ref / sec:10.1f}" if ref else f"{'-':>10}")
            print(f"{n:>7} {stage:<15} {sec:9.3f} {r['rss'][stage]:9.0f} {' '.join(ratios)}")
        for label, name in (("reference", "plain"), ("canonical", "canonical-plan")):
            if r[label]:
                print(
                    f"{n:>7} {name} reference: EM {r[label]['em total']:.2f} s, "
                    f"{r[label + '_iterations']} iterations; learned cost vs fast: max |diff| "
                    f"{r[label + '_max_abs_cost_diff']:.1e}, Spearman "
                    f"{r[label + '_spearman']:.4f}"
                )
        print(f"{n:>7} ({r['pairs']} pairs, {r['iterations']} iterations)", flush=True)
    big = [r for r in results if r["size"] != "sample" and r["n"] >= 5000]
    if len(big) >= 2:
        x = np.log([r["n"] for r in big])
        t = np.polyfit(x, np.log([r["fast"]["em total"] for r in big]), 1)[0]
        all_t = np.polyfit(
            x, np.log([sum(v for k, v in r["fast"].items() if k != "em total") for r in big]), 1
        )[0]
        m = np.polyfit(x, np.log([max(r["rss"].values()) for r in big]), 1)[0]
        sizes = ",".join(str(r["n"]) for r in big)
        print(
            f"exponent vs N over N in {sizes}: EM time {t:.2f}, all stages time {all_t:.2f}, "
            f"peak RSS {m:.2f}"
        )


if __name__ == "__main__":
    main()
