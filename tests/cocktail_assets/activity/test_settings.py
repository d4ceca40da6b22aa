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


def test_the_instance_runs_one_run_per_partition_at_a_time(
    db_url: str, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pathlib import Path

    import dagster as dg

    from cocktail_assets.db.connection import dagster_storage_url

    monkeypatch.setenv("DAGSTER_HOME", str(Path(__file__).resolve().parents[3]))
    monkeypatch.setenv("DAGSTER_PG_URL", dagster_storage_url(db_url))
    monkeypatch.setenv("COCKTAIL_DAGSTER_STORAGE", str(tmp_path / "storage"))
    monkeypatch.setenv("COCKTAIL_DAGSTER_COMPUTE_LOGS", str(tmp_path / "logs"))
    with dg.DagsterInstance.get() as instance:
        limits = instance.get_concurrency_config().run_queue_config.tag_concurrency_limits
        per_partition = [limit for limit in limits if limit["key"] == "dagster/partition"]
        assert len(per_partition) == 1 and per_partition[0]["limit"] == 1
        assert per_partition[0]["value"] == {"applyLimitPerUniqueValue": True}
