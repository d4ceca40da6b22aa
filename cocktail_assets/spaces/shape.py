"""Shaping the spaces' results into what is published: artifact rows, similarity rows and
the dense distance matrix. Pure functions of the computed results, no I/O."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
from barcart import EMResult, NeighborArrays, nearest_neighbors, neighbor_arrays
from numba import njit

from cocktail_assets.catalog.load import IngredientCatalog, RecipeVolumes

# (recipe id, recipe name, neighbours as JSON-ready dicts): one row of recipe_similarity.
SimilarityRow = tuple[int, str, list[dict[str, Any]]]


def space_rows(volumes: RecipeVolumes, coords: np.ndarray) -> list[dict[str, Any]]:
    """One artifact row per recipe: id, name, 2-D coordinates and its ingredient list."""
    return [
        {
            "recipe_id": int(volumes.matrix.recipe_ids[r]),
            "recipe_name": str(volumes.recipe_names[r]),
            "x": float(coords[r, 0]),
            "y": float(coords[r, 1]),
            "ingredients": volumes.ingredient_list(r),
        }
        for r in range(volumes.matrix.n_recipes)
    ]


def dense_distances(result: EMResult, n: int) -> np.ndarray:
    """The N x N recipe distances of the computed pairs: 0 on the diagonal, NaN where unknown."""
    dense = np.full((n, n), np.nan)
    np.fill_diagonal(dense, 0.0)
    dense[result.pair_i, result.pair_j] = result.distances
    dense[result.pair_j, result.pair_i] = result.distances
    return dense


def similarity_rows(
    fit: EMResult, volumes: RecipeVolumes, catalog: IngredientCatalog, n: int
) -> list[SimilarityRow]:
    """Per recipe: its nearest recipes by EM distance with the main ingredient swaps."""
    return list(iter_similarity_rows(fit, volumes, catalog, n))


def iter_similarity_rows(
    fit: EMResult, volumes: RecipeVolumes, catalog: IngredientCatalog, n: int
) -> Iterator[SimilarityRow]:
    """:func:`similarity_rows` one recipe at a time.

    The plain construction (``nearest_neighbors``' objects, one dict per neighbour and flow):
    the reference :class:`SimilarityTable` and :func:`similarity_copy_text` are tested against
    (``json.dumps`` of its dicts is the table's JSON)."""
    neighbors = nearest_neighbors(fit, volumes.matrix.n_recipes, n=n)
    recipe_ids = volumes.matrix.recipe_ids.tolist()
    recipe_names = [str(name) for name in volumes.recipe_names.tolist()]
    ingredient_names: dict[int, str] = {}  # one catalog lookup per ingredient, not per flow

    def ingredient_name(ingredient_id: int) -> str:
        name = ingredient_names.get(ingredient_id)
        if name is None:
            name = str(catalog.name_of(np.array([ingredient_id]))[0])
            ingredient_names[ingredient_id] = name
        return name

    for r, found in enumerate(neighbors):
        yield (
            int(recipe_ids[r]),
            recipe_names[r],
            [
                {
                    "neighbor_recipe_id": int(recipe_ids[nb.index]),
                    "neighbor_name": recipe_names[nb.index],
                    "distance": float(nb.distance),
                    "transport_plan": [
                        {
                            "from_ingredient_id": int(a),
                            "from_ingredient_name": ingredient_name(int(a)),
                            "to_ingredient_id": int(b),
                            "to_ingredient_name": ingredient_name(int(b)),
                            "mass": float(mass),
                        }
                        for a, b, mass in nb.flows
                    ],
                }
                for nb in found
            ],
        )


@dataclass(frozen=True)
class SimilarityTable:
    """recipe_similarity's rows as arrays: what :func:`similarity_rows` holds, without a
    Python object per neighbour or flow.

    recipe_ids, recipe_names : (N,) every recipe a row or a neighbour can name (the volumes'
        recipes, in their order).
    rows : (R,) int64 the recipe (position in ``recipe_ids``) of each row of the table, each
        recipe once: ``arange(N)``.
    neighbors : the R rows' neighbours (``index`` into ``recipe_ids``), distances and flows
        (``barcart.neighbor_arrays``).
    ingredient_ids, ingredient_names : (p,) the ingredients a flow can name, ids ascending.
    """

    recipe_ids: np.ndarray
    recipe_names: np.ndarray
    rows: np.ndarray
    neighbors: NeighborArrays
    ingredient_ids: np.ndarray
    ingredient_names: np.ndarray


def similarity_table(
    fit: EMResult, volumes: RecipeVolumes, catalog: IngredientCatalog, n: int
) -> SimilarityTable:
    """Per recipe its ``n`` nearest recipes by EM distance with the main ingredient swaps."""
    ingredient_ids = np.unique(np.asarray(fit.cost_ids, dtype=np.int64))
    return SimilarityTable(
        recipe_ids=np.asarray(volumes.matrix.recipe_ids, dtype=np.int64),
        recipe_names=volumes.recipe_names,
        rows=np.arange(volumes.matrix.n_recipes, dtype=np.int64),
        neighbors=neighbor_arrays(fit, volumes.matrix.n_recipes, n=n),
        ingredient_ids=ingredient_ids,
        ingredient_names=catalog.name_of(ingredient_ids),
    )


def copy_escape(text: str) -> str:
    """``text`` as a field of PostgreSQL's COPY text format (backslash, tab, newline and
    carriage return escaped)."""
    return (text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")
            .replace("\r", "\\r"))


def _json_string(text: str) -> str:
    """``text`` as ``json.dumps(..., ensure_ascii=False)`` writes it, escaped for COPY."""
    return copy_escape(json.dumps(str(text), ensure_ascii=False))


def float_texts(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each float of ``values`` as the shortest text that reads back as the same float: the
    digits ``float.__repr__`` (so ``json.dumps``) writes, formatted by orjson in one call.

    Returns (blob, starts, ends): the texts are ``blob[starts[k]:ends[k]]`` (ASCII). Only the
    notation of numbers below 1e-4 differs from ``repr`` (``1.5e-7`` or ``0.00001`` for
    ``1.5e-07`` and ``1e-05``): the same number, and the same jsonb numeric (PostgreSQL keeps
    the value and its digits, not the notation). Finite values only (orjson writes NaN and
    infinities as null, which the neighbour check refuses before anything is written).
    """
    values = np.ascontiguousarray(values, dtype=np.float64).ravel()
    if not values.size:
        empty = np.zeros(0, dtype=np.int64)
        return np.zeros(0, dtype=np.uint8), empty, empty
    blob = np.frombuffer(orjson.dumps(values, option=orjson.OPT_SERIALIZE_NUMPY), np.uint8)
    commas = np.flatnonzero(blob == ord(","))
    starts = np.concatenate([[1], commas + 1])
    ends = np.concatenate([commas, [blob.size - 1]])
    return blob, starts, ends


@njit(cache=True, nogil=True, inline="always")
def _put(out, at, blob, start, end, write):
    if write:
        for i in range(end - start):
            out[at + i] = blob[start + i]
    return at + end - start


@njit(cache=True, nogil=True)
def _assemble(out, write, recipe, index, source, target, ingredient_ids, fragments, starts,
              ends, neighbor_head, from_head, to_head, row_head, distances, masses):
    """The COPY text of a chunk of rows into ``out`` (or, without ``write``, its length).

    recipe (m,) the rows' recipe positions; index (m, n) neighbour positions (-1: none);
    source, target (m, n, f) ingredient ids of the flows (-1: none), found in the ascending
    ``ingredient_ids``. Fragment k of the
    text is ``fragments[starts[k]:ends[k]]``: constants 0..4, then the heads of recipes,
    flows and rows from the given offsets. ``distances`` and ``masses`` are (blob, starts,
    ends) of the texts of the present neighbours' distances and flows' masses, row-major.
    """
    dist_blob, dist_starts, dist_ends = distances
    mass_blob, mass_starts, mass_ends = masses
    at, d, q = 0, 0, 0
    for r in range(index.shape[0]):
        k = row_head + recipe[r]
        at = _put(out, at, fragments, starts[k], ends[k], write)
        first = True
        for x in range(index.shape[1]):
            s = index[r, x]
            if s < 0:
                continue
            if not first:
                at = _put(out, at, fragments, starts[1], ends[1], write)  # ,
            first = False
            k = neighbor_head + s
            at = _put(out, at, fragments, starts[k], ends[k], write)
            at = _put(out, at, dist_blob, dist_starts[d], dist_ends[d], write)
            d += 1
            at = _put(out, at, fragments, starts[2], ends[2], write)  # ,"transport_plan":[
            first_flow = True
            for t in range(source.shape[2]):
                a = source[r, x, t]
                if a < 0:
                    continue
                if not first_flow:
                    at = _put(out, at, fragments, starts[1], ends[1], write)
                first_flow = False
                k = from_head + np.searchsorted(ingredient_ids, a)
                at = _put(out, at, fragments, starts[k], ends[k], write)
                k = to_head + np.searchsorted(ingredient_ids, target[r, x, t])
                at = _put(out, at, fragments, starts[k], ends[k], write)
                at = _put(out, at, mass_blob, mass_starts[q], mass_ends[q], write)
                q += 1
                at = _put(out, at, fragments, starts[4], ends[4], write)  # }
            at = _put(out, at, fragments, starts[3], ends[3], write)  # ]}
        at = _put(out, at, fragments, starts[0], ends[0], write)  # ]\t<created_at>\n
    return at


class SimilarityCopyText:
    """COPY text (columns recipe_id, recipe_name, neighbors, created_at) of a table's rows.

    ``neighbors`` holds, per row, the JSON that ``json.dumps`` writes of
    :func:`similarity_rows`' dicts, as the same jsonb: the same keys, ids, names and float
    values (see :func:`float_texts`), without the blanks after ``,`` and ``:``, which jsonb
    does not keep. The text of every recipe and ingredient (id and escaped name) is built
    once; a chunk of rows is then put together by a compiled loop from those fragments and
    the chunk's floats, formatted in bulk. ``created_at`` is the same text on every row.
    """

    def __init__(self, table: SimilarityTable, created_at: str, encoding: str = "utf-8"):
        self.table = table
        ids = table.recipe_ids.tolist()
        names = table.recipe_names.tolist()
        json_names = [_json_string(x) for x in names]
        ingredient_ids = table.ingredient_ids.tolist()
        ingredient_names = [_json_string(x) for x in table.ingredient_names.tolist()]
        fragments = [
            f"]\t{copy_escape(created_at)}\n", ",", ',"transport_plan":[', "]}", "}",
            *(f'{{"neighbor_recipe_id":{i},"neighbor_name":{name},"distance":'
              for i, name in zip(ids, json_names, strict=True)),
            *(f'{{"from_ingredient_id":{i},"from_ingredient_name":{name},"to_ingredient_id":'
              for i, name in zip(ingredient_ids, ingredient_names, strict=True)),
            *(f'{i},"to_ingredient_name":{name},"mass":'
              for i, name in zip(ingredient_ids, ingredient_names, strict=True)),
            *(f"{i}\t{copy_escape(str(name))}\t[" for i, name in zip(ids, names, strict=True)),
        ]
        encoded = [x.encode(encoding) for x in fragments]
        lengths = np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded))
        self._ends = np.cumsum(lengths)
        self._starts = self._ends - lengths
        self._fragments = np.frombuffer(b"".join(encoded), dtype=np.uint8)
        self._neighbor_head = 5
        self._from_head = self._neighbor_head + len(ids)
        self._to_head = self._from_head + len(ingredient_ids)
        self._row_head = self._to_head + len(ingredient_ids)

    def rows(self, selected: np.ndarray) -> bytes:
        """The COPY text, encoded, of the table rows ``selected`` (positions in
        ``table.rows``)."""
        t, nb = self.table, self.table.neighbors
        index, source = nb.index[selected], nb.flow_from[selected]
        present = index >= 0
        distances = float_texts(nb.distance[selected][present])
        masses = float_texts(nb.flow_mass[selected][(source >= 0) & present[:, :, None]])
        args = (t.rows[selected], index, source, nb.flow_to[selected], t.ingredient_ids,
                self._fragments, self._starts, self._ends, self._neighbor_head,
                self._from_head, self._to_head, self._row_head, distances, masses)
        out = np.empty(_assemble(np.empty(0, np.uint8), False, *args), dtype=np.uint8)
        _assemble(out, True, *args)
        return out.tobytes()


def similarity_copy_chunks(
    table: SimilarityTable, created_at: str, selected: np.ndarray, chunk_rows: int = 2000,
    encoding: str = "utf-8",
) -> Iterator[bytes]:
    """The COPY text of the table rows ``selected``, ``chunk_rows`` rows at a time, so the
    text of 100,000 rows (hundreds of MB) never sits in memory at once."""
    text = SimilarityCopyText(table, created_at, encoding)
    for start in range(0, len(selected), chunk_rows):
        yield text.rows(selected[start:start + chunk_rows])
