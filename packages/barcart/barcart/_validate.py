"""Input checks shared by the public functions (raise ``ValueError`` naming the culprit)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

ROW_SUM_TOL = 1e-9


def as_1d(name: str, values: object, dtype: type | np.dtype) -> np.ndarray:
    """Return ``values`` as a 1-D array of ``dtype`` or raise naming ``name``."""
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if (
        np.issubdtype(np.dtype(dtype), np.integer)
        and arr.size
        and not np.issubdtype(arr.dtype, np.integer)
    ):
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            raise ValueError(f"{name} must hold integers")
    return arr.astype(dtype, copy=False)


def check_fractions(fractions: sp.csr_matrix, name: str = "fractions") -> None:
    """Each row of a CSR volume-fraction matrix: finite, non-negative, sums to 1."""
    if not sp.issparse(fractions) or fractions.format != "csr":
        raise ValueError(f"{name} must be a scipy.sparse CSR matrix")
    data = fractions.data
    bad = ~np.isfinite(data) | (data < 0)
    if bad.any():
        row = int(np.searchsorted(fractions.indptr, np.flatnonzero(bad)[0], side="right") - 1)
        raise ValueError(f"{name} row {row} has a negative or non-finite entry")
    sums = np.add.reduceat(data, fractions.indptr[:-1]) if data.size else np.zeros(0)
    empty = np.diff(fractions.indptr) == 0
    if data.size:
        sums = np.where(empty, 0.0, sums)
    else:
        sums = np.zeros(fractions.shape[0])
    off = np.abs(sums - 1.0) > ROW_SUM_TOL
    if off.any():
        row = int(np.flatnonzero(off)[0])
        raise ValueError(f"{name} row {row} sums to {sums[row]!r}, not 1")


def check_cost(cost: np.ndarray, p: int, name: str = "cost") -> np.ndarray:
    """A (p, p) finite, non-negative, symmetric cost matrix as float64."""
    c = np.asarray(cost, dtype=np.float64)
    if c.ndim != 2 or c.shape[0] != c.shape[1]:
        raise ValueError(f"{name} must be square, got shape {c.shape}")
    if c.shape[0] != p:
        raise ValueError(f"{name} has {c.shape[0]} rows but cost_ids has {p} ids")
    if not np.all(np.isfinite(c)):
        row = int(np.argwhere(~np.isfinite(c))[0, 0])
        raise ValueError(f"{name} row {row} has a non-finite entry")
    if np.any(c < 0):
        row = int(np.argwhere(c < 0)[0, 0])
        raise ValueError(f"{name} row {row} has a negative entry")
    asym = np.abs(c - c.T) > 1e-9 * max(1.0, float(np.abs(c).max(initial=0.0)))
    if asym.any():
        i, j = np.argwhere(asym)[0]
        raise ValueError(f"{name} is not symmetric: entry ({i}, {j}) differs from ({j}, {i})")
    return np.ascontiguousarray(c)
