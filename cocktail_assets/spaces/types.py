"""Intermediate types of the spaces domain that barcart does not define."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class KnnGraph:
    """Exact k nearest neighbours per recipe row: (N, k) indices and distances."""

    indices: np.ndarray
    distances: np.ndarray
