"""CloudWatch metrics on the moto server: exactly the expected datapoints, none too old."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from cocktail_assets.activity.cloudwatch import (
    MAX_DATUMS_PER_CALL,
    ActivityMetrics,
    MetricsError,
)
from cocktail_assets.activity.compute import METRICS, DayActivity, day_start
from tests.cocktail_assets.activity.conftest import Activity, days_ago
from tests.cocktail_assets.activity.test_daily import load_known_day


def statistics(endpoint: str, site: str, metric: str, day) -> list[dict[str, Any]]:
    client = boto3.client("cloudwatch", endpoint_url=endpoint, region_name="us-east-1")
    start = day_start(day)
    return client.get_metric_statistics(
        Namespace="CocktailAssets", MetricName=metric,
        Dimensions=[{"Name": "Site", "Value": site}],
        StartTime=start, EndTime=start + timedelta(days=1), Period=86400,
        Statistics=["Maximum", "SampleCount"],
    )["Datapoints"]


def test_moto_receives_the_days_datapoints_and_none_older_than_two_weeks(
    aws_activity: Activity, moto_endpoint: str, site_id: str
) -> None:
    activity = aws_activity
    day = days_ago(5)
    load_known_day(activity, day)
    result = activity.materialize(days_ago(20), days_ago(1))
    assert result.success
    expected = {"RecipesCreated": 1, "IngredientsCreated": 1, "RatingsAdded": 2,
                "InventoryAdditions": 1, "TagsCreated": 1, "ActiveUsers": 2}
    for metric, value in expected.items():
        (point,) = statistics(moto_endpoint, site_id, metric, day)
        assert point["Maximum"] == value and point["SampleCount"] == 1, metric
        assert point["Timestamp"] == day_start(day)
    for metric in METRICS.values():  # a quiet recent day is sent as zeros
        (point,) = statistics(moto_endpoint, site_id, metric, days_ago(2))
        assert point["Maximum"] == 0
    for old in (days_ago(15), days_ago(20)):
        for metric in METRICS.values():
            assert statistics(moto_endpoint, site_id, metric, old) == [], (old, metric)
    client = boto3.client("cloudwatch", endpoint_url=moto_endpoint, region_name="us-east-1")
    listed = client.list_metrics(Namespace="CocktailAssets",
                                 Dimensions=[{"Name": "Site", "Value": site_id}])["Metrics"]
    assert {m["MetricName"] for m in listed} == set(METRICS.values())

    mats = result.asset_materializations_for_node("activity__daily")
    assert len(mats) == 20
    meta = {k: getattr(v, "value", v) for k, v in mats[0].metadata.items()}
    assert meta["metrics_sent_days"] == 13 and meta["metrics_datapoints"] == 13 * 6
    note = meta["metrics_note"]
    assert note.startswith("CloudWatch metrics not sent for 7 day(s) ")
    assert f"{days_ago(20).isoformat()}..{days_ago(14).isoformat()}" in note
    assert "older than two weeks" in note and "\n" not in note
    logged = [r.user_message for r in activity.instance.all_logs(result.run_id)]
    assert sum(note in m for m in logged) == 1


class FlakyClient:
    """put_metric_data throttled ``throttles`` times, then accepted; records each batch."""

    def __init__(self, throttles: int, code: str = "Throttling") -> None:
        self.throttles, self.code, self.batches = throttles, code, []

    def put_metric_data(self, Namespace: str, MetricData: list) -> None:
        if self.throttles:
            self.throttles -= 1
            raise ClientError({"Error": {"Code": self.code, "Message": "Rate exceeded"}},
                              "PutMetricData")
        self.batches.append((Namespace, MetricData))


def days(n: int) -> list[DayActivity]:
    return [DayActivity.from_row([days_ago(1 + i % 10), i, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])
            for i in range(n)]


def metrics_with(client: FlakyClient) -> tuple[ActivityMetrics, list[float]]:
    metrics = ActivityMetrics(namespace="Test", site="unit", base_delay_seconds=1.0)
    sleeps: list[float] = []
    metrics._client = client
    metrics._sleep = sleeps.append
    return metrics, sleeps


def test_throttling_is_retried_with_growing_backoff() -> None:
    client = FlakyClient(throttles=3)
    metrics, sleeps = metrics_with(client)
    outcome = metrics.publish(days(2), datetime.now(UTC))
    assert outcome.retries == 3 and outcome.calls == 1 and len(client.batches) == 1
    assert len(sleeps) == 3 and sleeps[0] < sleeps[1] < sleeps[2]
    assert 0.5 <= sleeps[0] <= 1.0 and 2.0 <= sleeps[2] <= 4.0  # jittered 1, 2, 4 s


def test_persistent_throttling_or_another_error_is_one_line_naming_the_namespace() -> None:
    metrics, _ = metrics_with(FlakyClient(throttles=99))
    with pytest.raises(MetricsError, match=r"namespace Test failed \(Throttling, attempt 6\)"):
        metrics.publish(days(1), datetime.now(UTC))
    metrics, sleeps = metrics_with(FlakyClient(throttles=1, code="AccessDenied"))
    with pytest.raises(MetricsError, match="AccessDenied"):
        metrics.publish(days(1), datetime.now(UTC))
    assert sleeps == []  # not retried


def test_datapoints_are_batched_within_the_per_call_limit() -> None:
    client = FlakyClient(throttles=0)
    metrics, _ = metrics_with(client)
    many = days(400)  # 2,400 datapoints
    outcome = metrics.publish(many, datetime.now(UTC))
    sizes = [len(batch) for _, batch in client.batches]
    assert sizes == [MAX_DATUMS_PER_CALL, MAX_DATUMS_PER_CALL, 400]
    assert outcome.datapoints == 2400 and outcome.calls == 3
    datum = client.batches[0][1][0]
    assert datum["Dimensions"] == [{"Name": "Site", "Value": "unit"}]
    assert datum["Unit"] == "Count" and datum["Timestamp"].tzinfo is not None
