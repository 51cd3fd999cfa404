"""The value each check compares, over whole arrays, and which elements may be judged.

A value that cannot be computed is NaN, and NaN violates every threshold: missing data
drives the check towards its fault. Per-element checks take elements whose measurement is
not valid out of both setting and clearing (the invalid-measurement check reports them, and
a level already set on such an element holds until it is measured again).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from controller.protection.checks import Check
from controller.protection.inputs import ProtectionInputs


def directions(inputs: ProtectionInputs, charge_detect_current: float) -> tuple[bool, bool]:
    """(charge windows apply, discharge windows apply); both while the direction is unknown."""
    if not inputs.pack_current_valid or not np.isfinite(inputs.pack_current):
        return True, True
    charging = inputs.charge_mode or inputs.pack_current > charge_detect_current
    return charging, not charging


Values = tuple[np.ndarray, np.ndarray | None]  # (value, valid); valid None: all may be judged


def _cells(inputs: ProtectionInputs) -> Values:
    return inputs.cell_voltage, inputs.cell_voltage_valid


def _temperatures(inputs: ProtectionInputs) -> Values:
    return inputs.cell_temperature, inputs.cell_temperature_valid


def _module_age(inputs: ProtectionInputs) -> Values:
    return inputs.module_age, None


def _invalid(inputs: ProtectionInputs) -> Values:
    flags = np.concatenate(
        (~inputs.cell_voltage_valid, ~inputs.cell_temperature_valid, inputs.module_error())
    )
    return flags.astype(np.float64), None  # 1.0 flagged, 0.0 not: compared like any value


ELEMENTS: dict[Check, Callable[[ProtectionInputs], Values]] = {
    Check.CELL_OVERVOLTAGE: _cells,
    Check.CELL_UNDERVOLTAGE: _cells,
    Check.OVERTEMPERATURE_CHARGE: _temperatures,
    Check.OVERTEMPERATURE_DISCHARGE: _temperatures,
    Check.UNDERTEMPERATURE_CHARGE: _temperatures,
    Check.UNDERTEMPERATURE_DISCHARGE: _temperatures,
    Check.SLAVE_TIMEOUT: _module_age,
    Check.INVALID_MEASUREMENT: _invalid,
}


class Readings:
    """This cycle's value of every check, each computed once and only when asked for.

    ``elements`` holds the per-element plausibility values, ``pack`` the pack-level ones and
    the pack voltage ratio.
    """

    def __init__(
        self,
        inputs: ProtectionInputs,
        elements: Mapping[Check, Values],
        pack: Mapping[Check, float],
    ) -> None:
        self.inputs = inputs
        self._elements = elements
        self._pack = pack
        self._cache: dict[Check, Values] = {}
        self._extremes: dict[Callable[[ProtectionInputs], Values], tuple[float, float] | None] = {}

    def values(self, check: Check) -> Values:
        """(value, valid) over the check's elements."""
        found = self._cache.get(check)
        if found is None:
            found = self._elements.get(check) or ELEMENTS[check](self.inputs)
            self._cache[check] = found
        return found

    def extremes(self, check: Check) -> tuple[float, float] | None:
        """(max, min) of a measured quantity when every element is valid (NaN propagates);
        None when some are not, or for a plausibility value."""
        source = ELEMENTS.get(check)
        if source is None:
            return None
        if source is _invalid and not self._any_invalid():
            return 0.0, 0.0
        if source not in self._extremes:
            value, valid = source(self.inputs)
            whole = valid is None or bool(valid.all())
            self._extremes[source] = (float(value.max()), float(value.min())) if whole else None
        return self._extremes[source]

    def _any_invalid(self) -> bool:
        inputs = self.inputs
        return not (
            inputs.all_cells_valid
            and inputs.cell_voltage_valid.all()
            and inputs.cell_temperature_valid.all()
        ) or bool(inputs.module_error().any())

    def pack_values(self, checks: tuple[Check, ...]) -> list[float]:
        """The value of each pack-level check; NaN where it cannot be computed."""
        inputs = self.inputs
        current = inputs.pack_current if inputs.pack_current_valid else np.nan
        out = []
        for check in checks:
            if check in self._pack:
                out.append(self._pack[check])
            elif check is Check.OVERCURRENT_CHARGE:
                out.append(current)
            elif check is Check.OVERCURRENT_DISCHARGE:
                out.append(-current)
            elif check is Check.CELL_VOLTAGE_SPREAD:
                out.append(self._spread())
            elif check is Check.CURRENT_SENSOR_TIMEOUT:
                out.append(inputs.current_sensor_age)
            elif check is Check.EMS_TIMEOUT:
                out.append(inputs.ems_request_age)
            else:
                raise KeyError(check)
        return out

    def _spread(self) -> float:
        """max - min of the valid cells; NaN without any."""
        extremes = self.extremes(Check.CELL_OVERVOLTAGE)
        if extremes is not None:
            return extremes[0] - extremes[1]
        v = self.inputs.cell_voltage[self.inputs.cell_voltage_valid]
        return float(v.max() - v.min()) if v.size else np.nan


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
) -> tuple[tuple[str, slice, np.ndarray], ...]:
    """Sorted invalid-measurement indices by element kind: (kind, their slice of
    ``indices``, their indices within the kind).

    Two binary searches over the sorted indices, whatever their number.
    """
    cells = inputs.cell_voltage.size
    sensors = inputs.cell_temperature.size
    cut = np.searchsorted(indices, (cells, cells + sensors)).tolist()
    parts = (
        ("cell", slice(0, cut[0]), 0),
        ("sensor", slice(cut[0], cut[1]), cells),
        ("module", slice(cut[1], indices.size), cells + sensors),
    )
    return tuple(
        (kind, where, indices[where] - offset)
        for kind, where, offset in parts
        if where.stop > where.start
    )
