"""Plausibility: readings that are valid on the bus but disagree with physics or neighbours.

Each cycle the current checks and the SOC check run (scalars); the per-cell and per-sensor
checks run at ``plausibility.evaluation_period_s`` and their values hold in between, like
every observation of the debounce. The result is one value array per check, judged by the
same levels and debounce as every other check; an element whose value cannot be judged
now (no current step in the window, not at rest) neither sets nor clears.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np

from controller.protection.cell_plausibility import CellState, step_cells
from controller.protection.checks import Check
from controller.protection.counter_plausibility import CounterState, step_counter
from controller.protection.current_plausibility import CurrentState, resistances, step_current
from controller.protection.inputs import ProtectionInputs
from controller.protection.plausibility_config import PlausibilityConfig
from controller.protection.resistance import follow
from controller.protection.temperature_plausibility import TemperatureState, step_temperatures

Values = tuple[np.ndarray, np.ndarray | None]


@dataclass(frozen=True)
class SocMemory:
    counted: float = math.nan  # last SOC moved by counting, %
    rested: bool = False  # the last SOC came from a rested OCV reading
    disagreement: float = 0.0  # %, at the last new OCV reading


@dataclass(frozen=True)
class PlausibilityState:
    evaluated_at: float | None = None
    rest_since: float | None = None
    mean_temperature: float = math.nan
    time: float | None = None  # of the last step
    resistance: np.ndarray | None = None  # (n,) learnt R0 at 25 degC, NaN: not measured
    current: CurrentState = CurrentState()
    cells: CellState = CellState()
    temperatures: TemperatureState = TemperatureState()
    soc: SocMemory = SocMemory()
    counter: CounterState = CounterState()
    held: Mapping[Check, Values] = field(default_factory=dict)  # of the last evaluation


@dataclass(frozen=True)
class Plausibility:
    """This cycle's values: one per pack-level check (NaN: not judged now) and an array per
    element for the others, held between evaluations; ``fresh``: evaluated in this step."""

    pack: dict[Check, float]
    elements: Mapping[Check, Values]
    fresh: bool


def step_plausibility(
    config: PlausibilityConfig,
    state: PlausibilityState,
    inputs: ProtectionInputs,
    now: float,
) -> tuple[PlausibilityState, Plausibility]:
    dt = 0.0 if state.time is None else now - state.time
    resistance = follow(
        config,
        state.resistance,
        inputs.cell_resistance,
        inputs.cell_resistance_25c,
        state.mean_temperature,
        dt,
    )
    current_state, current = step_current(
        config, state.current, inputs, resistance, state.mean_temperature, now
    )
    soc = _soc(state.soc, inputs)
    counter_state, counter = step_counter(config, state.counter, inputs, now)
    pack = {
        Check.CURRENT_SENSOR_STUCK: current.stuck,
        Check.CURRENT_VOLTAGE_CONSISTENCY: current.consistency,
        Check.CURRENT_AT_OPEN_CONTACTORS: current.at_open,
        Check.SOC_OCV_DISAGREEMENT: soc.disagreement,
        Check.CURRENT_COUNTER_DISAGREEMENT: counter,
    }
    resting = inputs.pack_current_valid and abs(inputs.pack_current) <= config.rest_current_a
    rest_since = (state.rest_since if state.rest_since is not None else now) if resting else None
    due = state.evaluated_at is None or now - state.evaluated_at >= config.evaluation_period_s
    if not due:
        new = PlausibilityState(
            state.evaluated_at,
            rest_since,
            state.mean_temperature,
            now,
            resistance,
            current_state,
            state.cells,
            state.temperatures,
            soc,
            counter_state,
            state.held,
        )
        return new, Plausibility(pack, state.held, False)
    temps = inputs.cell_temperature[inputs.cell_temperature_valid]
    mean_temperature = float(temps.mean()) if temps.size else math.nan
    cell_r0 = resistances(config, resistance, mean_temperature)[0]
    at_rest = rest_since is not None and now - rest_since >= config.rest_settle_s
    steady = now - current_state.changed_at >= config.settle_s
    cells_state, cells = step_cells(config, state.cells, inputs, cell_r0, at_rest, steady, now)
    rested_s = None if rest_since is None else now - rest_since
    temp_state, temps_m = step_temperatures(
        config, state.temperatures, inputs, now, rested_s, cell_r0
    )
    held: dict[Check, Values] = {
        Check.TEMPERATURE_STUCK: (temps_m.stuck, temps_m.stuck_valid),
        Check.TEMPERATURE_MODULE_SPREAD: (temps_m.spread, None),
        Check.TEMPERATURE_RATE: (temps_m.rate, temps_m.rate_valid),
        Check.CELL_VOLTAGE_DEVIATION: (cells.deviation, cells.deviation_valid),
        Check.CELL_RESISTANCE_OUTLIER: (cells.outlier, cells.outlier_valid),
        Check.CELL_VOLTAGE_STUCK: (cells.stuck, cells.stuck_valid),
    }
    new = PlausibilityState(
        now,
        rest_since,
        mean_temperature,
        now,
        resistance,
        current_state,
        cells_state,
        temp_state,
        soc,
        counter_state,
        MappingProxyType(held),
    )
    return new, Plausibility(pack, new.held, True)


def _soc(memory: SocMemory, inputs: ProtectionInputs) -> SocMemory:
    """A new rested OCV reading after counting: how far the count had drifted from it."""
    if not math.isfinite(inputs.soc):
        return SocMemory(math.nan, False, memory.disagreement)
    if not inputs.soc_rested:
        return SocMemory(inputs.soc, False, memory.disagreement)
    disagreement = memory.disagreement
    if not memory.rested and math.isfinite(memory.counted):
        disagreement = abs(inputs.soc - memory.counted)
    return SocMemory(memory.counted, True, disagreement)


def pack_voltage_ratio(config: PlausibilityConfig, inputs: ProtectionInputs) -> float:
    """abs(U1 - sum of cells) in multiples of the two measurements' combined accuracy.

    The cells' errors add up linearly (one reference per slave: their gain errors share a
    sign), U1's is a fixed part plus a share of the reading.
    """
    n = inputs.cell_voltage.size
    accuracy = (
        n * config.cell_voltage_accuracy_v
        + config.pack_voltage_accuracy_v
        + config.pack_voltage_accuracy_fraction * abs(inputs.pack_voltage)
    )
    return abs(inputs.pack_voltage - inputs.cell_voltage_sum) / accuracy
