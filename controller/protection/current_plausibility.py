"""The current reading against the cells' voltage response, every cycle.

A current step of dI moves every cell by R0 dI at once and by up to (R0 + R1) dI as the
polarisation builds up, so the mean cell voltage's change dV bounds the true current change
between dV / (R0 + R1) and dV / R0. A reading that stood still while the cells moved by a
load step is stuck; a reading whose change lies outside those bounds has a gain error, is
stuck or belongs to another current. Steps are compared against a reference taken only
while current and cells are steady, so a reference never holds half of a step (the cell
frames lag the current frames by up to a period). At open contactors no current can flow:
any reading there is an offset.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from controller.protection.inputs import ProtectionInputs
from controller.protection.lag import Lag
from controller.protection.plausibility_config import PlausibilityConfig

_T_REF_K = 298.15


@dataclass(frozen=True)
class CurrentState:
    lag: Lag = Lag()
    previous: tuple[float, float] | None = None  # (current, mean cell voltage) last cycle
    changed_at: float = -math.inf  # last cycle either moved beyond the steady band


@dataclass(frozen=True)
class CurrentMeasures:
    stuck: float  # A the cells moved by while the reading stood; NaN: not judged
    consistency: float  # share of the current change outside the bounds; NaN: not judged
    at_open: float  # A read while the contactors are open; NaN: not judged


def resistances(
    config: PlausibilityConfig, inputs: ProtectionInputs, temperature_c: float
) -> tuple[float, float]:
    """(R0, R1) of one average cell now: the estimate where given, else nominal at T."""
    factor = 1.0
    if math.isfinite(temperature_c):
        factor = math.exp(config.activation_k * (1.0 / (temperature_c + 273.15) - 1 / _T_REF_K))
    r0 = config.cell_r0_ohm * factor
    if inputs.cell_resistance is not None:
        r0 = float(np.mean(inputs.cell_resistance))
    return r0, config.cell_r1_ohm * factor


def step_current(
    config: PlausibilityConfig,
    state: CurrentState,
    inputs: ProtectionInputs,
    temperature_c: float,
    now: float,
) -> tuple[CurrentState, CurrentMeasures]:
    n = inputs.cell_voltage.size
    at_open = abs(inputs.pack_current) if inputs.current_must_be_zero else math.nan
    usable = inputs.pack_current_valid and inputs.all_cells_valid and n > 0
    if not (usable and math.isfinite(inputs.pack_current)):
        return CurrentState(), CurrentMeasures(math.nan, math.nan, at_open)
    r0, r1 = resistances(config, inputs, temperature_c)
    now_iv = (inputs.pack_current, inputs.cell_voltage_sum / n)
    changed_at = state.changed_at
    if state.previous is not None:
        moved = max(abs(now_iv[0] - state.previous[0]), abs(now_iv[1] - state.previous[1]) / r0)
        if moved > config.steady_band_a:
            changed_at = now
    steady = now - changed_at >= config.settle_s
    value = np.array(now_iv)
    lag = state.lag.advance(value, now, config.step_window_s / 2.0, steady)
    new_state = CurrentState(lag, now_iv, changed_at)
    change = lag.change(value)
    if change is None:
        return new_state, CurrentMeasures(math.nan, math.nan, at_open)
    d_current, d_voltage = float(change[0]), float(change[1])
    upper, lower = d_voltage / r0, d_voltage / (r0 + r1)  # bounds of the true change
    stuck = abs(lower) if abs(d_current) <= config.current_noise_a else 0.0
    scale = max(abs(upper), abs(d_current))
    consistency = math.nan
    if scale >= config.min_step_a:
        low, high = min(lower, upper), max(lower, upper)
        consistency = max(low - d_current, d_current - high, 0.0) / scale
    return new_state, CurrentMeasures(stuck, consistency, at_open)
