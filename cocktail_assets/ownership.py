"""Owners and code references on every asset, sources and intermediates included.

The published assets get theirs with their freshness policy (``refresh/published.py``); this
gives the rest the same owners and links to the lines that define them, so the page of any
asset names who answers for it (local file and line: they work on the embedded default and
on a deployed host with a checkout).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import dagster as dg

from cocktail_assets.refresh.published import OWNERS

CODE_REFERENCES = "dagster/code_references"


def _referenced(assets_def: Any) -> bool:
    specs = getattr(assets_def, "specs", None)
    return bool(specs) and all(CODE_REFERENCES in spec.metadata for spec in specs)


def with_owners_and_code(assets: Sequence[Any]) -> list[Any]:
    """``assets`` with code references where they have none, and ``OWNERS`` where unset."""
    # Code references are marked beta; we rely on them knowingly, and their notices would
    # otherwise repeat, once per asset, in every process that loads the code location.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.BetaWarning)
        referenced = [a if _referenced(a) else dg.with_source_code_references([a])[0]
                      for a in assets]
    return list(dg.map_asset_specs(
        lambda spec: spec if spec.owners else spec.replace_attributes(owners=OWNERS),
        referenced,
    ))
