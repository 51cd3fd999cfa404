"""The reference SOC: open-circuit voltage at rest, coulomb counting in between.

It is what the model-based estimate (`controller.estimation.cell_soc`) is measured against in
``canbms bench``, and what the `soc_ocv_disagreement` plausibility check judges: how far the
counted charge had drifted when a rest gives a new OCV reading.

A rested cell's voltage is its open-circuit voltage, which the OCV table maps to SOC; the
table is inverted for the lowest, highest and mean cell, so the limits can taper charge on
the fullest cell and discharge on the emptiest. Under current the three values move by the
charge counted (positive current = charging) over the configured capacity. The first
estimate is taken from OCV as soon as the current is below the rest threshold (at power-up
the pack has normally rested with the contactors open); under load the SOC stays unknown
(NaN) until then, and an unknown SOC zeroes the limits that depend on it. While the current
is not valid nothing is counted and the rest timer restarts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from enum import Enum

import numpy as np

from controller.limits.config import SocConfig
from controller.measurements import ArrayStats


class SocSource(Enum):
    UNKNOWN = "unknown"
    OCV = "ocv"  # last set from the OCV table, nothing counted since
    COUNTED = "counted"  # OCV value moved by coulomb counting


@dataclass(frozen=True)
class CountingState:
    time: float | None
    soc_min: float  # % (cell with the lowest voltage at the last OCV reading)
    soc_max: float  # %
    soc_mean: float  # %
    rest_since: float | None  # s, start of the present rest; None under current
    source: SocSource

    @property
    def valid(self) -> bool:
        return self.source is not SocSource.UNKNOWN


class CountingSoc:
    """SOC from the OCV table and coulomb counting for one configuration."""

    def __init__(self, config: SocConfig) -> None:
        self.config = config
        self._percent_per_as = 100.0 / (config.capacity_ah * 3600.0)

    @staticmethod
    def initial_state() -> CountingState:
        return CountingState(None, math.nan, math.nan, math.nan, None, SocSource.UNKNOWN)

    def soc_from_ocv(self, voltage: float | np.ndarray) -> np.ndarray:
        """SOC (%) of rested cells at ``voltage``, clamped to the table."""
        return np.interp(voltage, self.config.ocv.y, self.config.ocv.x)

    def ocv_from_soc(self, soc: float | np.ndarray) -> np.ndarray:
        """Open-circuit voltage (V) of a cell at ``soc`` (%)."""
        return np.interp(soc, self.config.ocv.x, self.config.ocv.y)

    def step(
        self,
        state: CountingState,
        current: float,
        current_valid: bool,
        cells: ArrayStats,
        now: float,
    ) -> CountingState:
        cfg = self.config
        dt = 0.0 if state.time is None else max(0.0, now - state.time)
        known = current_valid and math.isfinite(current)
        if not known:
            return replace(state, time=now, rest_since=None)
        low, high, mean, source = state.soc_min, state.soc_max, state.soc_mean, state.source
        if state.valid and current != 0.0 and dt > 0.0:
            delta = current * dt * self._percent_per_as
            low, high, mean = _clip(low + delta), _clip(high + delta), _clip(mean + delta)
            source = SocSource.COUNTED
        if abs(current) >= cfg.rest_current_a:
            return CountingState(now, low, high, mean, None, source)
        rest_since = now if state.rest_since is None else state.rest_since
        rested = now - rest_since >= cfg.rest_time_s
        if cells.valid and (rested or source is SocSource.UNKNOWN):
            low, high, mean = self.soc_from_ocv(
                np.array([cells.minimum, cells.maximum, cells.mean])
            )
            return CountingState(
                now, float(low), float(high), float(mean), rest_since, SocSource.OCV
            )
        return CountingState(now, low, high, mean, rest_since, source)


def _clip(soc: float) -> float:
    return min(100.0, max(0.0, soc))
