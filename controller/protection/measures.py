"""The value each check compares, over whole arrays, and which elements may be judged.

A value that cannot be computed is NaN, and NaN violates every threshold: missing data
drives the check towards its fault. Per-element checks take elements whose measurement is
not valid out of both setting and clearing (the invalid-measurement check reports them, and
a level already set on such an element holds until it is measured again).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from controller.protection.checks import Check
from controller.protection.inputs import ProtectionInputs

_NAN = np.array([np.nan])


@dataclass(frozen=True)
class Measure:
    value: np.ndarray  # (E,) float64, or bool for flag checks
    valid: np.ndarray | None  # (E,) bool; None when every element may be judged
    applies: bool  # false outside the check's current-direction window


def directions(inputs: ProtectionInputs, charge_detect_current: float) -> tuple[bool, bool]:
    """(charge windows apply, discharge windows apply); both while the direction is unknown."""
    if not inputs.pack_current_valid or not np.isfinite(inputs.pack_current):
        return True, True
    charging = inputs.charge_mode or inputs.pack_current > charge_detect_current
    return charging, not charging


def _scalar(value: float, valid: bool = True) -> np.ndarray:
    return np.array([value], np.float64) if valid else _NAN


def _spread(inputs: ProtectionInputs) -> np.ndarray:
    v = inputs.cell_voltage
    valid = inputs.cell_voltage_valid
    if not valid.all():
        v = v[valid]
    if v.size == 0:
        return _NAN
    return np.array([v.max() - v.min()])


def _cells(inputs: ProtectionInputs) -> tuple[np.ndarray, np.ndarray | None]:
    return inputs.cell_voltage, inputs.cell_voltage_valid


def _temperatures(inputs: ProtectionInputs) -> tuple[np.ndarray, np.ndarray | None]:
    return inputs.cell_temperature, inputs.cell_temperature_valid


def _charge_current(inputs: ProtectionInputs) -> tuple[np.ndarray, np.ndarray | None]:
    return _scalar(inputs.pack_current, inputs.pack_current_valid), None


def _discharge_current(inputs: ProtectionInputs) -> tuple[np.ndarray, np.ndarray | None]:
    return _scalar(-inputs.pack_current, inputs.pack_current_valid), None


def _invalid(inputs: ProtectionInputs) -> tuple[np.ndarray, np.ndarray | None]:
    flags = np.concatenate(
        (~inputs.cell_voltage_valid, ~inputs.cell_temperature_valid, inputs.module_error())
    )
    return flags, None


MEASURES: dict[Check, Callable[[ProtectionInputs], tuple[np.ndarray, np.ndarray | None]]] = {
    Check.CELL_OVERVOLTAGE: _cells,
    Check.CELL_UNDERVOLTAGE: _cells,
    Check.OVERTEMPERATURE_CHARGE: _temperatures,
    Check.OVERTEMPERATURE_DISCHARGE: _temperatures,
    Check.UNDERTEMPERATURE_CHARGE: _temperatures,
    Check.UNDERTEMPERATURE_DISCHARGE: _temperatures,
    Check.OVERCURRENT_CHARGE: _charge_current,
    Check.OVERCURRENT_DISCHARGE: _discharge_current,
    Check.CELL_VOLTAGE_SPREAD: lambda inputs: (_spread(inputs), None),
    Check.SLAVE_TIMEOUT: lambda inputs: (inputs.module_age, None),
    Check.CURRENT_SENSOR_TIMEOUT: lambda inputs: (_scalar(inputs.current_sensor_age), None),
    Check.EMS_TIMEOUT: lambda inputs: (_scalar(inputs.ems_request_age), None),
    Check.INVALID_MEASUREMENT: _invalid,
}


def measure(
    check: Check,
    applies: bool,
    inputs: ProtectionInputs,
    derived: Mapping[Check, tuple[np.ndarray, np.ndarray | None]],
) -> Measure:
    """The `Measure` of ``check`` for this cycle; ``derived`` holds the plausibility values."""
    found = derived.get(check)
    value, valid = MEASURES[check](inputs) if found is None else found
    return Measure(value, valid, applies)


def locate(
    check: Check, element: str | None, index: int, inputs: ProtectionInputs
) -> tuple[str | None, int | None]:
    """(kind, index within that kind) of an element; (None, None) for pack-level checks."""
    if element is None:
        return None, None
    if check is not Check.INVALID_MEASUREMENT:
        return element, index
    cells = inputs.cell_voltage.size
    sensors = inputs.cell_temperature.size
    if index < cells:
        return "cell", index
    if index < cells + sensors:
        return "sensor", index - cells
    return "module", index - cells - sensors


def split(
    indices: np.ndarray, inputs: ProtectionInputs
) -> tuple[tuple[str, np.ndarray, np.ndarray], ...]:
    """Invalid-measurement indices by element kind: (kind, flat indices, indices in kind).

    Two binary searches over the sorted indices, whatever their number.
    """
    cells = inputs.cell_voltage.size
    sensors = inputs.cell_temperature.size
    cut = np.searchsorted(indices, (cells, cells + sensors))
    parts = (
        ("cell", indices[: cut[0]], 0),
        ("sensor", indices[cut[0] : cut[1]], cells),
        ("module", indices[cut[1] :], cells + sensors),
    )
    return tuple((kind, flat, flat - offset) for kind, flat, offset in parts if flat.size)
