"""Every private Dagster name the project uses is still where the door expects it.

An upgrade that moves one fails here with the name and its module, not deep in a run."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOORS = [ROOT / "cocktail_assets" / "dagster_private.py", ROOT / "tests" / "dagster_private.py"]


def private_names() -> list[tuple[str, str, str]]:
    """(module, name, local name) of every ``from dagster._x import name [as local]`` in the
    doors."""
    found = []
    for door in DOORS:
        for node in ast.walk(ast.parse(door.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("dagster._"):
                found += [(node.module, alias.name, alias.asname or alias.name)
                          for alias in node.names]
    return found


def test_the_doors_list_names() -> None:
    names = {local for _, _, local in private_names()}
    assert {"BaseAssetGraph", "RUN_KEY_TAG", "ReconstructableJob", "StaleStatus"} <= names


@pytest.mark.parametrize(("module", "name", "local"), private_names())
def test_private_name_is_still_there(module: str, name: str, local: str) -> None:
    try:
        value = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        pytest.fail(f"Dagster moved {name} (expected in {module}): {exc}; update the door "
                    "module and the code that uses it")
    assert value is not None


def test_door_exports_match_its_imports() -> None:
    from cocktail_assets import dagster_private

    assert set(dagster_private.__all__) == {
        local for _, _, local in private_names()
        if local not in {"AssetGraph", "DaemonHeartbeat", "StaleStatus",
                         "get_stale_status_resolver"}}
