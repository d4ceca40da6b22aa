"""What every published asset carries for the people who watch it: owners, a freshness policy
that follows from the refresh timing, and references to its source code.

Applied in ``build_defs`` (the one way the code location is built), because the freshness
window depends on the settings.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import dagster as dg

from cocktail_assets.checks import PUBLISHED_TAG
from cocktail_assets.refresh.policy import Policy

# The team that answers for the analytics the site reads (Dagster's ``team:`` owner form).
OWNERS = ["team:cocktail-analytics"]


def freshness_policy(policy: Policy) -> dg.FreshnessPolicy:
    """Dagster's time-window freshness (time since the last materialization), with the windows
    of ``Policy.freshness_windows``."""
    fail, warn = policy.freshness_windows
    return dg.FreshnessPolicy.time_window(fail_window=fail, warn_window=warn)


def is_published(spec: dg.AssetSpec) -> bool:
    return spec.tags.get(PUBLISHED_TAG) == "true"


def with_monitoring(assets: Sequence[Any], policy: Policy) -> list[Any]:
    """``assets`` with code references (local file and line: they work on the embedded
    default), and on the published ones the owners and the freshness policy."""
    # Code references are marked beta; we rely on them knowingly, and their notices would
    # otherwise repeat, once per asset, in every process that loads the code location.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.BetaWarning)
        referenced = dg.with_source_code_references(list(assets))
    fresh = freshness_policy(policy)
    return list(dg.map_asset_specs(
        lambda spec: spec.replace_attributes(owners=OWNERS, freshness_policy=fresh)
        if is_published(spec) else spec,
        referenced,
    ))
