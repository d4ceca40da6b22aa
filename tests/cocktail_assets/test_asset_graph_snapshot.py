"""The asset graph's shape (keys, deps, groups, kinds, checks) against a committed snapshot.

An accidental change of lineage fails here. To change the graph deliberately, regenerate the
snapshot and commit it with the change, so the review shows the lineage diff:

    UPDATE_GRAPH_SNAPSHOT=1 ./dev test tests/cocktail_assets/test_asset_graph_snapshot.py
"""

from __future__ import annotations

import difflib
import json
import os
from pathlib import Path
from typing import Any

import dagster as dg

from cocktail_assets.definitions import defs

SNAPSHOT = Path(__file__).with_name("asset_graph_snapshot.json")
UPDATE_VAR = "UPDATE_GRAPH_SNAPSHOT"


def graph_shape(definitions: dg.Definitions) -> dict[str, Any]:
    graph = definitions.resolve_asset_graph()
    assets = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        assets[key.to_user_string()] = {
            "type": "observable source" if node.is_observable else (
                "materializable" if node.is_materializable else "external"),
            "group": node.group_name,
            "kinds": sorted(node.kinds),
            "deps": sorted(p.to_user_string() for p in node.parent_keys),
            "checks": sorted(c.name for c in node.check_keys),
            "required_resources": sorted(node.assets_def.required_resource_keys)
            if node.is_materializable else [],
        }
    return {"assets": assets, "jobs": sorted(j.name for j in definitions.jobs or [])}


def _render(shape: dict[str, Any]) -> str:
    return json.dumps(shape, indent=2, ensure_ascii=False) + "\n"


def test_asset_graph_matches_snapshot() -> None:
    current = _render(graph_shape(defs))
    if os.environ.get(UPDATE_VAR) == "1":
        SNAPSHOT.write_text(current, encoding="utf-8")
    assert SNAPSHOT.exists(), f"no snapshot yet: run with {UPDATE_VAR}=1 and commit {SNAPSHOT.name}"
    committed = SNAPSHOT.read_text(encoding="utf-8")
    if committed != current:
        diff = "".join(difflib.unified_diff(
            committed.splitlines(keepends=True), current.splitlines(keepends=True),
            "committed snapshot", "current graph"))
        raise AssertionError(
            "The asset graph changed (keys, deps, groups, kinds or checks).\n"
            f"{diff}\nIf the change is deliberate, regenerate the snapshot with\n"
            f"    {UPDATE_VAR}=1 ./dev test {Path(__file__).relative_to(Path.cwd())}\n"
            f"and commit {SNAPSHOT.name} with the change."
        )


def test_every_asset_is_described_and_grouped() -> None:
    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assert node.description and len(node.description) > 20, key
        assert node.group_name and node.group_name != "default", key


def test_graph_tests_run_the_definitions_graph() -> None:
    """The graph tests materialize the same assets as the code location."""
    from tests.cocktail_assets.graph.conftest import GRAPH_ASSETS

    tested = dg.Definitions(assets=GRAPH_ASSETS, resources=defs.resources)
    # The day-partitioned activity domain has its own runs and tests (tests/.../activity).
    unpartitioned = {key: shape for key, shape in graph_shape(defs)["assets"].items()
                     if not key.startswith("activity/")}
    assert graph_shape(tested)["assets"] == unpartitioned
