"""The ``cocktail-assets`` command.

Errors a user can cause (settings, an unreachable database, bad data, a failed migration) print
one line and exit with status 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

from cocktail_assets.errors import CocktailAssetsError

EXIT_USER_ERROR = 2


def _settings():
    from cocktail_assets.environments import read_settings

    return read_settings()


def _database_url(settings) -> str:
    if settings.database_url:
        return settings.database_url
    from cocktail_assets.db.embedded import ensure_embedded

    return ensure_embedded(settings.local_dir).analytics_url


def cmd_migrate(args: argparse.Namespace) -> int:
    from cocktail_assets.db.migrate import migrate, pending

    url = _database_url(_settings()) if not args.database_url else args.database_url
    if args.dry_run:
        todo = pending(url)
        print("\n".join(f"would apply {m.name}" for m in todo) or "up to date")
        return 0
    applied = migrate(url, log=print)
    print(f"applied {len(applied)} migration(s)" if applied else "up to date")
    return 0


def cmd_db_seed(args: argparse.Namespace) -> int:
    from cocktail_assets.db.connection import connect
    from cocktail_assets.db.seed import seed_sample

    with connect(_database_url(_settings())) as conn:
        counts = seed_sample(conn)
    print(", ".join(f"{table}: {n}" for table, n in counts.items()))
    return 0


def cmd_db_stop(args: argparse.Namespace) -> int:
    from cocktail_assets.db.embedded import stop_embedded

    settings = _settings()
    if not settings.embedded:
        print("db stop: DATABASE_URL is set; only the embedded server is stopped here")
        return 0
    pgdata = settings.local_dir / "pgdata"
    print(f"stopped the embedded PostgreSQL in {pgdata}" if stop_embedded(settings.local_dir)
          else f"the embedded PostgreSQL in {pgdata} is not running")
    return 0


def cmd_db_synth(args: argparse.Namespace) -> int:
    from cocktail_assets.db.connection import connect
    from cocktail_assets.db.synth import synthesize

    started = time.perf_counter()
    with connect(_database_url(_settings())) as conn:
        counts = synthesize(conn, args.recipes, args.seed, progress=print,
                            activity_days=args.days)
    summary = ", ".join(f"{table}: {n}" for table, n in counts.items())
    print(f"{summary} ({time.perf_counter() - started:.1f} s)")
    return 0


def cmd_refresh(args: argparse.Namespace) -> int:
    settings = _settings()
    import dagster as dg

    from cocktail_assets import definitions
    from cocktail_assets.refresh.run import run_refresh

    job = dg.reconstructable(definitions.analytics_refresh_job)
    graph = definitions.defs.resolve_asset_graph()
    ok = run_refresh(settings, job, graph, args.select, out=print, wait=not args.no_wait)
    return 0 if ok else 1


def cmd_backfill(args: argparse.Namespace) -> int:
    settings = _settings()
    from cocktail_assets.activity.backfill import day_range, run_backfill

    day_range(settings, args.start, args.end)  # a bad range fails before anything starts
    if settings.embedded:
        _database_url(settings)  # start, migrate and seed before the daemon's processes join it

    from cocktail_assets import definitions

    graph = definitions.defs.resolve_asset_graph()
    return 0 if run_backfill(settings, graph, args.start, args.end, out=print,
                             timeout_minutes=args.timeout_minutes) else 1


def cmd_status(args: argparse.Namespace) -> int:
    settings = _settings()
    from cocktail_assets import definitions
    from cocktail_assets.refresh.status import print_status

    # 1: an ERROR check failed on its latest evaluation or a published asset is behind.
    return print_status(settings, definitions.defs.resolve_asset_graph(), out=print)


def cmd_compile(args: argparse.Namespace) -> int:
    import numba

    from cocktail_assets.spaces.warmup import compile_kernels

    print(f"compile: numba cache in {numba.config.CACHE_DIR or '(beside the sources)'}, "
          f"CPU {numba.config.CPU_NAME or 'of this host'}")
    compile_kernels(progress=print)
    return 0


def cmd_ui(args: argparse.Namespace) -> int:
    import signal
    import subprocess

    from cocktail_assets.environments import open_instance_environment
    from cocktail_assets.paths import PROJECT_ROOT

    settings = _settings()
    env = {**os.environ, **open_instance_environment(settings)}
    if settings.embedded:
        _database_url(settings)  # start, migrate and seed before Dagster's processes join it
    # The dg command of this environment, which need not be on PATH (./dev runs the venv's
    # scripts without activating it), in the project folder: `dg dev` reads [tool.dg].
    dg = str(Path(sys.executable).with_name("dg"))
    env.setdefault("VIRTUAL_ENV", str(Path(sys.executable).parent.parent))
    # dg dev runs in its own session, so that a signal reaches it exactly once, from here:
    # Ctrl-C and SIGTERM both become the SIGINT on which dagster dev shuts down the webserver,
    # the daemon and the code server (a shell's background job would otherwise inherit SIGINT
    # ignored, and dagster dev maps SIGTERM to whatever SIGINT does). This process outlives
    # them, holding the embedded server, which it stops on exit when nothing else uses it.
    # The handlers are set first: an exec resets a handled signal to its default in the child.
    children: list[subprocess.Popen] = []

    def stop(signum: int, frame: object) -> None:
        for child in children:
            child.send_signal(signal.SIGINT)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    children.append(subprocess.Popen([dg, "dev", *args.dagster_args], cwd=PROJECT_ROOT,
                                     env=env, start_new_session=True))
    return children[0].wait()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cocktail-assets",
        description="Keep the cocktail site's analytics fresh. With no DATABASE_URL, every "
        "command uses the embedded PostgreSQL with the sample data (started on first use).",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser(
        "migrate",
        help="apply the numbered SQL migrations",
        description="Apply cocktail_assets/db/migrations/NNN_name.sql files not yet recorded in "
        "schema_migrations, each in its own transaction, under an advisory lock so two runners "
        "never race. On an existing site database only the analytics objects are added. Stops "
        "at the first failing file, naming it, with exit status 2.",
    )
    p.add_argument("--dry-run", action="store_true", help="list what would be applied")
    p.add_argument("--database-url", help="migrate this database instead of DATABASE_URL")
    p.set_defaults(func=cmd_migrate)

    db = sub.add_parser("db", help="sample and synthetic data").add_subparsers(
        dest="db_command", required=True
    )
    p = db.add_parser("seed", help="load the bundled sample cocktails (idempotent)")
    p.set_defaults(func=cmd_db_seed)
    p = db.add_parser(
        "stop", help="stop the embedded PostgreSQL (shared by every process of the project)",
        description="Stop the embedded server. It stops by itself when the last process "
        "using it exits normally; this stops it after a process was killed.",
    )
    p.set_defaults(func=cmd_db_stop)
    p = db.add_parser("synth", help="generate a deterministic synthetic site")
    p.add_argument("--recipes", type=int, required=True, help="how many recipes")
    p.add_argument("--seed", type=int, default=0, help="random seed (same seed, same data)")
    p.add_argument("--days", type=int, default=365,
                   help="spread the activity (creation times, ratings, pantry, tags) over this "
                   "many days before now; 0 for none (default 365)")
    p.set_defaults(func=cmd_db_synth)

    p = sub.add_parser(
        "refresh",
        help="materialize the analytics now (all by default) and print a summary",
        description="Materialize every analytics asset (or the --select subset, with what it "
        "needs upstream) through the Dagster instance, bypassing the sensor's debounce. A "
        "successful full refresh settles the edits it covered. One analytics run at a time: "
        "while another holds the site database's analytics lock, it waits and says for which.",
    )
    p.add_argument(
        "--select", nargs="*", default=None, metavar="ASSET",
        help="asset keys like spaces/cocktail_space or analytics/ingredient_usage",
    )
    p.add_argument(
        "--no-wait", action="store_true",
        help="refuse (exit status 2) instead of waiting when another analytics run is going",
    )
    p.set_defaults(func=cmd_refresh)

    p = sub.add_parser(
        "backfill", help="backfill activity/daily over a range of UTC days",
        description="Launch a Dagster backfill of the activity/daily partitions from --start to "
        "--end (inclusive), visible in the UI under Overview > Backfills, in runs of at most "
        "ACTIVITY_BACKFILL_DAYS_PER_RUN days. Starts a Dagster daemon for the duration when none "
        "is running, and prints a line per day as it is materialized.",
    )
    p.add_argument("--start", required=True, metavar="YYYY-MM-DD", help="first day")
    p.add_argument("--end", required=True, metavar="YYYY-MM-DD", help="last day (inclusive)")
    p.add_argument("--timeout-minutes", type=float, default=60,
                   help="give up following after this long (the backfill continues)")
    p.set_defaults(func=cmd_backfill)

    p = sub.add_parser(
        "status", help="what the refresh sensor sees and would do; how each published asset "
        "stands",
        description="The refresh sensor's view (pending edits, quiet and max-wait time left, "
        "the last run, what it would do now), then per published asset its last "
        "materialization, its checks' latest results and its freshness. Exit status 1 when "
        "an ERROR check failed on its latest evaluation or a published asset is behind, 0 "
        "otherwise, 2 for bad settings or an unreachable service.",
    )
    p.set_defaults(func=cmd_status)

    p = sub.add_parser(
        "compile",
        help="compile every numba kernel a refresh calls into the cache (install, image build)",
        description="Run the spaces' steps once on a small synthetic site so numba compiles "
        "(or loads) every kernel a refresh calls into its disk cache (NUMBA_CACHE_DIR). ./dev "
        "runs it after installing and the Docker image build runs it, so no refresh compiles.",
    )
    p.set_defaults(func=cmd_compile)

    p = sub.add_parser(
        "ui", help="start the Dagster UI and daemon (dg dev)",
        description="Start `dg dev` in the project folder (the webserver, the daemon and the "
        "code server); any further arguments (e.g. -p 3001) are passed to it. Ctrl-C or "
        "SIGTERM stops them all.",
    )
    p.set_defaults(func=cmd_ui, dagster_args=[])
    return parser


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line; ``ui`` passes whatever it does not know on to dagster dev."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and args.command != "ui":
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if args.command == "ui":
        args.dagster_args = extra
    return args


def main(argv: Sequence[str] | None = None) -> int:
    # Library notices (Dagster's beta/preview markers, pgserver's runtime dir) are not for the
    # person at the terminal.
    warnings.filterwarnings("ignore", category=UserWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    args = parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.func
    try:
        return handler(args)
    except CocktailAssetsError as exc:
        print(f"cocktail-assets: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
