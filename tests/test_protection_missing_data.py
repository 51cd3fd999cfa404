"""Missing, stale or invalid data is never valid: it drives the fault reaction."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from protection_support import CELL, MODULE, SENSOR, Driver, config, disturb, healthy, where

from controller.adapters.base import Level
from controller.protection import Check, Protection

CFG = config("nmc")
OV = Check.CELL_OVERVOLTAGE
INVALID = Check.INVALID_MEASUREMENT


def _fault_after(inputs, check: Check, seconds: float | None = None) -> Driver:
    """Drive ``inputs`` for the fault's set delay (plus margin) from a healthy start."""
    d = Driver(Protection(CFG))
    d.run(healthy(), 0.5)
    delay = CFG.checks[check].levels[Level.FAULT].set_delay_ms / 1000
    d.run(inputs, seconds if seconds is not None else delay + 0.02)
    return d


def test_invalid_cell_is_reported_by_invalid_measurement_not_passed() -> None:
    v = healthy().cell_voltage.copy()
    v[CELL] = 9.9  # garbage behind an invalid flag
    valid = np.ones_like(v, bool)
    valid[CELL] = False
    inputs = replace(healthy(), cell_voltage=v, cell_voltage_valid=valid, all_cells_valid=False)
    d = _fault_after(inputs, INVALID)
    assert d.state.levels[INVALID] is Level.FAULT and d.state.fault_active
    (event,) = d.find(INVALID, Level.FAULT, "set")
    assert where(event) == ("cell", [CELL])
    assert d.state.levels[OV] is Level.OK, "garbage behind an invalid flag was judged"


def test_set_level_holds_while_its_element_is_unmeasured() -> None:
    d = _fault_after(disturb(healthy(), OV, 4.3), OV)
    assert d.state.levels[OV] is Level.FAULT
    valid = np.ones(healthy().cell_voltage.size, bool)
    valid[CELL] = False
    unmeasured = replace(healthy(), cell_voltage_valid=valid, all_cells_valid=False)
    d.run(unmeasured, 3.0, reset=True)
    assert d.state.levels[OV] is Level.FAULT, "missing data cleared a fault"
    assert d.find(OV, Level.WARNING, "cleared") == []
    d.run(healthy(), 1.1)
    d.step(healthy(), reset=True)
    assert d.state.levels[OV] is Level.OK


def test_nan_cell_voltage_flagged_valid_violates_both_directions() -> None:
    d = _fault_after(disturb(healthy(), OV, float("nan")), OV)
    assert d.state.levels[OV] is Level.FAULT
    assert d.state.levels[Check.CELL_UNDERVOLTAGE] is Level.FAULT


def test_invalid_temperature_sensor_and_module_error_bits() -> None:
    valid = np.ones(healthy().cell_temperature.size, bool)
    valid[SENSOR] = False
    open_wire = np.zeros(healthy().module_age.size, bool)
    open_wire[MODULE] = True
    inputs = replace(healthy(), cell_temperature_valid=valid, module_open_wire=open_wire)
    d = _fault_after(inputs, INVALID)
    found = [where(e) for e in d.find(INVALID, Level.FAULT, "set")]
    assert found == [("sensor", [SENSOR]), ("module", [MODULE])]


@pytest.mark.parametrize("bits", ["module_adc_fault", "module_self_test_failed"])
def test_other_module_error_bits_are_invalid_measurements(bits: str) -> None:
    flags = np.zeros(healthy().module_age.size, bool)
    flags[0] = True
    d = _fault_after(replace(healthy(), **{bits: flags}), INVALID)
    assert [where(e) for e in d.find(INVALID, Level.FAULT, "set")] == [("module", [0])]


