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
from controller.protection.resistance import temperature_factor


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
    config: PlausibilityConfig, learnt: np.ndarray | None, temperature_c: float
) -> tuple[np.ndarray | float, float, float]:
    """(R0 per cell, R0 and R1 of one average cell) at the mean temperature now.

    A cell's R0 is its learnt resistance at 25 degC where there is one
    (`controller.protection.resistance`), else the nominal one, either brought to the mean
    temperature. An aged cell's polarisation grows with its R0 (both come from the same loss
    of active surface), so R1 is the nominal one scaled by the average cell's R0 over the
    nominal R0: the step bounds keep their shape as the pack ages.
    """
    factor = temperature_factor(config, temperature_c)
    nominal = config.cell_r0_ohm * factor
    r1 = config.cell_r1_ohm * factor
    if learnt is None:
        return nominal, nominal, r1
    cell_r0 = np.where(np.isnan(learnt), config.cell_r0_ohm, learnt) * factor
    r0 = float(cell_r0.mean())
    return cell_r0, r0, r1 * r0 / nominal


def step_current(
    config: PlausibilityConfig,
    state: CurrentState,
    inputs: ProtectionInputs,
    learnt: np.ndarray | None,
    temperature_c: float,
    now: float,
) -> tuple[CurrentState, CurrentMeasures]:
    n = inputs.cell_voltage.size
    at_open = abs(inputs.pack_current) if inputs.current_must_be_zero else math.nan
    usable = inputs.pack_current_valid and inputs.all_cells_valid and n > 0
    if not (usable and math.isfinite(inputs.pack_current)):
        return CurrentState(), CurrentMeasures(math.nan, math.nan, at_open)
    _, r0, r1 = resistances(config, learnt, temperature_c)
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
