"""Resources bound per environment, and the one place where settings are read.

Two environments:

- **local** (the embedded default): no DATABASE_URL means the project's embedded PostgreSQL
  with the sample data, a local artifact store under ``.local/artifacts`` and heavy steps
  in-process (the step launcher is a none-resource).
- **production**: ``COCKTAIL_ENV=production`` (or a DATABASE_URL / ANALYTICS_BUCKET) binds the
  site database, the S3 store and, when BATCH_JOB_QUEUE is set, the AWS Batch step launcher.

Secrets (DATABASE_URL holds the password) are bound as ``EnvVar`` so Dagster resolves them at
run time and never shows them in the UI, a log line or metadata.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dagster import EnvVar, ResourceDefinition

from cocktail_assets.db.connection import validate_conninfo
from cocktail_assets.errors import ConfigError
from cocktail_assets.paths import DEFAULT_LOCAL_DIR, PROJECT_ROOT
from cocktail_assets.resources.database import CocktailDatabase
from cocktail_assets.resources.store import AnalyticsStore

# Upper bounds of the settings (the README's table): a week for the sensor's timers; memory
# grows with the neighbours per recipe and with the square of the dense-distance limit
# (20,000 recipes: 3.2 GB).
WEEK_MINUTES = 7 * 24 * 60
MAX_SIMILARITY_NEIGHBORS = 200
MAX_DENSE_DISTANCE_LIMIT = 20000
# Below this many recipes the heavy steps run in-process even with Batch settings (README,
# "Heavy steps on AWS Batch": in-process they take seconds to a few minutes and under about
# 2.5 GiB; a Batch job scales up from zero and starts a container, minutes before it works).
DEFAULT_BATCH_MIN_RECIPES = 50_000


@dataclass(frozen=True)
class Settings:
    """Every setting of the project, read once from the environment."""

    env: str
    database_url: str | None
    local_dir: Path
    analytics_bucket: str | None
    analytics_prefix: str
    aws_region: str | None
    s3_endpoint_url: str | None
    batch_job_queue: str | None
    batch_job_definition: str | None
    batch_staging_prefix: str
    batch_log_group: str | None
    batch_max_attempts: int
    batch_min_recipes: int
    debounce_minutes: float
    max_wait_minutes: float
    sensor_interval_seconds: int
    similarity_neighbors: int
    dense_distance_limit: int
    # activity metrics (cocktail_assets/activity)
    activity_start_date: str = "2025-12-01"
    activity_metrics: bool = False
    activity_namespace: str = "CocktailAssets"
    activity_site: str = "local"
    activity_days_per_run: int = 31

    @property
    def embedded(self) -> bool:
        return self.database_url is None


def _number(
    environ: Mapping[str, str], name: str, default: float, cast: type = float, *,
    low: float = 0, high: float, why: str = "",
) -> Any:
    """A finite number in [low, high]; anything else is a ConfigError naming the variable,
    the range and (briefly) the value. Upper bounds keep memory and timers sane."""
    raw = environ.get(name)
    if raw is None or raw.strip() == "":
        return cast(default)
    text = raw.strip()
    shown = text if len(text) <= 40 else text[:37] + "..."
    kind = "a whole number" if cast is int else "a number"
    limits = f"from {low:g} to {high:g}" + (f" ({why})" if why else "")
    try:
        value = float(text) if cast is float else int(text)
    except (ValueError, OverflowError):
        raise ConfigError(f"{name} must be {kind} {limits}, got {shown!r}") from None
    if not math.isfinite(value) or not low <= value <= high:
        raise ConfigError(f"{name} must be {kind} {limits}, got {shown!r}")
    return cast(value)


def _activity_settings(environ: Mapping[str, str], env: str) -> dict[str, Any]:
    """The activity domain's settings (ACTIVITY_*), validated."""
    from datetime import date

    start = (environ.get("ACTIVITY_START_DATE") or "2025-12-01").strip()
    try:
        date.fromisoformat(start)
    except ValueError:
        raise ConfigError(f"ACTIVITY_START_DATE must be a date YYYY-MM-DD, got {start!r}") from None
    metrics = (environ.get("ACTIVITY_METRICS") or
               ("cloudwatch" if env == "production" else "off")).strip().lower()
    if metrics not in ("cloudwatch", "off"):
        raise ConfigError(f"ACTIVITY_METRICS must be cloudwatch or off, got {metrics!r}")
    namespace = (environ.get("ACTIVITY_METRICS_NAMESPACE") or "CocktailAssets").strip()
    if not namespace or namespace.startswith("AWS/") or len(namespace) > 255:
        raise ConfigError(f"ACTIVITY_METRICS_NAMESPACE is not a custom namespace: {namespace!r}")
    site = (environ.get("ACTIVITY_METRICS_SITE") or env).strip()
    if not site or len(site) > 1024:
        raise ConfigError(f"ACTIVITY_METRICS_SITE must be 1-1024 characters, got {site!r}")
    per_run = _number(environ, "ACTIVITY_BACKFILL_DAYS_PER_RUN", 31, int, low=1, high=366)
    return {
        "activity_start_date": start, "activity_metrics": metrics == "cloudwatch",
        "activity_namespace": namespace, "activity_site": site,
        "activity_days_per_run": per_run,
    }


