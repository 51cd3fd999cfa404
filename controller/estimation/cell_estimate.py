"""What a per-cell SOC filter state is read as, whichever way it is stored."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

SOC, V1, CAP, RES, HYS = range(5)  # rows of a cell's state


@dataclass(frozen=True, eq=False)
class Layout:
    """Where each covariance entry (i, j), i <= j, sits in ``cov_packed``: row by row, so
    the SOC row is the first ``states`` entries and (SOC, SOC) entry 0."""

    rows: np.ndarray  # (entries,) i of each entry
    cols: np.ndarray  # (entries,) j of each entry
    full: np.ndarray  # (states, states) the entry of (i, j) and of (j, i)
    diagonal: np.ndarray  # (states,) the entries (i, i)
    off_diagonal: np.ndarray  # the entries i < j

    @classmethod
    @functools.cache
    def of(cls, states: int) -> Layout:
        rows, cols = np.triu_indices(states)
        full = np.zeros((states, states), np.intp)
        full[rows, cols] = full[cols, rows] = np.arange(rows.size)
        return cls(rows, cols, full, full.diagonal().copy(), np.flatnonzero(rows != cols))


class CellEstimate:
    """The readings of a filter state, from per-cell arrays (states, cells) ``x`` and the
    packed covariance (entries, cells) ``cov_packed``, and from what is read every step
    without them: ``soc`` (%; NaN: never measured), ``soc_variance``, ``q`` (C_nom / C)."""

    x: np.ndarray  # (states, cells): SOC %, V1 V, q, R0 at 25 degC Ohm[, h]
    cov_packed: np.ndarray  # (entries, cells): the covariance's upper triangle (`Layout`)
    soc: np.ndarray
    soc_variance: np.ndarray
    q: np.ndarray
    measured_at: np.ndarray  # s, arrival time of the last reading used; -inf: none
    capacity_in: np.ndarray | None  # Ah, the capacity q was last taken from; None: none yet
    nominal_ah: float  # C_nom
    start_std: float  # % standard deviation a cell's first reading starts from
    last_current: float  # A, the last valid current

    @property
    def v_rc(self) -> np.ndarray:
        return self.x[V1]

    @property
    def capacity_ah(self) -> np.ndarray:
        """The capacity per cell the filter works with (Ah)."""
        return self.nominal_ah / self.q

    @property
    def h(self) -> np.ndarray:
        """Hysteresis state per cell, -1 .. +1 (0 for a cell type without hysteresis)."""
        return self.x[HYS] if self.x.shape[0] > HYS else np.zeros(self.x.shape[1])

    @property
    def cov(self) -> np.ndarray:
        """The full covariance, (states, states, cells)."""
        return self.cov_packed[Layout.of(self.x.shape[0]).full]

    @property
    def std(self) -> np.ndarray:
        """SOC standard deviation per cell (%); inf where never measured."""
        variance = self.soc_variance
        return np.where(np.isnan(self.soc), np.inf, np.sqrt(np.maximum(variance, 0.0)))


def frozen(array: np.ndarray) -> np.ndarray:
    """``array`` made read-only: states share arrays, so nothing may write into them."""
    array.flags.writeable = False
    return array
