"""The layout a newcomer relies on: imports point one way, Dagster's private modules are
reached through one door, and an asset's folder, key prefix and group are one name."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import dagster as dg

from cocktail_assets.definitions import defs

PACKAGE = Path(__file__).resolve().parents[2] / "cocktail_assets"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Each cocktail_assets module and the project modules it imports, at any depth of the
    file (function-level imports count: a late import is still an edge)."""
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        edges: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                # `from pkg import submodule` is an edge to the submodule; any other name is
                # an edge to the module that defines it.
                subs = [f"{node.module}.{a.name}" for a in node.names]
                targets = [t for t in subs if t in modules]
                if len(targets) < len(subs):
                    targets.append(node.module)
            edges |= {t for t in targets if t in modules and t != name}
        graph[name] = edges
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path [a, b, ..., a], or None."""
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt):], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start)):
            return found
    return None


def test_find_cycle_finds_one() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_package_has_no_import_cycle() -> None:
    graph = import_graph()
    assert len(graph) > 30 and graph["cocktail_assets.definitions"]
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_nothing_below_the_code_location_imports_it() -> None:
    """definitions.py merges the domains; no domain reaches back up to it."""
    importers = sorted(m for m, edges in import_graph().items()
                       if "cocktail_assets.definitions" in edges)
    assert importers == ["cocktail_assets.cli"]


def test_dagster_private_modules_only_through_one_door() -> None:
    pattern = re.compile(r"^\s*(from|import)\s+dagster\._", re.MULTILINE)
    users = sorted(str(p.relative_to(PACKAGE.parent)) for p in PACKAGE.rglob("*.py")
                   if pattern.search(p.read_text(encoding="utf-8")))
    assert users == ["cocktail_assets/dagster_private.py"]


def _defining_module(asset: dg.AssetsDefinition | dg.SourceAsset) -> str:
    fn = asset.observe_fn if isinstance(asset, dg.SourceAsset) else asset.op.compute_fn
    fn = getattr(fn, "decorated_fn", fn)
    return fn.__module__


def test_folder_key_prefix_and_group_are_one_name() -> None:
    """The rule of the README's architecture section: cocktail_assets/<g>/ defines the
    assets keyed <g>/... in group <g>."""
    seen = set()
    for asset in defs.assets or []:
        keys = [asset.key] if isinstance(asset, dg.SourceAsset) else list(asset.keys)
        for key in keys:
            prefix = key.path[0]
            group = (asset.group_name if isinstance(asset, dg.SourceAsset)
                     else asset.group_names_by_key[key])
            module = _defining_module(asset)
            assert group == prefix, f"{key.to_user_string()} is in group {group}"
            assert module.startswith(f"cocktail_assets.{prefix}."), (
                f"{key.to_user_string()} is defined in {module}")
            seen.add(prefix)
    assert seen == {"site", "catalog", "analytics", "spaces", "activity"}


def test_every_asset_has_a_distinct_name() -> None:
    """No two assets share their last name (``catalog/x`` beside ``analytics/x`` misleads)."""
    names = [k.path[-1] for k in defs.resolve_asset_graph().get_all_asset_keys()]
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)


def test_the_code_location_imports_from_any_directory(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", "import cocktail_assets.definitions as d; print(len(d.defs.assets))"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert int(done.stdout.strip()) == len(defs.assets or [])


def test_every_asset_has_owners_and_code_references() -> None:
    """Sources, intermediates, published and activity assets alike: the asset page names who
    answers for it and links to the lines that define it."""
    graph = defs.resolve_asset_graph()
    keys = list(graph.get_all_asset_keys())
    assert len(keys) > 15
    for key in keys:
        spec = graph.get(key).assets_def.specs_by_key[key]
        assert spec.owners == ["team:cocktail-analytics"], key
        references = spec.metadata.get("dagster/code_references")
        assert references is not None and len(references.code_references) == 1, key
        assert Path(references.code_references[0].file_path).is_relative_to(PACKAGE), key