def read_settings(environ: Mapping[str, str] = os.environ) -> Settings:
    """Read and validate the settings; a bad value is a ConfigError naming the variable."""
    env = environ.get("COCKTAIL_ENV", "").strip().lower()
    database_url = environ.get("DATABASE_URL") or None
    if database_url:
        validate_conninfo(database_url)
    if not env:
        env = "production" if database_url or environ.get("ANALYTICS_BUCKET") else "local"
    if env not in ("local", "dev", "production"):
        raise ConfigError(f"COCKTAIL_ENV must be local, dev or production, got {env!r}")
    queue = environ.get("BATCH_JOB_QUEUE") or None
    definition = environ.get("BATCH_JOB_DEFINITION") or None
    if bool(queue) != bool(definition):
        raise ConfigError("BATCH_JOB_QUEUE and BATCH_JOB_DEFINITION are set together or not at all")
    if queue and not environ.get("ANALYTICS_BUCKET"):
        raise ConfigError("BATCH_JOB_QUEUE needs ANALYTICS_BUCKET (steps are staged on S3)")
    return Settings(
        env=env,
        database_url=database_url,
        local_dir=Path(environ.get("COCKTAIL_LOCAL_DIR") or DEFAULT_LOCAL_DIR),
        analytics_bucket=environ.get("ANALYTICS_BUCKET") or None,
        analytics_prefix=(environ.get("ANALYTICS_PREFIX") or "analytics").strip("/"),
        aws_region=environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION") or None,
        s3_endpoint_url=environ.get("AWS_ENDPOINT_URL") or None,
        batch_job_queue=queue,
        batch_job_definition=definition,
        batch_staging_prefix=(environ.get("BATCH_STAGING_PREFIX") or "dagster-steps").strip("/"),
        batch_log_group=environ.get("BATCH_LOG_GROUP") or None,
        batch_max_attempts=_number(environ, "BATCH_MAX_ATTEMPTS", 3, int, low=1, high=10),
        batch_min_recipes=_number(
            environ, "BATCH_MIN_RECIPES", DEFAULT_BATCH_MIN_RECIPES, int, low=0, high=10**8
        ),
        debounce_minutes=_number(
            environ, "ANALYTICS_DEBOUNCE_MINUTES", 5 if env == "dev" else 15, high=WEEK_MINUTES,
        ),
        max_wait_minutes=_number(
            environ, "ANALYTICS_MAX_WAIT_MINUTES", 60, high=WEEK_MINUTES
        ),
        sensor_interval_seconds=_number(
            environ, "ANALYTICS_SENSOR_INTERVAL_SECONDS", 30, int, low=1, high=3600
        ),
        similarity_neighbors=_number(
            environ, "SIMILARITY_NEIGHBORS", 20, int, low=1, high=MAX_SIMILARITY_NEIGHBORS,
            why="memory grows with it",
        ),
        dense_distance_limit=_number(
            environ, "EM_DENSE_DISTANCE_LIMIT", 5000, int, low=0, high=MAX_DENSE_DISTANCE_LIMIT,
            why="the dense matrix takes 8 N² bytes",
        ),
        **_activity_settings(environ, env),
    )


def database_resource(settings: Settings, *, for_dagster: bool = True) -> CocktailDatabase:
    """The site database; ``for_dagster=False`` gives one usable outside a run (CLI, settle)
    with the URL itself rather than an EnvVar that only Dagster resolves."""
    if settings.env == "production" and not settings.database_url:
        # A Batch step container runs only store-backed steps and has no database setting;
        # a step that does need the database fails naming the missing setting.
        return CocktailDatabase(require_url=True)
    if settings.embedded:
        return CocktailDatabase(embedded_dir=str(settings.local_dir))
    if for_dagster:
        return CocktailDatabase(url=EnvVar("DATABASE_URL"))
    return CocktailDatabase(url=settings.database_url)


