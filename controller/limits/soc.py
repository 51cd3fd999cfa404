"""State of charge per cell, and what the pack publishes from it.

Every cell has its own model-based estimate (`controller.estimation.cell_soc`: an extended
Kalman filter on an equivalent circuit with the cell's measured capacity and resistance), so
the estimate is corrected by every cell reading, under load as at rest, and a weak cell is
seen as weak. From the cells:

- ``soc_min`` / ``soc_max`` / ``soc_mean``: the lowest, highest and mean cell SOC (%); the
  SOC derating reads the lowest when discharging and the highest when charging;
- ``pack``: the usable SOC of the series string, D / (D + U) x 100 with D the charge until
  the first cell is empty and U the charge until the first cell is full (each cell's SOC
  times its capacity): 0 % when the weakest cell is empty, 100 % when the fullest is full.
  It is what goes on the bus.

All four are NaN, and ``valid`` False, until every cell's SOC standard deviation is below
``[soc] valid_uncertainty_percent``: a restart without a stored SOC starts "unknown" and
becomes valid once the readings have pinned every cell down, under load or not.

The reference estimate of coulomb counting with rest correction
(`controller.estimation.counting`) runs beside it: protection's `soc_ocv_disagreement`
check judges the counted charge against the OCV at rests.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from controller.estimation.cell_soc import CellSocFilter, FilterState
from controller.estimation.counting import CountingSoc, CountingState, SocSource
from controller.limits.config import SocConfig
from controller.measurements import ArrayStats

__all__ = ["SocEstimator", "SocInputs", "SocSource", "SocState", "pack_soc"]


@dataclass(frozen=True)
class SocInputs:
    """One cycle's measurements and the cells' health (per-cell arrays in pack order)."""

    voltage: np.ndarray  # V
    voltage_valid: np.ndarray
    updated_at: np.ndarray  # s, arrival of each cell's reading
    voltage_stats: ArrayStats
    current: float  # A, + = charging
    current_valid: bool
    temperature: float  # degC, mean cell temperature; NaN: unknown
    capacity_ah: np.ndarray  # measured or assumed capacity per cell
    resistance_ohm: np.ndarray  # measured resistance per cell; NaN: not measured


@dataclass(frozen=True)
class SocState:
    time: float | None
    filter: FilterState
    counting: CountingState
    steady_current: float  # A, where the current settled; NaN: unknown
    steady_since: float  # s
    soc_min: float = math.nan  # % lowest cell
    soc_max: float = math.nan  # % highest cell
    soc_mean: float = math.nan  # % mean of the cells
    pack: float = math.nan  # % usable SOC of the string (published)
    valid: bool = False

    @property
    def cells(self) -> np.ndarray:
        """Per-cell SOC (%) clipped to 0..100; NaN where never measured."""
        return np.clip(self.filter.soc, 0.0, 100.0)


class SocEstimator:
    """The SOC estimate for one configuration and pack size."""

    def __init__(self, config: SocConfig, cells: int) -> None:
        self.config = config
        self.cells = cells
        self.filter = CellSocFilter(config, cells)
        self.counting = CountingSoc(config)
        self._settle_s = config.settle_ms / 1000.0

    def initial_state(
        self, cell_soc: Sequence[float] = (), soc_range: tuple[float, float, float] | None = None
    ) -> SocState:
        """Nothing known, or what a previous run stored: per-cell SOC, or (from an older
        record) the lowest, highest and mean cell SOC, which every cell starts from with
        the spread as its uncertainty. Trusted to ``restored_uncertainty_percent`` at best:
        the charge moved while the controller was off is unknown."""
        stored = np.asarray(cell_soc, np.float64).reshape(-1)
        f = self.filter.initial_state()
        if stored.size == self.cells and np.isfinite(stored).any():
            f = self.filter.initial_state(stored)
        elif soc_range is not None and all(math.isfinite(v) for v in soc_range):
            low, high, mean = soc_range
            spread = max(self.config.restored_uncertainty_percent, (high - low) / 2.0)
            f = self.filter.initial_state(np.full(self.cells, mean), spread)
        return self._published(None, f, CountingSoc.initial_state(), math.nan, -math.inf)

    def step(self, state: SocState, i: SocInputs, now: float) -> SocState:
        dt = 0.0 if state.time is None else max(0.0, now - state.time)
        r_factor = self.filter.resistance_factor(i.temperature)
        counting = self.counting.step(
            state.counting, i.current, i.current_valid, i.voltage_stats, now
        )
        f = state.filter
        steady, since = state.steady_current, state.steady_since
        if not (i.current_valid and math.isfinite(i.current)):
            f = self.filter.lost_current(f, dt)
            steady, since = math.nan, now
        else:
            if math.isnan(steady) or abs(i.current - steady) > self.config.steady_band_a:
                steady, since = i.current, now
            fresh = i.updated_at > f.measured_at
            fresh &= i.voltage_valid
            fresh &= i.updated_at >= since + self._settle_s
            f = self.filter.step(
                f,
                i.current,
                dt,
                i.capacity_ah,
                r_factor,
                i.voltage,
                fresh,
                i.updated_at,
                i.resistance_ohm,
            )
        return self._published(now, f, counting, steady, since)

    def _published(
        self,
        now: float | None,
        f: FilterState,
        counting: CountingState,
        steady: float,
        since: float,
    ) -> SocState:
        soc = f.soc
        lowest = soc.min()  # NaN when a cell was never measured
        worst = math.sqrt(max(float(f.cov_packed[0].max()), 0.0))  # the largest SOC std
        if math.isnan(lowest) or not worst <= self.config.valid_uncertainty_percent:
            return SocState(now, f, counting, steady, since)
        cells = np.maximum(soc, 0.0)
        np.minimum(cells, 100.0, out=cells)
        return SocState(
            now,
            f,
            counting,
            steady,
            since,
            soc_min=min(100.0, max(0.0, float(lowest))),
            soc_max=min(100.0, max(0.0, float(soc.max()))),
            soc_mean=float(cells.sum() / cells.size),
            pack=pack_soc(cells, f.capacity_ah),
            valid=True,
        )


def pack_soc(cells: np.ndarray, capacity_ah: np.ndarray) -> float:
    """Usable SOC (%) of a series string: charge until the first cell is empty over that
    plus the charge until the first cell is full."""
    down = float((cells * capacity_ah).min())
    up = float(((100.0 - cells) * capacity_ah).min())
    return 100.0 * down / (down + up) if down + up > 0.0 else 0.0
