"""Snapshot -> raw object values: the deterministic part of the battery node.

Everything the node publishes is computed here from one `BmsSnapshot` and the two
run-time parameters (2100h), so the scaling, saturation and fail-safe rules are testable
without a bus. Current and limits round towards zero (never advertise more than allowed);
a non-finite value never becomes a plausible number.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import IntFlag

from controller.adapters.base import BmsSnapshot, Level
from controller.canopen_node import dictionary as d

_U8, _U16, _U32 = 0xFF, 0xFFFF, 0xFFFFFFFF
_I16_MIN, _I16_MAX = -0x8000, 0x7FFF


class StatusBit(IntFlag):
    """Bits of 6000h battery status as this node sets them."""

    CHARGE_ALLOWED = 1 << 0  # the 6070h request may be non-zero
    DISCHARGE_ALLOWED = 1 << 1
    CONTACTORS_CLOSED = 1 << 2
    WARNING = 1 << 3
    ALARM = 1 << 4  # limits derated
    FAULT = 1 << 5  # contactors open or opening
    DATA_INVALID = 1 << 6  # measurements missing or stale


class ErrorRegister(IntFlag):
    """CiA 301 error register (1001h); a category is set from ALARM upwards."""

    GENERIC = 1 << 0
    CURRENT = 1 << 1
    VOLTAGE = 1 << 2
    TEMPERATURE = 1 << 3
    COMMUNICATION = 1 << 4
    MANUFACTURER = 1 << 7


# BMS_State values of the master protocol; any other state name encodes as UNKNOWN_STATE.
BMS_STATES = {
    "init": 0,
    "standby": 1,
    "precharge": 2,
    "discharge": 3,
    "charge": 4,
    "opening": 5,
    "error": 6,
}
UNKNOWN_STATE = 0xFF

# Bit of 2005h per check, as BMS_ActiveFaults in the master protocol; others set bit 31.
FAULT_BITS = {
    "cell_overvoltage": 0,
    "cell_undervoltage": 1,
    "overtemperature_charge": 2,
    "undertemperature_charge": 3,
    "overtemperature_discharge": 4,
    "undertemperature_discharge": 5,
    "overcurrent_charge": 6,
    "overcurrent_discharge": 7,
    "slave_timeout": 8,
    "invalid_measurement": 11,
    "current_sensor_timeout": 12,
    "ems_timeout": 14,
    "contactor": 15,
    "pack_voltage_plausibility": 19,
    "cell_voltage_spread": 20,
}
OTHER_FAULT_BIT = 31

_CATEGORY = {
    "overcurrent_charge": ErrorRegister.CURRENT,
    "overcurrent_discharge": ErrorRegister.CURRENT,
    "cell_overvoltage": ErrorRegister.VOLTAGE,
    "cell_undervoltage": ErrorRegister.VOLTAGE,
    "pack_voltage_plausibility": ErrorRegister.VOLTAGE,
    "cell_voltage_spread": ErrorRegister.VOLTAGE,
    "overtemperature_charge": ErrorRegister.TEMPERATURE,
    "overtemperature_discharge": ErrorRegister.TEMPERATURE,
    "undertemperature_charge": ErrorRegister.TEMPERATURE,
    "undertemperature_discharge": ErrorRegister.TEMPERATURE,
    "slave_timeout": ErrorRegister.COMMUNICATION,
    "current_sensor_timeout": ErrorRegister.COMMUNICATION,
    "ems_timeout": ErrorRegister.COMMUNICATION,
}


@dataclass(frozen=True)
class RequestParams:
    """The writable 2100h parameters as the node reads them back each update."""

    scale_pct: int = 100
    cap_raw: int = _U16  # 1/16 A


def _clamp(raw: int, low: int, high: int) -> int:
    return min(max(raw, low), high)


def _scaled(
    value: float, factor: float, low: int, high: int, missing: int, *, floor: bool = False
) -> int:
    """``value / factor`` as an integer in [low, high]; ``missing`` when not finite."""
    if not math.isfinite(value):
        return missing
    raw = value / factor
    if not math.isfinite(raw):  # a huge finite value overflows the division: saturate
        return high if raw > 0 else low
    return _clamp(math.floor(raw + 1e-9) if floor else round(raw), low, high)


def charge_allowed(s: BmsSnapshot) -> bool:
    """May the charger deliver current now? Only with valid data and no fault."""
    return s.charge_allowed and s.data_valid and s.fault_level < Level.FAULT


def charge_request_raw(s: BmsSnapshot, params: RequestParams) -> int:
    """6070h in 1/16 A: CCL x scale, capped, rounded down; 0 when charging is not allowed."""
    if not charge_allowed(s) or not math.isfinite(s.ccl) or s.ccl <= 0:
        return 0
    cap = min(params.cap_raw, _U16)
    scaled = s.ccl * params.scale_pct / 100 * 16
    if not math.isfinite(scaled):
        return cap
    return _clamp(math.floor(scaled + 1e-9), 0, cap)


def status_bits(s: BmsSnapshot) -> StatusBit:
    bits = StatusBit(0)
    if charge_allowed(s):
        bits |= StatusBit.CHARGE_ALLOWED
    if s.discharge_allowed and s.data_valid and s.fault_level < Level.FAULT:
        bits |= StatusBit.DISCHARGE_ALLOWED
    if s.contactors_closed:
        bits |= StatusBit.CONTACTORS_CLOSED
    for level, bit in (
        (Level.WARNING, StatusBit.WARNING),
        (Level.ALARM, StatusBit.ALARM),
        (Level.FAULT, StatusBit.FAULT),
    ):
        if s.fault_level >= level:
            bits |= bit
    if not s.data_valid:
        bits |= StatusBit.DATA_INVALID
    return bits


def active_faults(checks: dict[str, Level]) -> int:
    """2005h: one bit per check at WARNING or above."""
    bits = 0
    for name, level in checks.items():
        if level >= Level.WARNING:
            bits |= 1 << FAULT_BITS.get(name, OTHER_FAULT_BIT)
    return bits


def error_register(s: BmsSnapshot) -> ErrorRegister:
    """1001h: categories of the checks at ALARM or above; GENERIC with any of them."""
    reg = ErrorRegister(0)
    for name, level in s.checks.items():
        if level >= Level.ALARM:
            reg |= _CATEGORY.get(name, ErrorRegister.MANUFACTURER)
    if reg or s.fault_level >= Level.ALARM:
        reg |= ErrorRegister.GENERIC
    return reg


def live_values(s: BmsSnapshot, params: RequestParams) -> dict[tuple[int, int], int]:
    """Raw value of every live object for this snapshot."""
    return {
        d.ERROR_REGISTER: int(error_register(s)),
        d.BATTERY_STATUS: int(status_bits(s)),
        # hottest cell; unknown reads as the hottest value so a charger holds off
        d.TEMPERATURE: _scaled(s.max_temperature, 0.125, _I16_MIN, _I16_MAX, _I16_MAX),
        d.CAPACITY: _scaled(s.capacity_ah, 1.0, 0, _U16, 0, floor=True),
        d.CELL_COUNT: _clamp(s.cells_in_series, 0, _U16),
        d.VOLTAGE: _scaled(s.pack_voltage, 1 / 1024, 0, _U32, 0),
        d.CHARGE_CURRENT_REQUEST: charge_request_raw(s, params),
        d.SOC: _scaled(s.soc, 1.0, 0, 100, d.SOC_NOT_AVAILABLE),
        d.MIN_CELL_VOLTAGE: _scaled(s.min_cell_voltage, 0.001, 0, _U16 - 1, _U16),
        d.MAX_CELL_VOLTAGE: _scaled(s.max_cell_voltage, 0.001, 0, _U16 - 1, _U16),
        d.MIN_CELL_POSITION: _U16 if s.min_cell_position < 0 else min(s.min_cell_position, _U16),
        d.MAX_CELL_POSITION: _U16 if s.max_cell_position < 0 else min(s.max_cell_position, _U16),
        d.MIN_TEMPERATURE: _scaled(s.min_temperature, 0.1, _I16_MIN, _I16_MAX - 1, _I16_MAX),
        d.MAX_TEMPERATURE: _scaled(s.max_temperature, 0.1, _I16_MIN, _I16_MAX - 1, _I16_MAX),
        d.MEAN_TEMPERATURE: _scaled(s.mean_temperature, 0.1, _I16_MIN, _I16_MAX - 1, _I16_MAX),
        d.CCL: _scaled(s.ccl, 0.1, 0, _U16, 0, floor=True),
        d.DCL: _scaled(s.dcl, 0.1, 0, _U16, 0, floor=True),
        d.CVL: _scaled(s.cvl, 0.1, 0, _U16, 0),
        d.DVL: _scaled(s.dvl, 0.1, 0, _U16, 0),
        d.PACK_CURRENT: _scaled(s.pack_current, 0.1, _I16_MIN, _I16_MAX - 1, _I16_MAX),
        d.BMS_STATE: BMS_STATES.get(s.bms_state.lower(), UNKNOWN_STATE),
        d.FAULT_LEVEL: int(s.fault_level),
        d.ACTIVE_FAULTS: active_faults(s.checks),
    }
