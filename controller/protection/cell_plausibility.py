"""Each cell against the other cells of its module, evaluated at the plausibility period.

The cells of one module share current and temperature, so their module's median is the
best prediction of each cell: at rest a cell's voltage stays within the SOC spread of that
median (a larger deviation is an offset or a defective cell); under a current step each
cell moves by its own R0 dI, so a cell moving differently from the median by more than a
share of R0 dI is a resistance outlier or a reading that does not follow; and a reading
whose raw value stood still while the median moved is held (a healthy reading scatters by
its noise and never stands still while its neighbours move).

A resistance verdict needs a current step, so between steps each cell keeps its last one: a
cell found an outlier stays one while the load pauses, a cell found sound clears as usual.
Once the pack has rested for ``rest_settle_s`` the verdicts expire (count as sound): with
the contactors opened by the fault no step can ever come, and a repaired connection must be
resettable at rest. The fault stays latched until that reset; the first load step after it
judges every cell afresh.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from controller.protection.inputs import ProtectionInputs
from controller.protection.lag import Lag
from controller.protection.plausibility_config import PlausibilityConfig


@dataclass(frozen=True)
class CellState:
    last: np.ndarray | None = None  # (n,) raw values at the last evaluation
    median_at_change: np.ndarray | None = None  # (n,) module median when each last changed
    lag: Lag = Lag()  # cell voltages and the current, for the resistance comparison
    outlier: np.ndarray | None = None  # (n,) last resistance verdict; NaN: never judged


@dataclass(frozen=True)
class CellMeasures:
    deviation: np.ndarray  # (n,) V from the module median; judged at rest only
    deviation_valid: np.ndarray  # (n,) bool
    outlier: np.ndarray  # (n,) share of R0 dI off the median's step, the last judged
    outlier_valid: np.ndarray  # (n,) bool
    stuck: np.ndarray  # (n,) V the median moved while the reading stood
    stuck_valid: np.ndarray  # (n,) bool


def groups(elements: int, modules: int) -> int:
    """Modules to split ``elements`` into: the pack's, or one group when they do not divide."""
    return modules if modules and elements % modules == 0 else 1


def module_median(values: np.ndarray, valid: np.ndarray, modules: int) -> np.ndarray:
    """Per module, the median of its valid elements (NaN where none), one value per element."""
    per = values.size // modules
    grid = values.reshape(modules, per)
    if valid.all():
        # np.median's value (the middle one, or the mean of the middle two; NaN where a
        # NaN is among them) from one vectorised sort: several times cheaper than its
        # partition of each module's few cells
        ordered = np.sort(grid, axis=1)
        median = (ordered[:, (per - 1) // 2] + ordered[:, per // 2]) / 2.0
        median[np.isnan(ordered[:, -1])] = np.nan  # NaNs sort last
    else:
        masked = np.where(valid.reshape(modules, per), grid, np.nan)
        known = ~np.isnan(masked).all(axis=1)
        median = np.full(modules, np.nan)
        median[known] = np.nanmedian(masked[known], axis=1)
    return np.repeat(median, per)


def step_cells(
    config: PlausibilityConfig,
    state: CellState,
    inputs: ProtectionInputs,
    r0: np.ndarray | float,
    at_rest: bool,
    steady: bool,
    now: float,
) -> tuple[CellState, CellMeasures]:
    v = inputs.cell_voltage
    valid = inputs.cell_voltage_valid
    modules = groups(v.size, inputs.module_age.size)
    median = module_median(v, valid, modules)
    known = valid & ~np.isnan(median)
    deviation = np.subtract(v, median)
    np.abs(deviation, out=deviation)

    if state.last is None or state.last.shape != v.shape or state.median_at_change is None:
        last, at_change = v.copy(), median
    else:
        changed = v != state.last
        changed |= ~known
        changed |= np.isnan(state.median_at_change)
        last = v.copy()
        at_change = np.where(changed, median, state.median_at_change)
    stuck = np.subtract(median, at_change)
    np.abs(stuck, out=stuck)

    current = inputs.pack_current if inputs.pack_current_valid else np.nan
    signal = np.full(v.size + 1, np.nan)  # an invalid reading is never a reference
    np.copyto(signal[:-1], v, where=valid)
    signal[-1] = current
    lag = state.lag.advance(signal, now, config.step_window_s / 2.0, steady)
    change = lag.change(signal)
    held = state.outlier
    if held is None or held.shape != v.shape:
        held = np.full(v.size, np.nan)
    if at_rest:
        held = np.where(np.isnan(held), held, 0.0)
    verdict = held  # no current step: every cell keeps its last verdict
    if change is not None and abs(change[-1]) >= config.min_step_a:
        d_cell = change[:-1]
        judged = known & ~np.isnan(d_cell)  # valid now and at the reference
        d_median = module_median(d_cell, judged, modules)
        outlier = np.abs(d_cell - d_median) / (abs(change[-1]) * r0)
        judged &= ~np.isnan(d_median)
        verdict = np.where(judged, outlier, held)
    new_state = CellState(last, at_change, lag, verdict)
    measures = CellMeasures(
        deviation, known & at_rest, verdict, known & ~np.isnan(verdict), stuck, known
    )
    return new_state, measures
