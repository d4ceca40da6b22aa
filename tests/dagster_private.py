"""The tests' door to Dagster's private modules: names only tests need, with no public alias
in Dagster 1.13 (``test_dagster_private.py`` checks them with the project's own door).

- AssetGraph, StaleStatus, get_stale_status_resolver: Dagster's own staleness resolution,
  which the staleness tests compare against (the UI reads the same through GraphQL), the
  late-edited days of ``activity/daily`` included.
- DaemonHeartbeat: a daemon's heartbeat as the daemon writes it, so the backfill's test can
  stage a live, a stopped and an absent daemon without running one.
"""

from __future__ import annotations

from dagster._core.definitions.assets.graph.asset_graph import AssetGraph
from dagster._core.definitions.data_version import StaleStatus
from dagster._daemon.types import DaemonHeartbeat
from dagster._utils.test.data_versions import get_stale_status_resolver

__all__ = ["AssetGraph", "DaemonHeartbeat", "StaleStatus", "get_stale_status_resolver"]