def store_resource(settings: Settings) -> AnalyticsStore:
    if settings.analytics_bucket:
        return AnalyticsStore(
            bucket=settings.analytics_bucket, prefix=settings.analytics_prefix,
            region=settings.aws_region, endpoint_url=settings.s3_endpoint_url,
        )
    return AnalyticsStore(
        local_dir=str(settings.local_dir / "artifacts"), prefix=settings.analytics_prefix
    )


def step_launcher_resource(settings: Settings) -> Any:
    """The Batch step launcher in production with Batch settings; in-process otherwise."""
    if not settings.batch_job_queue:
        return ResourceDefinition.none_resource()
    from cocktail_assets.batch.launcher import BatchStepLauncher

    return BatchStepLauncher(
        job_queue=settings.batch_job_queue,
        job_definition=settings.batch_job_definition or "",
        staging_bucket=settings.analytics_bucket or "",
        staging_prefix=settings.batch_staging_prefix,
        region=settings.aws_region,
        endpoint_url=settings.s3_endpoint_url,
        log_group=settings.batch_log_group,
        max_attempts=settings.batch_max_attempts,
        size_asset="catalog/recipe_volumes",
        min_rows=settings.batch_min_recipes,
        # The worker rebuilds the definitions from its own environment: hand it the host's
        # non-secret settings so both sides compute with the same parameters.
        environment={
            "COCKTAIL_ENV": settings.env,
            "ANALYTICS_PREFIX": settings.analytics_prefix,
            "SIMILARITY_NEIGHBORS": str(settings.similarity_neighbors),
            "EM_DENSE_DISTANCE_LIMIT": str(settings.dense_distance_limit),
        },
    )


def activity_metrics_resource(settings: Settings) -> Any:
    """CloudWatch publishing of the daily activity (off unless ACTIVITY_METRICS=cloudwatch)."""
    from cocktail_assets.activity.cloudwatch import ActivityMetrics

    return ActivityMetrics(
        enabled=settings.activity_metrics, namespace=settings.activity_namespace,
        site=settings.activity_site, region=settings.aws_region,
        endpoint_url=settings.s3_endpoint_url,
    )


def build_resources(settings: Settings) -> dict[str, Any]:
    """All resources of the code location for one environment."""
    from cocktail_assets.resources.io_manager import ArtifactIOManager
    from cocktail_assets.resources.params import AnalyticsParams

    store = store_resource(settings)
    return {
        "database": database_resource(settings),
        "store": store,
        "params": AnalyticsParams(
            similarity_neighbors=settings.similarity_neighbors,
            dense_distance_limit=settings.dense_distance_limit,
        ),
        "io_manager": ArtifactIOManager(store=store),
        "step_launcher": step_launcher_resource(settings),
        "activity_metrics": activity_metrics_resource(settings),
    }


def open_instance_environment(settings: Settings) -> dict[str, str]:
    """``prepare_dagster_home``, with the storage URL checked first: a bad DAGSTER_PG_URL is
    one line (ConfigError or DatabaseUnavailable) instead of Dagster's retries."""
    from cocktail_assets.db.connection import check_dagster_storage

    env = prepare_dagster_home(settings)
    check_dagster_storage(env["DAGSTER_PG_URL"])
    return env


def prepare_dagster_home(settings: Settings) -> dict[str, str]:
    """Environment for Dagster processes: this folder's dagster.yaml, storage in Postgres.

    In the embedded default, the instance's storage is the embedded server's ``dagster``
    database; in production DAGSTER_PG_URL must be set by the deployment.
    """
    env: dict[str, str] = {}
    env.setdefault("DAGSTER_HOME", os.environ.get("DAGSTER_HOME") or str(PROJECT_ROOT))
    env["COCKTAIL_DAGSTER_STORAGE"] = os.environ.get("COCKTAIL_DAGSTER_STORAGE") or str(
        settings.local_dir / "dagster"
    )
    env["COCKTAIL_DAGSTER_COMPUTE_LOGS"] = os.environ.get(
        "COCKTAIL_DAGSTER_COMPUTE_LOGS"
    ) or str(settings.local_dir / "dagster" / "compute_logs")
    if os.environ.get("DAGSTER_PG_URL"):
        env["DAGSTER_PG_URL"] = os.environ["DAGSTER_PG_URL"]
    elif settings.embedded:
        from cocktail_assets.db.connection import dagster_storage_url
        from cocktail_assets.db.embedded import ensure_embedded

        env["DAGSTER_PG_URL"] = dagster_storage_url(ensure_embedded(settings.local_dir).dagster_url)
    else:
        raise ConfigError("DAGSTER_PG_URL must name the Dagster instance's PostgreSQL database")
    return env
