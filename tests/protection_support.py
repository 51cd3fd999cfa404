"""A small healthy pack and helpers to drive protection in virtual time."""

from __future__ import annotations

import copy
from dataclasses import replace

import numpy as np

from controller.adapters.base import Level
from controller.diagnosis import Event
from controller.presets import load_preset
from controller.protection import (
    Check,
    Protection,
    ProtectionInputs,
    ProtectionState,
    parse_protection,
)
from controller.protection.checks import SPECS, Direction, Window
from controller.protection.config import ProtectionConfig

CELLS, SENSORS, MODULES = 12, 6, 3
CELL = 2  # the element the tests disturb
SENSOR = 1
MODULE = 1


def preset(chemistry: str = "nmc") -> dict:
    return copy.deepcopy(load_preset("protection", chemistry))


def config(chemistry: str = "nmc") -> ProtectionConfig:
    return parse_protection(preset(chemistry))


def healthy(current: float = 0.0) -> ProtectionInputs:
    v = np.full(CELLS, 3.7)
    return ProtectionInputs(
        cell_voltage=v,
        cell_voltage_valid=np.ones(CELLS, bool),
        cell_temperature=np.full(SENSORS, 25.0),
        cell_temperature_valid=np.ones(SENSORS, bool),
        pack_current=current,
        pack_current_valid=True,
        pack_voltage=float(v.sum()),
        pack_voltage_valid=True,
        cell_voltage_sum=float(v.sum()),
        all_cells_valid=True,
        module_age=np.full(MODULES, 0.05),
        current_sensor_age=0.02,
        ems_request_age=0.05,
    )


def base_for(check: Check) -> ProtectionInputs:
    """Healthy inputs in the current direction where ``check`` applies."""
    window = SPECS[check].window
    return healthy({Window.CHARGE: 20.0, Window.DISCHARGE: -20.0}.get(window, 0.0))


def disturb(inputs: ProtectionInputs, check: Check, value: float) -> ProtectionInputs:
    """``inputs`` with the quantity ``check`` watches set to ``value`` on the test element."""
    match check:
        case Check.CELL_OVERVOLTAGE | Check.CELL_UNDERVOLTAGE:
            v = inputs.cell_voltage.copy()
            v[CELL] = value
            return replace(
                inputs, cell_voltage=v, cell_voltage_sum=float(v.sum()), pack_voltage=float(v.sum())
            )
        case Check.CELL_VOLTAGE_SPREAD:
            v = inputs.cell_voltage.copy()
            v[CELL] = v[0] + value
            return replace(
                inputs, cell_voltage=v, cell_voltage_sum=float(v.sum()), pack_voltage=float(v.sum())
            )
        case c if SPECS[c].unit == "degC":
            t = inputs.cell_temperature.copy()
            t[SENSOR] = value
            return replace(inputs, cell_temperature=t)
        case Check.OVERCURRENT_CHARGE:
            return replace(inputs, pack_current=value)
        case Check.OVERCURRENT_DISCHARGE:
            return replace(inputs, pack_current=-value)
        case Check.SLAVE_TIMEOUT:
            age = inputs.module_age.copy()
            age[MODULE] = value
            return replace(inputs, module_age=age)
        case Check.CURRENT_SENSOR_TIMEOUT:
            return replace(inputs, current_sensor_age=value)
        case Check.PACK_VOLTAGE_PLAUSIBILITY:
            return replace(inputs, pack_voltage=inputs.cell_voltage_sum + volts_off(inputs, value))
        case Check.EMS_TIMEOUT:
            return replace(inputs, ems_request_age=value)
        case Check.INVALID_MEASUREMENT:
            valid = inputs.cell_voltage_valid.copy()
            valid[CELL] = not value
            return replace(inputs, cell_voltage_valid=valid, all_cells_valid=bool(valid.all()))
    raise AssertionError(check)


def volts_off(inputs: ProtectionInputs, ratio: float) -> float:
    """U1 - sum of cells that is ``ratio`` times the combined accuracy (U1 above the sum)."""
    acc = config().plausibility
    fixed = inputs.cell_voltage.size * acc.cell_voltage_accuracy_v + acc.pack_voltage_accuracy_v
    share = acc.pack_voltage_accuracy_fraction
    return ratio * (fixed + share * inputs.cell_voltage_sum) / (1.0 - ratio * share)


def expected_element(check: Check) -> tuple[str | None, list[int] | None]:
    """(element kind, element indices) of the event the test disturbance raises."""
    return {
        "cell": ("cell", [CELL]),
        "sensor": ("sensor", [SENSOR]),
        "module": ("module", [MODULE]),
        None: (None, None),
    }[SPECS[check].element]


def where(event: Event) -> tuple[str | None, list[int] | None]:
    """(element kind, element indices) of ``event``, comparable with `expected_element`."""
    elements = None if event.elements is None else event.elements.tolist()
    return event.element_kind, elements


def level_value(cfg: ProtectionConfig, check: Check, level: Level) -> float:
    """A value that violates ``level`` of ``check`` but no more severe level."""
    spec = SPECS[check]
    if spec.direction is Direction.FLAG:
        return 1.0
    levels = cfg.checks[check].levels
    thresholds = [levels[lv].threshold for lv in levels]
    i = list(levels).index(level)
    here = thresholds[i]
    sign = 1.0 if spec.direction is Direction.HIGH else -1.0
    if i + 1 < len(thresholds):
        return (here + thresholds[i + 1]) / 2
    step = abs(here - thresholds[i - 1]) / 2 if i > 0 else max(abs(here) * 0.1, 0.1)
    return here + sign * step


class Driver:
    """Steps protection at a fixed period and keeps every event."""

    def __init__(self, protection: Protection, period: float = 0.01) -> None:
        self.protection = protection
        self.period = period
        self.state: ProtectionState = protection.initial_state()
        self.tick = 0
        self.events: list[Event] = []

    @property
    def now(self) -> float:
        return self.tick * self.period

    def run(self, inputs: ProtectionInputs, seconds: float, reset: bool = False) -> None:
        for _ in range(round(seconds / self.period)):
            self.step(inputs, reset)

    def step(self, inputs: ProtectionInputs, reset: bool = False) -> tuple[Event, ...]:
        self.tick += 1
        self.state, events = self.protection.step(self.state, inputs, self.now, reset)
        self.events.extend(events)
        return events

    def run_until(self, inputs: ProtectionInputs, stop, limit: float) -> float | None:
        """Step until ``stop(events)`` is true for this step's events; its time or None."""
        for _ in range(round(limit / self.period)):
            if stop(self.step(inputs)):
                return self.now
        return None

    def find(self, check: Check, level: Level, kind: str) -> list[Event]:
        return [e for e in self.events if (e.diagnosis, e.level, e.kind) == (check, level, kind)]
