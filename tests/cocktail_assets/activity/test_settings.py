"""The ACTIVITY_* settings: read once in environments.py, a bad value names its variable."""

from __future__ import annotations

import pytest

from cocktail_assets.environments import activity_metrics_resource, read_settings
from cocktail_assets.errors import ConfigError


def test_defaults_and_production() -> None:
    local = read_settings({})
    assert (local.activity_start_date, local.activity_metrics, local.activity_namespace,
            local.activity_site, local.activity_days_per_run) == (
        "2025-12-01", False, "CocktailAssets", "local", 31)
    prod = read_settings({"COCKTAIL_ENV": "production", "ACTIVITY_METRICS_SITE": "cocktails"})
    assert prod.activity_metrics and prod.activity_site == "cocktails"
    metrics = activity_metrics_resource(prod)
    assert metrics.enabled and metrics.namespace == "CocktailAssets" and metrics.site == "cocktails"


@pytest.mark.parametrize(("name", "value"), [
    ("ACTIVITY_START_DATE", "2026-13-01"),
    ("ACTIVITY_METRICS", "statsd"),
    ("ACTIVITY_METRICS_NAMESPACE", "AWS/EC2"),
    ("ACTIVITY_BACKFILL_DAYS_PER_RUN", "0"),
    ("ACTIVITY_BACKFILL_DAYS_PER_RUN", "many"),
])
def test_a_bad_value_is_a_config_error_naming_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name) as caught:
        read_settings({name: value})
    assert "\n" not in str(caught.value)
