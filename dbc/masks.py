"""Boolean mask tests for per-batch paths: the same answers as NumPy's ``all``, ``any`` and
``flatnonzero``, without their Python-level wrappers.

A batch decoder asks such questions dozens of times per batch on short arrays, where the
wrappers cost more than the work; ``count_nonzero`` and ``nonzero`` go straight to C.
"""

from __future__ import annotations

import numpy as np


def every(mask: np.ndarray) -> bool:
    """True where every element is true (also for an empty mask), as ``mask.all()``."""
    return np.count_nonzero(mask) == mask.size


def some(mask: np.ndarray) -> bool:
    """True where at least one element is true, as ``mask.any()``."""
    return np.count_nonzero(mask) > 0


def positions(mask: np.ndarray) -> np.ndarray:
    """Indices of the true elements of a 1-D mask, as ``np.flatnonzero``."""
    return mask.nonzero()[0]
