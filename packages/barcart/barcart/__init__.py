"""barcart: cocktail recipe spaces from volume fractions, an ingredient tree and exact EMD.

Pure functions over NumPy/SciPy arrays: no I/O, no logging set-up, no global state.
"""

from barcart.em import EMParams, EMResult, TransportPlans, fit_em
from barcart.embedding import embed_em, embed_knn, embed_manhattan, manhattan_knn
from barcart.emd import emd_dense, emd_pairs
from barcart.rollup import rollup
from barcart.similarity import Neighbor, NeighborArrays, nearest_neighbors, neighbor_arrays
from barcart.synthetic import synthetic_recipes
from barcart.tree import IngredientTree, TreeError, tree_distance_matrix
from barcart.tree_emd import TreeMetric, tree_emd_pairs
from barcart.volumes import RecipeMatrix, row_volumes_ml, volume_fractions

__all__ = [
    "EMParams",
    "EMResult",
    "IngredientTree",
    "Neighbor",
    "NeighborArrays",
    "RecipeMatrix",
    "TransportPlans",
    "TreeError",
    "TreeMetric",
    "embed_em",
    "embed_knn",
    "embed_manhattan",
    "emd_dense",
    "emd_pairs",
    "fit_em",
    "manhattan_knn",
    "nearest_neighbors",
    "neighbor_arrays",
    "rollup",
    "row_volumes_ml",
    "synthetic_recipes",
    "tree_distance_matrix",
    "tree_emd_pairs",
    "volume_fractions",
]
__version__ = "0.1.0"
