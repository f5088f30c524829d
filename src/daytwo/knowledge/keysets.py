"""Sorted arrays of chunk primary keys (the permitted sets both index paths filter by)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["members"]


def members(keys: npt.NDArray[np.uint64], allowed: npt.NDArray[np.uint64]) -> npt.NDArray[np.bool_]:
    """Which of ``keys`` are in the sorted array ``allowed`` (binary search, no copy)."""
    if allowed.size == 0 or keys.size == 0:
        return np.zeros(keys.shape, dtype=bool)
    pos = np.minimum(np.searchsorted(allowed, keys), allowed.size - 1)
    return np.asarray(allowed[pos] == keys, dtype=bool)
