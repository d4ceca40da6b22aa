"""Daily activity as CloudWatch custom metrics, through boto3.

CloudWatch keeps every datapoint it is sent: re-sending a day adds datapoints with the same
value, so readers take each day's ``Maximum`` over a one-day period and nothing is double
counted. It accepts datapoints only up to two weeks old; older days are skipped, and said so.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from dagster import ConfigurableResource
from pydantic import PrivateAttr

from cocktail_assets.activity.compute import DayActivity, day_start
from cocktail_assets.errors import CocktailAssetsError

# CloudWatch's limit is two weeks; a margin so a datapoint is never rejected in transit.
MAX_AGE = timedelta(days=14) - timedelta(minutes=10)
# PutMetricData takes up to 1,000 datums and 1 MB per call; six metrics of a day are ~1 KB.
MAX_DATUMS_PER_CALL = 1000
THROTTLING_CODES = frozenset({
    "Throttling", "ThrottlingException", "ThrottledException", "RequestLimitExceeded",
    "TooManyRequestsException",
})


class MetricsError(CocktailAssetsError):
    """CloudWatch refused the datapoints; the message names the namespace and the reason."""


@dataclass(frozen=True)
class MetricsOutcome:
    """What was sent and what was skipped as too old for CloudWatch."""

    sent_days: list[str] = field(default_factory=list)
    skipped_days: list[str] = field(default_factory=list)
    datapoints: int = 0
    calls: int = 0
    retries: int = 0
    enabled: bool = True

    def note(self) -> str | None:
        """One line about the skipped days, or None when every day was sent."""
        if not self.enabled:
            return "CloudWatch metrics are off (ACTIVITY_METRICS=off): none sent"
        if not self.skipped_days:
            return None
        span = self.skipped_days[0] if len(self.skipped_days) == 1 else (
            f"{self.skipped_days[0]}..{self.skipped_days[-1]}")
        return (f"CloudWatch metrics not sent for {len(self.skipped_days)} day(s) {span}: "
                f"older than two weeks (CloudWatch rejects them); artifacts published")


def recent_enough(day: DayActivity, now: datetime) -> bool:
    return now - day_start(day.day) <= MAX_AGE


class ActivityMetrics(ConfigurableResource):
    """Publishes each day's counts to CloudWatch (namespace, ``Site`` dimension)."""

    enabled: bool = True
    namespace: str = "CocktailAssets"
    site: str = "local"
    region: str | None = None
    endpoint_url: str | None = None
    max_attempts: int = 6
    base_delay_seconds: float = 0.5

    _client: Any = PrivateAttr(default=None)
    _sleep: Callable[[float], None] = PrivateAttr(default=time.sleep)

    def client(self) -> Any:
        if self._client is None:
            import boto3
            from botocore.config import Config

            # Retries are ours (below), so that throttling backs off visibly and testably.
            self._client = boto3.client(
                "cloudwatch", region_name=self.region, endpoint_url=self.endpoint_url,
                config=Config(retries={"max_attempts": 1, "mode": "standard"}),
            )
        return self._client

    def datums(self, day: DayActivity) -> list[dict[str, Any]]:
        stamp = day_start(day.day)
        return [
            {
                "MetricName": name,
                "Dimensions": [{"Name": "Site", "Value": self.site}],
                "Timestamp": stamp,
                "Value": float(value),
                "Unit": "Count",
            }
            for name, value in day.metric_values().items()
        ]

    def publish(self, days: Sequence[DayActivity], now: datetime) -> MetricsOutcome:
        """Send the datapoints of the days CloudWatch still accepts, in batched calls."""
        if not self.enabled:
            return MetricsOutcome(skipped_days=[d.key for d in days], enabled=False)
        sent = [d for d in days if recent_enough(d, now)]
        skipped = [d.key for d in days if not recent_enough(d, now)]
        data = [datum for d in sent for datum in self.datums(d)]
        calls = retries = 0
        for start in range(0, len(data), MAX_DATUMS_PER_CALL):
            retries += self._put(data[start : start + MAX_DATUMS_PER_CALL])
            calls += 1
        return MetricsOutcome([d.key for d in sent], skipped, len(data), calls, retries)

    def _put(self, batch: list[dict[str, Any]]) -> int:
        """One PutMetricData call, retried on throttling with jittered exponential backoff;
        returns how many retries it took."""
        from botocore.exceptions import BotoCoreError, ClientError

        for attempt in range(self.max_attempts):
            try:
                self.client().put_metric_data(Namespace=self.namespace, MetricData=batch)
                return attempt
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code", "")
                if code not in THROTTLING_CODES or attempt == self.max_attempts - 1:
                    message = exc.response.get("Error", {}).get("Message", str(exc))
                    raise MetricsError(
                        f"CloudWatch PutMetricData to namespace {self.namespace} failed "
                        f"({code}, attempt {attempt + 1}): {message}"
                    ) from None
            except BotoCoreError as exc:
                raise MetricsError(
                    f"CloudWatch PutMetricData to namespace {self.namespace} failed: {exc}"
                ) from None
            delay = self.base_delay_seconds * 2**attempt
            self._sleep(delay * (0.5 + random.random() / 2))
        raise AssertionError("unreachable")