def test_invalid_current_faults_both_overcurrent_checks_and_applies_both_windows() -> None:
    inputs = replace(healthy(), pack_current=0.0, pack_current_valid=False)
    d = _fault_after(inputs, Check.OVERCURRENT_CHARGE)
    assert d.state.levels[Check.OVERCURRENT_CHARGE] is Level.FAULT
    assert d.state.levels[Check.OVERCURRENT_DISCHARGE] is Level.FAULT
    assert d.state.charging is None
    # 42 degC is inside the discharge window but beyond the charge warning (40 degC)
    warm = disturb(inputs, Check.OVERTEMPERATURE_CHARGE, 42.0)
    d.run(warm, 5.1)
    assert d.state.levels[Check.OVERTEMPERATURE_CHARGE] is Level.WARNING


@pytest.mark.parametrize(
    ("current", "charge_mode", "charging", "level"),
    [
        (20.0, False, True, Level.WARNING),
        (-20.0, False, False, Level.OK),
        (0.5, False, False, Level.OK),  # below the charge-detect current: at rest
        (0.0, True, True, Level.WARNING),  # contactors in the charge configuration
    ],
)
def test_charge_window_applies_only_while_charging(current, charge_mode, charging, level) -> None:
    inputs = replace(healthy(current), charge_mode=charge_mode)
    d = Driver(Protection(CFG))
    d.run(disturb(inputs, Check.OVERTEMPERATURE_CHARGE, 42.0), 5.1)
    assert d.state.charging is charging
    assert d.state.levels[Check.OVERTEMPERATURE_CHARGE] is level
    assert d.state.levels[Check.OVERTEMPERATURE_DISCHARGE] is Level.OK


@pytest.mark.parametrize(
    "change",
    [
        {"pack_voltage_valid": False},
        {"all_cells_valid": False},
        {"pack_voltage": float("nan")},
    ],
    ids=["pack-voltage-invalid", "cells-incomplete", "pack-voltage-nan"],
)
def test_plausibility_without_both_voltages_faults(change: dict) -> None:
    check = Check.PACK_VOLTAGE_PLAUSIBILITY
    d = _fault_after(replace(healthy(), **change), check)
    assert d.state.levels[check] is Level.FAULT


@pytest.mark.parametrize(
    ("change", "check"),
    [
        ({"current_sensor_age": float("inf")}, Check.CURRENT_SENSOR_TIMEOUT),
        ({"ems_request_age": float("inf")}, Check.EMS_TIMEOUT),
        ({"ems_request_age": float("nan")}, Check.EMS_TIMEOUT),
        ({"module_age": np.array([0.05, np.inf, 0.05])}, Check.SLAVE_TIMEOUT),
        ({"module_age": np.array([0.05, 0.05, np.nan])}, Check.SLAVE_TIMEOUT),
    ],
    ids=["current-sensor-never", "ems-never", "ems-nan", "slave-never", "slave-nan"],
)
def test_never_heard_from_is_a_timeout(change: dict, check: Check) -> None:
    d = _fault_after(replace(healthy(), **change), check)
    assert d.state.levels[check] is Level.FAULT


def test_no_valid_cell_at_all_faults_the_spread_check() -> None:
    n = healthy().cell_voltage.size
    inputs = replace(healthy(), cell_voltage_valid=np.zeros(n, bool), all_cells_valid=False)
    d = _fault_after(inputs, Check.CELL_VOLTAGE_SPREAD)
    assert d.state.levels[Check.CELL_VOLTAGE_SPREAD] is Level.FAULT
    (event,) = d.find(INVALID, Level.FAULT, "set")
    assert where(event) == ("cell", list(range(n)))


def test_spread_ignores_invalid_cells() -> None:
    v = healthy().cell_voltage.copy()
    v[CELL] = 0.0
    valid = np.ones_like(v, bool)
    valid[CELL] = False
    inputs = replace(healthy(), cell_voltage=v, cell_voltage_valid=valid, all_cells_valid=False)
    d = Driver(Protection(CFG))
    d.run(inputs, 6.0)
    assert d.state.levels[Check.CELL_VOLTAGE_SPREAD] is Level.OK
