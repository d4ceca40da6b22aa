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
    # The recipes with a positive volume, derived on the checks' own path from a second read in
    # the same snapshot (recipes_with_volume): what the spaces' and recipe_similarity's checks
    # expect.
    expected_recipe_ids: np.ndarray

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


def _column(rows: list[tuple], index: int) -> tuple[np.ndarray, np.ndarray]:
    """A float column as an array (NaN where SQL NULL) and where the stored value itself is NaN.

    Read from the rows, not from pandas, which turns NULL and a stored NaN into the same NaN.
    """
    values = [r[index] for r in rows]
    null = np.array([v is None for v in values], dtype=bool)
    array = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
    return array, np.isnan(array) & ~null


def _refuse_nan(rows: list[tuple], amount_nan: np.ndarray, conversion_nan: np.ndarray) -> None:
    """A stored NaN is bad data, never "no amount": a DataError naming table, row and column."""
    if amount_nan.any():
        r = rows[int(np.flatnonzero(amount_nan)[0])]
        raise DataError(
            f"recipe_ingredients row {r[0]} (recipe {r[1]}, ingredient {r[2]}): column amount "
            "is NaN, not a number; set it to a number or NULL"
        )
    if conversion_nan.any():
        r = rows[int(np.flatnonzero(conversion_nan)[0])]
        raise DataError(
            f"units row {r[6]} ({r[4]!r}): column conversion_to_ml is NaN, not a number "
            f"(read for recipe_ingredients row {r[0]}); set it to a number or NULL"
        )


def recipes_with_volume(rows: list[tuple]) -> np.ndarray:
    """Sorted ids of the recipes whose ``RECIPE_VOLUME_INPUTS`` rows have a positive total
    volume: a per-recipe sum of barcart's row volumes, deliberately plain (no pandas, no
    matrix), for the checks on ``load_recipe_volumes``' result. A NaN sums to NaN, which is not
    positive: such recipes are refused by the loader anyway."""
    if not rows:
        return np.zeros(0, dtype=np.int64)
    recipe = np.array([r[0] for r in rows], dtype=np.int64)
    amounts = np.array([np.nan if r[1] is None else r[1] for r in rows], dtype=np.float64)
    conversions = np.array([np.nan if r[3] is None else r[3] for r in rows], dtype=np.float64)
    volumes = row_volumes_ml(amounts, [r[2] for r in rows], conversions)
    ids, inverse = np.unique(recipe, return_inverse=True)
    totals = np.bincount(inverse, weights=volumes, minlength=ids.size)
    return ids[totals > 0]


def load_recipe_volumes(conn: psycopg.Connection, catalog: IngredientCatalog) -> RecipeVolumes:
    """Read recipe rows, convert them to ml by the volume rule (barcart's ``row_volumes_ml``,
    docs/analytics.md#volume-rule) and normalise per recipe.

    A NaN, negative or infinite amount or conversion is a DataError naming the row."""
    rows = conn.execute(queries.RECIPE_INGREDIENT_ROWS).fetchall()
    recipe_names = dict(conn.execute(queries.RECIPES).fetchall())
    expected = recipes_with_volume(conn.execute(queries.RECIPE_VOLUME_INPUTS).fetchall())
    amounts, amount_nan = _column(rows, 3)
    conversions, conversion_nan = _column(rows, 5)
    _refuse_nan(rows, amount_nan, conversion_nan)
    frame = pd.DataFrame(
        [r[1:5] for r in rows], columns=["recipe_id", "ingredient_id", "amount", "unit"]
    )
    # Unit names straight from the rows: pandas 3 turns a NULL in a string column into NaN.
    volumes = row_volumes_ml(amounts, [r[4] for r in rows], conversions)
    bad = np.flatnonzero(~np.isfinite(volumes) | (volumes < 0))
    if bad.size:
        r = rows[int(bad[0])]
        raise DataError(
            f"recipe_ingredients row {r[0]} (recipe {r[1]}, ingredient {r[2]}): amount {r[3]} "
            f"{r[4] or ''} gives volume {volumes[bad[0]]} ml, which is not a non-negative number"
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
        expected_recipe_ids=expected,
    )
