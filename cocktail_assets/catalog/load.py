"""Load the site's ingredients and recipes into barcart's array types."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import psycopg
from barcart import IngredientTree, RecipeMatrix, TreeError, row_volumes_ml, volume_fractions

from cocktail_assets import queries
from cocktail_assets.errors import DataError


@dataclass(frozen=True)
class IngredientCatalog:
    """Every ingredient with its place in the tree; arrays aligned with ``tree.ids``."""

    tree: IngredientTree
    names: np.ndarray
    paths: np.ndarray
    allow_substitution: np.ndarray

    def positions(self, ingredient_ids: np.ndarray) -> np.ndarray:
        """Row of each id in the catalog; an id it lacks is a DataError naming it.

        Steps read the site in their own snapshots, so an ingredient created (and used) after
        this run read the catalog is not in it; the edit stays pending and the next refresh,
        which the change log asks for, includes it.
        """
        ids = np.asarray(ingredient_ids, dtype=np.int64)
        pos = np.searchsorted(self.tree.ids, ids)
        clipped = np.minimum(pos, max(self.tree.ids.size - 1, 0))
        known = (pos < self.tree.ids.size) & (self.tree.ids[clipped] == ids) if ids.size else ids
        if ids.size and not np.all(known):
            missing = int(ids[~known][0])
            raise DataError(
                f"recipe_ingredients names ingredient {missing}, which is not in the ingredient "
                "tree this run read (created since?); the next refresh will include it"
            )
        return clipped

    def name_of(self, ingredient_ids: np.ndarray) -> np.ndarray:
        return self.names[self.positions(ingredient_ids)]


@dataclass(frozen=True)
class RecipeVolumes:
    """Recipes as volume fractions, with their names and display ingredient lists.

    ``list_names[list_ptr[r]:list_ptr[r + 1]]`` is recipe r's ingredient list as the spaces
    show it: by volume descending, 'each' items last, ties by name.
    """

    matrix: RecipeMatrix
    recipe_names: np.ndarray
    list_ptr: np.ndarray
    list_names: np.ndarray

    def ingredient_list(self, row: int) -> list[str]:
        return self.list_names[self.list_ptr[row]:self.list_ptr[row + 1]].tolist()


def load_catalog(conn: psycopg.Connection) -> IngredientCatalog:
    """Read ``ingredients``; a path that names a missing id or loops is a DataError."""
    rows = conn.execute(queries.INGREDIENTS).fetchall()
    ids = [r[0] for r in rows]
    paths = [r[3] if r[3] is not None else "" for r in rows]
    try:
        tree = IngredientTree.from_paths(ids, paths)
    except TreeError as exc:
        raise DataError(f"ingredients table: {exc}") from None
    order = np.argsort(np.asarray(ids, dtype=np.int64), kind="stable")
    return IngredientCatalog(
        tree=tree,
        names=np.array([rows[i][1] for i in order], dtype=str),
        paths=np.array([paths[i] for i in order], dtype=str),
        allow_substitution=np.array([bool(rows[i][4]) for i in order], dtype=bool),
    )


def recipes_with_volume(rows: list[tuple]) -> np.ndarray:
    """Sorted ids of the recipes whose ``RECIPE_INGREDIENT_ROWS`` have a positive total volume.

    A second, deliberately plain path from the rows to the set of recipes (a per-recipe sum of
    barcart's row volumes, no pandas, no matrix), for the check on ``load_recipe_volumes``.
    """
    if not rows:
        return np.zeros(0, dtype=np.int64)
    recipe = np.array([r[0] for r in rows], dtype=np.int64)
    amounts = np.array([np.nan if r[2] is None else r[2] for r in rows], dtype=np.float64)
    conversions = np.array([np.nan if r[4] is None else r[4] for r in rows], dtype=np.float64)
    volumes = row_volumes_ml(amounts, [r[3] for r in rows], conversions)
    ids, inverse = np.unique(recipe, return_inverse=True)
    totals = np.bincount(inverse, weights=volumes, minlength=ids.size)
    return ids[totals > 0]


def load_recipe_volumes(conn: psycopg.Connection, catalog: IngredientCatalog) -> RecipeVolumes:
    """Read recipe rows, convert them to ml by the volume rule (barcart's ``row_volumes_ml``,
    docs/analytics.md#volume-rule) and normalise per recipe."""
    rows = conn.execute(queries.RECIPE_INGREDIENT_ROWS).fetchall()
    recipe_names = dict(conn.execute(queries.RECIPES).fetchall())
    frame = pd.DataFrame(
        rows, columns=["recipe_id", "ingredient_id", "amount", "unit", "conversion"]
    )
    amounts = frame["amount"].to_numpy(dtype=np.float64, na_value=np.nan)
    conversions = frame["conversion"].to_numpy(dtype=np.float64, na_value=np.nan)
    # Unit names straight from the rows: pandas 3 turns a NULL in a string column into NaN.
    volumes = row_volumes_ml(amounts, [r[3] for r in rows], conversions)
    bad = np.flatnonzero(~np.isfinite(volumes) | (volumes < 0))
    if bad.size:
        r = frame.iloc[int(bad[0])]
        raise DataError(
            f"recipe_ingredients row of recipe {int(r.recipe_id)}, ingredient "
            f"{int(r.ingredient_id)}: amount {r.amount} {r.unit or ''} gives volume "
            f"{volumes[bad[0]]} ml, which is not a non-negative number"
        )
    matrix = volume_fractions(
        frame["recipe_id"].to_numpy(np.int64), frame["ingredient_id"].to_numpy(np.int64), volumes
    )
    frame["volume"] = volumes
    frame["each"] = frame["unit"].fillna("").str.lower().eq("each")
    per_item = (
        frame[frame["recipe_id"].isin(matrix.recipe_ids)]
        .groupby(["recipe_id", "ingredient_id"], as_index=False)
        .agg(volume=("volume", "sum"), each=("each", "any"))
    )
    per_item["name"] = catalog.name_of(per_item["ingredient_id"].to_numpy(np.int64))
    per_item = per_item.sort_values(
        ["recipe_id", "each", "volume", "name"], ascending=[True, True, False, True],
        kind="stable",
    )
    counts = per_item.groupby("recipe_id").size().reindex(matrix.recipe_ids, fill_value=0)
    list_ptr = np.concatenate([[0], np.cumsum(counts.to_numpy())]).astype(np.int64)
    return RecipeVolumes(
        matrix=matrix,
        recipe_names=np.array([recipe_names[int(r)] for r in matrix.recipe_ids], dtype=str),
        list_ptr=list_ptr,
        list_names=per_item["name"].to_numpy(dtype=str),
    )
