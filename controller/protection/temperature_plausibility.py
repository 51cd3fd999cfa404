"""Each temperature sensor against its neighbours, evaluated at the plausibility period.

The sensors of one module see one lumped module temperature (plus a fixed mounting
offset), and the modules of a pack share current and coolant. So over a window of tens of
seconds a sensor should move as the median of its module moves, or, when the whole module
stands still, as the pack's median moves: a sensor that moved less than its noise band
while that prediction moved is stuck. The spread of one module's sensors is bounded by
their mounting offsets, and no module heats or cools faster than its heat capacity allows.

When every sensor stands still, the neighbours predict nothing; the cells' own heat does.
With a module's heat capacity C and thermal time constant tau configured, a heat model
starts at every rest of ``thermal_rest_s`` (the modules then at their coolant's temperature)
from the readings of that moment: under load each module's rise over them follows
dT' = P / C - dT / tau with P = I^2 x the sum of its cells' R0 (ohmic heat only, so the
model stays below the true rise while C and tau are not underestimated). A sensor that has
moved less than ``temperature_band_k`` since the model started while its module's model
rose is stuck, by as much as the model rose.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np

from controller.protection.cell_plausibility import groups, module_median
from controller.protection.inputs import ProtectionInputs
from controller.protection.lag import Lag
from controller.protection.plausibility_config import PlausibilityConfig


@dataclass(frozen=True)
class HeatModel:
    """Each module's predicted rise since a rest, and the readings at that rest."""

    rise: np.ndarray  # (modules,) K
    start: np.ndarray  # (m,) readings when the model started (NaN: invalid then)
    time: float


@dataclass(frozen=True)
class TemperatureState:
    window: Lag = Lag()  # for the stuck comparison
    rate: Lag = Lag()  # for the rate of change
    heat: HeatModel | None = None  # None: not started since the last rest


@dataclass(frozen=True)
class TemperatureMeasures:
    stuck: np.ndarray  # (m,) K the prediction moved while the sensor stood
    stuck_valid: np.ndarray  # (m,) bool
    spread: np.ndarray  # (modules,) K, max - min of the module's valid sensors
    rate: np.ndarray  # (m,) K/s
    rate_valid: np.ndarray  # (m,) bool


def step_temperatures(
    config: PlausibilityConfig,
    state: TemperatureState,
    inputs: ProtectionInputs,
    now: float,
    rested_s: float | None,
    cell_r0: np.ndarray | float,
) -> tuple[TemperatureState, TemperatureMeasures]:
    """``rested_s``: how long the pack has been at rest (None under load); ``cell_r0``: each
    cell's R0 now, for the heat model."""
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
    heat = _heat(config, state.heat, inputs, t, now, rested_s, cell_r0, modules)
    if heat is not None:
        moved = np.abs(t - heat.start)
        per = t.size // modules
        model = np.where(moved <= config.temperature_band_k, np.repeat(heat.rise, per), 0.0)
        model_valid = ~np.isnan(moved)
        stuck = np.where(model_valid, np.maximum(stuck, model), stuck)
        stuck_valid = stuck_valid | model_valid
    rate = np.zeros(t.size)
    rate_valid = np.zeros(t.size, bool)
    rate_change = rate_lag.change(t)
    if rate_change is not None and now > rate_lag.older_at:
        rate = np.abs(rate_change) / (now - rate_lag.older_at)
        rate_valid = ~np.isnan(rate_change)
    return TemperatureState(window, rate_lag, heat), TemperatureMeasures(
        stuck, stuck_valid, spread, rate, rate_valid
    )


def _heat(
    config: PlausibilityConfig,
    model: HeatModel | None,
    inputs: ProtectionInputs,
    t: np.ndarray,
    now: float,
    rested_s: float | None,
    cell_r0: np.ndarray | float,
    modules: int,
) -> HeatModel | None:
    """The heat model advanced to ``now``: (re)started at a long rest, dropped while the
    current is unknown or the model is not configured."""
    capacity, tau = config.module_heat_capacity_j_per_k, config.module_time_constant_s
    if capacity is None or tau is None or not inputs.pack_current_valid:
        return None
    if rested_s is not None and rested_s >= config.thermal_rest_s:
        return HeatModel(np.zeros(modules), t.copy(), now)
    if model is None or model.start.shape != t.shape:
        return None
    cells = inputs.cell_voltage.size
    r0 = np.broadcast_to(np.asarray(cell_r0, np.float64), (cells,))
    power = inputs.pack_current**2 * r0.reshape(groups(cells, modules), -1).sum(axis=1)
    if power.size != modules:  # cells and sensors grouped differently: one pack-wide model
        power = np.full(modules, power.sum() / modules)
    decay = math.exp(-(now - model.time) / tau)
    rise = model.rise * decay + power * tau / capacity * (1.0 - decay)
    return HeatModel(rise, model.start, now)


def _spread(grid: np.ndarray, all_valid: bool) -> np.ndarray:
    """Per module max - min of its valid sensors (NaN marks invalid); 0 with fewer than 2."""
    if all_valid:
        return grid.max(axis=1) - grid.min(axis=1)
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a module without a valid sensor
        return np.nan_to_num(np.nanmax(grid, axis=1) - np.nanmin(grid, axis=1))
