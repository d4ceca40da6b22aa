"""The activity domain bound to one test database, a store and moto's CloudWatch.

Runs execute in-process into a test Dagster instance; the definitions are the real ones
(``build_activity``) with test settings (start date, batch size) and test resources.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import psycopg
import pytest

from cocktail_assets.activity import ActivityDefinitions, build_activity
from cocktail_assets.activity.assets import artifact_name
from cocktail_assets.activity.automation import JOB_NAME
from cocktail_assets.activity.cloudwatch import ActivityMetrics
from cocktail_assets.dagster_private import RANGE_END_TAG, RANGE_START_TAG
from cocktail_assets.environments import read_settings
from cocktail_assets.resources.database import CocktailDatabase
from cocktail_assets.resources.store import AnalyticsStore


def today() -> date:
    return datetime.now(UTC).date()


def days_ago(n: int) -> date:
    return today() - timedelta(days=n)


@dataclasses.dataclass
class Activity:
    """The activity domain on one database, store and instance."""

    db_url: str
    instance: dg.DagsterInstance
    store: AnalyticsStore
    metrics: ActivityMetrics
    start_date: str
    days_per_run: int = 7
    debounce_minutes: float = 15

    def settings(self) -> Any:
        return dataclasses.replace(
            read_settings({}), activity_start_date=self.start_date,
            activity_days_per_run=self.days_per_run, debounce_minutes=self.debounce_minutes,
        )

    def domain(self) -> ActivityDefinitions:
        return build_activity(self.settings())

    def database(self) -> CocktailDatabase:
        return CocktailDatabase(url=self.db_url)

    def defs(self) -> dg.Definitions:
        domain = self.domain()
        return dg.Definitions(
            assets=domain.assets, jobs=domain.jobs, schedules=domain.schedules,
            sensors=domain.sensors,
            resources={"database": self.database(), "store": self.store,
                       "activity_metrics": self.metrics},
        )

    def materialize(
        self, first: date, last: date | None = None, *, with_summary: bool = False
    ) -> dg.ExecuteInProcessResult:
        """One run of activity/daily for a day or a range (as a backfill batch runs it)."""
        job = self.defs().resolve_job_def(JOB_NAME)
        selection = [dg.AssetKey(["activity", "daily"])]
        if with_summary:
            selection.append(dg.AssetKey(["activity", "last_30_days"]))
        if last is None or last == first:
            return job.execute_in_process(
                instance=self.instance, partition_key=first.isoformat(),
                asset_selection=selection,
            )
        return job.execute_in_process(
            instance=self.instance, asset_selection=selection,
            tags={RANGE_START_TAG: first.isoformat(), RANGE_END_TAG: last.isoformat()},
        )

    def artifact(self, day: date) -> dict[str, Any]:
        return json.loads(self.store.get_bytes(artifact_name(day.isoformat())))

    def sql(self, statement: str, params: Any = ()) -> list[tuple]:
        with psycopg.connect(self.db_url, autocommit=True) as conn:
            cur = conn.execute(statement, params)
            return cur.fetchall() if cur.description else []


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as inst:
        yield inst


@pytest.fixture
def site_id() -> str:
    return f"test-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def activity(db_url: str, instance: dg.DagsterInstance, tmp_path: Path) -> Activity:
    """Local store, CloudWatch off."""
    return Activity(
        db_url, instance, AnalyticsStore(local_dir=str(tmp_path / "artifacts")),
        ActivityMetrics(enabled=False), start_date=days_ago(60).isoformat(),
    )


@pytest.fixture
def aws_activity(
    db_url: str, instance: dg.DagsterInstance, moto_endpoint: str, s3_bucket: str, site_id: str
) -> Activity:
    """S3 store and CloudWatch on the moto server, a Site dimension of its own."""
    return Activity(
        db_url, instance,
        AnalyticsStore(bucket=s3_bucket, region="us-east-1", endpoint_url=moto_endpoint),
        ActivityMetrics(enabled=True, site=site_id, region="us-east-1",
                        endpoint_url=moto_endpoint, base_delay_seconds=0.01),
        start_date=days_ago(60).isoformat(),
    )


def at(day: date, clock: str) -> datetime:
    """A naive UTC timestamp on ``day`` (as the site stores them), e.g. at(d, '23:59:59.999')."""
    return datetime.fromisoformat(f"{day.isoformat()} {clock}")
