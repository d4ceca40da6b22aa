"""Every asset depends directly on each site table it reads, however indirectly.

Dagster 1.13 marks an asset stale only when one of its *direct* parents has a newer data
version than the one it was computed from; it does not carry staleness through an
intermediate that has not been recomputed yet (``catalog/ingredient_catalog`` goes stale after
an ingredients edit, but ``spaces/cocktail_space_em``, which reads the catalog, stays green).
Recomputing every intermediate just to flag its readers would defeat the debounce. Declaring
the transitive table reads as direct dependencies lets Dagster's own staleness say the truth
for every asset at once: after an ingredients edit every asset computed from the ingredients is
Unsynced with the cause "site/ingredients has a new data version", and "Materialize unsynced"
offers that whole subgraph. The added edges are data-free (``deps``), so nothing is loaded
differently, and the selection a table's change refreshes (``refresh/settle.py``) is the same
set as before.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

import dagster as dg


def parents_by_key(assets: Sequence[Any]) -> dict[dg.AssetKey, set[dg.AssetKey]]:
    """Each asset's direct parents, read from the definitions' specs."""
    parents: dict[dg.AssetKey, set[dg.AssetKey]] = {}
    for assets_def in assets:
        if isinstance(assets_def, dg.AssetsDefinition):
            for spec in assets_def.specs:
                parents[spec.key] = {dep.asset_key for dep in spec.deps}
    return parents


def tables_read(
    key: dg.AssetKey,
    parents: dict[dg.AssetKey, set[dg.AssetKey]],
    tables: Collection[dg.AssetKey],
) -> set[dg.AssetKey]:
    """The site tables among ``key``'s ancestors."""
    seen: set[dg.AssetKey] = set()
    todo = list(parents.get(key, ()))
    while todo:
        parent = todo.pop()
        if parent not in seen:
            seen.add(parent)
            todo.extend(parents.get(parent, ()))
    return seen & set(tables)


def with_table_deps(assets: Sequence[Any], tables: Collection[dg.AssetKey]) -> list[Any]:
    """``assets`` with a direct dependency on every table in ``tables`` each one reads."""
    parents = parents_by_key(assets)

    def add_deps(spec: dg.AssetSpec) -> dg.AssetSpec:
        direct = {dep.asset_key for dep in spec.deps}
        missing = sorted(tables_read(spec.key, parents, tables) - direct,
                         key=lambda k: k.to_user_string())
        return spec.merge_attributes(deps=missing) if missing else spec

    out: list[Any] = []
    for assets_def in assets:
        if isinstance(assets_def, dg.AssetsDefinition) and assets_def.is_materializable:
            out.append(assets_def.map_asset_specs(add_deps))
        else:
            out.append(assets_def)
    return out
