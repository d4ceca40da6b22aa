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


def check_index(
    name: str, values: object, bound: int, what: str, *, as_int64: bool = True
) -> np.ndarray:
    """``values`` as 1-D int64 indices, each in ``[0, bound)``, or raise naming the position.

    Compiled kernels do not bounds-check (a negative index wraps, a large one reads or writes
    past the array), so every index array a public function hands to one passes here first.
    Integer dtypes only (a bool mask or float array is a caller's mistake, not an index);
    one ``min``/``max`` pass, the first offender is located only on failure. With
    ``as_int64=False`` the array is returned as it is (a check only: no int64 copy of, say,
    a plan's 100 M int32 rows).
    """
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.size == 0:
        return np.zeros(0, dtype=np.int64)
    if not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{name} must hold integer indices, got dtype {arr.dtype}")
    if int(arr.min()) < 0 or int(arr.max()) >= bound:
        pos = int(np.flatnonzero((arr < 0) | (arr >= bound))[0])
        raise ValueError(
            f"{name}[{pos}] = {int(arr[pos])} is not {what} (valid: 0 to {bound - 1})"
            if bound > 0
            else f"{name}[{pos}] = {int(arr[pos])} is not {what} (there are none)"
        )
    return arr.astype(np.int64, copy=False) if as_int64 else arr


def check_pairs(
    pair_i: object, pair_j: object, n_rows: int, rows: str = "fractions"
) -> tuple[np.ndarray, np.ndarray]:
    """(P,) int64 ``pair_i``, ``pair_j``, every entry a row index of ``rows`` (``n_rows`` rows).

    The message names the offending pair: ``pair_j[3] = 7 is not a row of fractions ...``.
    """
    what = f"a row of {rows}"
    pi = check_index("pair_i", pair_i, n_rows, what)
    pj = check_index("pair_j", pair_j, n_rows, what)
    if pi.shape != pj.shape:
        raise ValueError(
            f"pair_i and pair_j must have equal length, got {pi.shape[0]} and {pj.shape[0]}"
        )
    return pi, pj


def check_col_map(
    col_to_cost: object, n_cols: int, n_targets: int, target: str = "cost"
) -> np.ndarray:
    """(n_cols,) int64: for each column of the fractions, its row in ``target``."""
    cols = np.asarray(col_to_cost)
    if cols.shape != (n_cols,):
        raise ValueError(
            f"col_to_cost must have one entry per column of fractions ({n_cols}), "
            f"got shape {cols.shape}"
        )
    return check_index("col_to_cost", cols, n_targets, f"a row of {target}")


def check_plans(
    ptr: object, source: object, target: object, mass: object, n_pairs: int, n_rows: int
) -> None:
    """Transport plans in CSR form: ``ptr`` (n_pairs + 1,) from 0 up to the number of flows,
    non-decreasing; source and target rows of the cost (``n_rows`` of them); masses alike."""
    ptr_a = np.asarray(ptr)
    if ptr_a.shape != (n_pairs + 1,):
        raise ValueError(
            f"plans.ptr must have one entry per pair plus one ({n_pairs + 1}), "
            f"got shape {ptr_a.shape}"
        )
    n_flows = np.asarray(mass).shape
    if not (np.shape(source) == np.shape(target) == n_flows and len(n_flows) == 1):
        raise ValueError("plans.source, plans.target and plans.mass must be 1-D of equal length")
    if ptr_a[0] != 0 or ptr_a[-1] != n_flows[0]:
        raise ValueError(f"plans.ptr must run from 0 to the number of flows ({n_flows[0]})")
    step = np.diff(ptr_a)
    if step.size and step.min() < 0:
        raise ValueError(f"plans.ptr decreases at pair {int(np.flatnonzero(step < 0)[0])}")
    check_index("plans.source", source, n_rows, "a row of the cost", as_int64=False)
    check_index("plans.target", target, n_rows, "a row of the cost", as_int64=False)


def check_fractions(fractions: sp.csr_matrix, name: str = "fractions") -> None:
    """Each row of a CSR volume-fraction matrix: finite, non-negative, sums to 1.

    The CSR structure is checked too (scipy checks column indices only on request, and the
    kernels index dense work arrays by them): ``indptr`` non-decreasing, columns in range.
    """
    if not sp.issparse(fractions) or fractions.format != "csr":
        raise ValueError(f"{name} must be a scipy.sparse CSR matrix")
    indptr, indices = fractions.indptr, fractions.indices
    n_rows, n_cols = fractions.shape
    if (
        indptr.shape != (n_rows + 1,)
        or indptr[0] != 0
        or indptr[-1] != indices.shape[0]
        or fractions.data.shape != indices.shape
    ):
        raise ValueError(f"{name} has a malformed CSR structure (indptr, indices, data)")
    step = np.diff(indptr)
    if step.size and step.min() < 0:
        raise ValueError(f"{name} row {int(np.flatnonzero(step < 0)[0])} has a negative length")
    if indices.size and (int(indices.min()) < 0 or int(indices.max()) >= n_cols):
        at = int(np.flatnonzero((indices < 0) | (indices >= n_cols))[0])
        row = int(np.searchsorted(indptr, at, side="right") - 1)
        raise ValueError(
            f"{name} row {row} has column index {int(indices[at])} outside 0 to {n_cols - 1}"
        )
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
        raise ValueError(f"{name} row {row} sums to {float(sums[row])!r}, not 1")


def check_cost(
    cost: np.ndarray, p: int | None, name: str = "cost", *, symmetric: bool = True
) -> np.ndarray:
    """A (p, p) finite, non-negative (by default symmetric) cost matrix as float64.

    ``p=None`` accepts any square size (callers that take no ``cost_ids``).
    """
    c = np.asarray(cost, dtype=np.float64)
    if c.ndim != 2 or c.shape[0] != c.shape[1]:
        raise ValueError(f"{name} must be square, got shape {c.shape}")
    if p is not None and c.shape[0] != p:
        raise ValueError(f"{name} has {c.shape[0]} rows but cost_ids has {p} ids")
    if not np.all(np.isfinite(c)):
        row = int(np.argwhere(~np.isfinite(c))[0, 0])
        raise ValueError(f"{name} row {row} has a non-finite entry")
    if np.any(c < 0):
        row = int(np.argwhere(c < 0)[0, 0])
        raise ValueError(f"{name} row {row} has a negative entry")
    if not symmetric:
        return np.ascontiguousarray(c)
    asym = np.abs(c - c.T) > 1e-9 * max(1.0, float(np.abs(c).max(initial=0.0)))
    if asym.any():
        i, j = np.argwhere(asym)[0]
        raise ValueError(f"{name} is not symmetric: entry ({i}, {j}) differs from ({j}, {i})")
    return np.ascontiguousarray(c)
