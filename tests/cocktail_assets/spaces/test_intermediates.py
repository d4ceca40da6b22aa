"""The spaces' intermediates survive the store as plain arrays (the Batch hand-off)."""

from __future__ import annotations

import dataclasses

import numpy as np
import scipy.sparse as sp
from barcart import EMResult, IngredientTree, RecipeMatrix, TransportPlans

from cocktail_assets.catalog.load import IngredientCatalog, RecipeVolumes
from cocktail_assets.resources.io_manager import from_arrays, to_arrays
from cocktail_assets.resources.store import AnalyticsStore
from cocktail_assets.spaces.types import KnnGraph


def _same(a: object, b: object) -> None:
    assert type(a) is type(b)
    if dataclasses.is_dataclass(a):
        for f in dataclasses.fields(a):
            _same(getattr(a, f.name), getattr(b, f.name))
    elif sp.issparse(a):
        assert (a != b).nnz == 0 and a.shape == b.shape
    elif isinstance(a, np.ndarray):
        np.testing.assert_array_equal(a, b, strict=True)
    else:
        assert a == b


def _round_trip(obj: object, store: AnalyticsStore) -> object:
    store.put_arrays("work/x.npz", **to_arrays(obj))
    return from_arrays(store.get_arrays("work/x.npz"))


def test_round_trips(tmp_path) -> None:
    store = AnalyticsStore(local_dir=str(tmp_path))
    matrix = RecipeMatrix(recipe_ids=np.array([3, 5]), ingredient_ids=np.array([1, 2]),
                          fractions=sp.csr_matrix(np.array([[0.25, 0.75], [1.0, 0.0]])))
    objects = [
        KnnGraph(indices=np.array([[1], [0]]), distances=np.array([[0.5], [0.5]])),
        EMResult(cost_ids=np.array([1, 2]), cost=np.array([[0.0, 1.0], [1.0, 0.0]]),
                 pair_i=np.array([0], np.int32), pair_j=np.array([1], np.int32),
                 distances=np.array([0.75]),
                 plans=TransportPlans(np.array([0, 1]), np.array([1], np.int32),
                                      np.array([0], np.int32), np.array([0.75])),
                 iterations=2, converged=False, history=(0.5, 0.01)),
        RecipeVolumes(matrix=matrix, recipe_names=np.array(["Piña 🍍 \"Jo's\"", "Été"]),
                      list_ptr=np.array([0, 2, 3]),
                      list_names=np.array(["Crème", "Gin", "Crème"]),
                      expected_recipe_ids=np.array([10, 11])),
        IngredientCatalog(tree=IngredientTree.from_paths([1, 2], ["/1/", "/1/2/"]),
                          names=np.array(["Spirits", "Gin ‘x’"]),
                          paths=np.array(["/1/", "/1/2/"]),
                          allow_substitution=np.array([False, True])),
    ]
    for obj in objects:
        _same(obj, _round_trip(obj, store))
    volumes = _round_trip(objects[2], store)
    assert volumes.ingredient_list(0) == ["Crème", "Gin"]
    assert volumes.ingredient_list(1) == ["Crème"]
