"""Speed of the daily activity metrics on a synthetic site (``db synth``, one year of activity).

Loads a site of ``--recipes`` recipes (default 100,000) with a year of activity into a scratch
database, then times, through the real asset and job (in-process runs into a temporary Dagster
instance, local artifact store, CloudWatch off):

- one day's partition, median of ``--repeats`` runs (target: under 1 s), and the aggregation
  query alone;
- a 365-day backfill as the backfill policy plans it: runs of at most
  ``--days-per-run`` days (default 31), each aggregating its days in one query (target: under
  60 s), with the per-day time.

    python benchmarks/activity_bench.py [--recipes 100000] [--repeats 5] [--days-per-run 31]

The daemon's process start-up per run (a few seconds each on two cores) is not in these numbers:
``cocktail-assets backfill`` adds it once per run.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta

import dagster as dg
import psycopg

sys.path.insert(0, os.path.dirname(__file__))
from trigger_overhead import scratch_database

from cocktail_assets.activity import build_activity
from cocktail_assets.activity.assets import aggregate_days
from cocktail_assets.activity.automation import JOB_NAME
from cocktail_assets.activity.cloudwatch import ActivityMetrics
from cocktail_assets.dagster_private import RANGE_END_TAG, RANGE_START_TAG
from cocktail_assets.db.migrate import migrate
from cocktail_assets.db.synth import synthesize
from cocktail_assets.environments import read_settings
from cocktail_assets.resources.database import CocktailDatabase
from cocktail_assets.resources.store import AnalyticsStore


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipes", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--days-per-run", type=int, default=31)
    args = parser.parse_args()
    today = datetime.now(UTC).date()
    first = today - timedelta(days=365)
    with scratch_database() as url:
        migrate(url)
        started = time.perf_counter()
        with psycopg.connect(url) as conn:
            counts = synthesize(conn, args.recipes, 0, activity_days=365)
        print(f"N={args.recipes} synth with a year of activity: {counts} "
              f"({time.perf_counter() - started:.1f} s); load average {os.getloadavg()[0]:.2f}")
        settings = dataclasses.replace(
            read_settings({}), activity_start_date=first.isoformat(),
            activity_days_per_run=args.days_per_run,
        )
        domain = build_activity(settings)
        database = CocktailDatabase(url=url)
        with tempfile.TemporaryDirectory() as folder, dg.instance_for_test() as instance:
            defs = dg.Definitions(
                assets=domain.assets, jobs=domain.jobs,
                resources={"database": database,
                           "store": AnalyticsStore(local_dir=folder),
                           "activity_metrics": ActivityMetrics(enabled=False)},
            )
            job = defs.resolve_job_def(JOB_NAME)
            daily = [dg.AssetKey(["activity", "daily"])]
            day = today - timedelta(days=3)

            query = []
            for _ in range(args.repeats):
                t = time.perf_counter()
                aggregate_days(database, day, day + timedelta(days=1))
                query.append(time.perf_counter() - t)
            one = []
            for _ in range(args.repeats):
                t = time.perf_counter()
                assert job.execute_in_process(instance=instance, partition_key=day.isoformat(),
                                              asset_selection=daily).success
                one.append(time.perf_counter() - t)
            verdict = "ok" if statistics.median(one) < 1 else "over the 1 s target"
            print(f"N={args.recipes} one day: aggregation query {statistics.median(query):.3f} s, "
                  f"whole partition run {statistics.median(one):.3f} s (median of "
                  f"{args.repeats}) {verdict}")

            days = [first + timedelta(days=i) for i in range(365)]
            batches = [days[i : i + args.days_per_run]
                       for i in range(0, len(days), args.days_per_run)]
            started = time.perf_counter()
            for i, batch in enumerate(batches, 1):
                t = time.perf_counter()
                assert job.execute_in_process(
                    instance=instance, asset_selection=daily,
                    tags={RANGE_START_TAG: batch[0].isoformat(),
                          RANGE_END_TAG: batch[-1].isoformat()},
                ).success
                elapsed = time.perf_counter() - t
                print(f"N={args.recipes} backfill run {i}/{len(batches)}: {len(batch)} days "
                      f"{batch[0]}..{batch[-1]} in {elapsed:.2f} s "
                      f"({elapsed / len(batch) * 1000:.0f} ms per day)")
            total = time.perf_counter() - started
            print(f"N={args.recipes} 365-day backfill: {len(batches)} runs, {total:.1f} s, "
                  f"{total / 365 * 1000:.0f} ms per day "
                  f"{'ok' if total < 60 else 'over the 60 s target'}")


if __name__ == "__main__":
    main()
