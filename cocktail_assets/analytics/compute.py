"""Usage counts and the artifacts' JSON shapes, from the catalog and recipe rows."""

from __future__ import annotations

from typing import Any

import numpy as np

from cocktail_assets.catalog.load import IngredientCatalog


def usage_counts(
    catalog: IngredientCatalog, recipe_ids: np.ndarray, ingredient_ids: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Direct and hierarchical distinct-recipe counts per ingredient (aligned with tree.ids).

    Each (recipe, ingredient) pair is walked up the tree, so a recipe counts once for an
    ingredient however many of its descendants it uses.
    """
    ids = catalog.tree.ids
    n = ids.size
    pos = catalog.positions(ingredient_ids)
    recipe_codes = np.unique(recipe_ids, return_inverse=True)[1].astype(np.int64)
    direct_pairs = np.unique(recipe_codes * n + pos)
    direct = np.bincount(direct_pairs % n, minlength=n) if n else np.zeros(0, np.int64)
    parent_pos = np.full(n, -1, dtype=np.int64)
    has_parent = catalog.tree.parent_ids >= 0
    parent_pos[has_parent] = np.searchsorted(ids, catalog.tree.parent_ids[has_parent])
    rec, node = direct_pairs // max(n, 1), direct_pairs % max(n, 1)
    walked = [direct_pairs]
    while node.size:
        node = parent_pos[node]
        keep = node >= 0
        rec, node = rec[keep], node[keep]
        walked.append(rec * n + node)
    all_pairs = np.unique(np.concatenate(walked)) if walked else np.zeros(0, np.int64)
    hierarchical = np.bincount(all_pairs % n, minlength=n) if n else np.zeros(0, np.int64)
    return direct.astype(np.int64), hierarchical.astype(np.int64)


def has_children(catalog: IngredientCatalog) -> np.ndarray:
    parents = catalog.tree.parent_ids
    return np.isin(catalog.tree.ids, parents[parents >= 0])


def ingredient_usage_rows(
    catalog: IngredientCatalog, direct: np.ndarray, hierarchical: np.ndarray
) -> list[dict[str, Any]]:
    """Root ingredients, most used first (ties by name, then id)."""
    children = has_children(catalog)
    rows = [
        {
            "ingredient_id": int(catalog.tree.ids[i]),
            "ingredient_name": str(catalog.names[i]),
            "path": str(catalog.paths[i]),
            "parent_id": None,
            "allow_substitution": bool(catalog.allow_substitution[i]),
            "direct_usage": int(direct[i]),
            "hierarchical_usage": int(hierarchical[i]),
            "has_children": bool(children[i]),
        }
        for i in np.flatnonzero(catalog.tree.parent_ids < 0)
    ]
    rows.sort(key=lambda r: (-r["hierarchical_usage"], r["ingredient_name"], r["ingredient_id"]))
    return rows


def recipe_complexity_rows(recipe_ids: np.ndarray, ingredient_ids: np.ndarray) -> list[dict]:
    """How many recipes have N distinct ingredients, ascending by N."""
    if recipe_ids.size == 0:
        return []
    pairs = np.unique(np.stack([recipe_ids, ingredient_ids], axis=1), axis=0)
    per_recipe = np.unique(pairs[:, 0], return_counts=True)[1]
    counts, recipes = np.unique(per_recipe, return_counts=True)
    return [
        {"ingredient_count": int(c), "recipe_count": int(r)}
        for c, r in zip(counts, recipes, strict=True)
    ]


def ingredient_tree_document(
    catalog: IngredientCatalog,
    direct: np.ndarray,
    hierarchical: np.ndarray,
    total_recipes: int,
    edge_weight: float = 1.0,
) -> dict[str, Any]:
    """The whole hierarchy, D3-ready: nested nodes, ids as strings, children by name."""
    nodes = [
        {
            "id": str(int(catalog.tree.ids[i])),
            "name": str(catalog.names[i]),
            "recipe_count": int(direct[i]),
            "hierarchical_recipe_count": int(hierarchical[i]),
            "edge_weight": edge_weight,
            "children": [],
        }
        for i in range(catalog.tree.ids.size)
    ]
    root: dict[str, Any] = {
        "id": "root",
        "name": "All Ingredients",
        "recipe_count": 0,
        "hierarchical_recipe_count": int(total_recipes),
        "children": [],
    }
    index = {int(i): k for k, i in enumerate(catalog.tree.ids)}
    for k, parent in enumerate(catalog.tree.parent_ids):
        (root if parent < 0 else nodes[index[int(parent)]])["children"].append(nodes[k])
    stack = [root]
    while stack:
        node = stack.pop()
        node["children"].sort(key=lambda c: (c["name"], int(c["id"])))
        stack.extend(node["children"])
    return root


def tree_depth(document: dict[str, Any]) -> int:
    """Levels below the synthetic root (0 for an empty tree)."""
    depth, frontier = 0, document["children"]
    while frontier:
        depth += 1
        frontier = [c for node in frontier for c in node["children"]]
    return depth
