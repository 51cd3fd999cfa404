"""Each temperature sensor against its neighbours, evaluated at the plausibility period.

The sensors of one module see one lumped module temperature (plus a fixed mounting
offset), and the modules of a pack share current and coolant. So over a window of tens of
seconds a sensor should move as the median of its module moves, or, when the whole module
stands still, as the pack's median moves: a sensor that moved less than its noise band
while that prediction moved is stuck. The spread of one module's sensors is bounded by
their mounting offsets, and no module heats or cools faster than its heat capacity allows.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from controller.protection.cell_plausibility import groups, module_median
from controller.protection.inputs import ProtectionInputs
from controller.protection.lag import Lag
from controller.protection.plausibility_config import PlausibilityConfig


@dataclass(frozen=True)
class TemperatureState:
    window: Lag = Lag()  # for the stuck comparison
    rate: Lag = Lag()  # for the rate of change


@dataclass(frozen=True)
class TemperatureMeasures:
    stuck: np.ndarray  # (m,) K the prediction moved while the sensor stood
    stuck_valid: np.ndarray  # (m,) bool
    spread: np.ndarray  # (modules,) K, max - min of the module's valid sensors
    rate: np.ndarray  # (m,) K/s
    rate_valid: np.ndarray  # (m,) bool


def step_temperatures(
    config: PlausibilityConfig, state: TemperatureState, inputs: ProtectionInputs, now: float
) -> tuple[TemperatureState, TemperatureMeasures]:
    valid = inputs.cell_temperature_valid
    t = np.where(valid, inputs.cell_temperature, np.nan)  # invalid: judged elsewhere
    modules = groups(t.size, inputs.module_age.size)
    spread = _spread(t.reshape(modules, -1), bool(valid.all()))
    window = state.window.advance(t, now, config.temperature_window_s / 2.0, True)
    rate_lag = state.rate.advance(t, now, config.rate_window_s / 2.0, True)
    stuck = np.zeros(t.size)
    stuck_valid = np.zeros(t.size, bool)
    change = window.change(t)
    if change is not None:
        judged = ~np.isnan(change)  # valid now and at the snapshot
        d_module = np.nan_to_num(np.abs(module_median(change, judged, modules)))
        d_pack = abs(float(np.median(change[judged]))) if judged.any() else 0.0
        predicted = np.maximum(d_module, d_pack)
        stuck = np.where(np.abs(change) <= config.temperature_band_k, predicted, 0.0)
        stuck_valid = judged
    rate = np.zeros(t.size)
    rate_valid = np.zeros(t.size, bool)
    rate_change = rate_lag.change(t)
    if rate_change is not None and now > rate_lag.older_at:
        rate = np.abs(rate_change) / (now - rate_lag.older_at)
        rate_valid = ~np.isnan(rate_change)
    return TemperatureState(window, rate_lag), TemperatureMeasures(
        stuck, stuck_valid, spread, rate, rate_valid
    )


def _spread(grid: np.ndarray, all_valid: bool) -> np.ndarray:
    """Per module max - min of its valid sensors (NaN marks invalid); 0 with fewer than 2."""
    if all_valid:
        return grid.max(axis=1) - grid.min(axis=1)
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a module without a valid sensor
        return np.nan_to_num(np.nanmax(grid, axis=1) - np.nanmin(grid, axis=1))
