"""Protection check levels -> CAN-BMS alarm/warning flags (0x35A two-bit, 0x359 one-bit).

Each flag is the worst level among the checks it stands for. A flag none of whose checks the
core reports is "not supported" in 0x35A (an honest 00 rather than a made-up OK). Invalid data
is reported as the general alarm / system error: the inverter must not read silence as health.
"""

from __future__ import annotations

from collections.abc import Mapping

from controller.adapters.base import BmsSnapshot, Level

_TEMP_HIGH = ("overtemperature_charge", "overtemperature_discharge")
_TEMP_LOW = ("undertemperature_charge", "undertemperature_discharge")
_INTERNAL = (
    "slave_timeout",
    "current_sensor_timeout",
    "pack_voltage_plausibility",
    "invalid_measurement",
    "ems_timeout",
)

# 0x35A flag (signal suffix in the DBC, in byte/bit order) -> checks it summarises.
FLAGS_35A: dict[str, tuple[str, ...]] = {
    "General": (),  # every check, the overall fault level and data validity
    "HighVoltage": ("cell_overvoltage",),
    "LowVoltage": ("cell_undervoltage",),
    "HighTemperature": _TEMP_HIGH,
    "LowTemperature": _TEMP_LOW,
    "HighTemperatureCharge": ("overtemperature_charge",),
    "LowTemperatureCharge": ("undertemperature_charge",),
    "HighDischargeCurrent": ("overcurrent_discharge",),
    "HighChargeCurrent": ("overcurrent_charge",),
    "Contactor": ("contactor",),
    "ShortCircuit": ("short_circuit",),
    "BmsInternal": _INTERNAL,
    "CellImbalance": ("cell_voltage_spread",),
}

# 0x359 flag -> checks.
FLAGS_359: dict[str, tuple[str, ...]] = {
    "OverVoltage": ("cell_overvoltage",),
    "UnderVoltage": ("cell_undervoltage",),
    "OverTemperature": _TEMP_HIGH,
    "UnderTemperature": _TEMP_LOW,
    "DischargeOverCurrent": ("overcurrent_discharge",),
    "ChargeOverCurrent": ("overcurrent_charge",),
    "SystemError": _INTERNAL + ("contactor",),
}

NOT_SUPPORTED, ACTIVE, OK = 0, 1, 2


def _worst(checks: Mapping[str, Level], names: tuple[str, ...]) -> Level | None:
    """Worst level among ``names``; None when the core reports none of them."""
    levels = [checks[n] for n in names if n in checks]
    return max(levels) if levels else None


def _general(snapshot: BmsSnapshot) -> Level:
    worst = max([snapshot.fault_level, *snapshot.checks.values()])
    return Level.FAULT if not snapshot.data_valid else Level(worst)


def flags_35a(snapshot: BmsSnapshot, alarm_level: Level) -> dict[str, int]:
    """Raw two-bit values for every ``Alarm_*`` and ``Warning_*`` signal of 0x35A."""
    out: dict[str, int] = {}
    for flag, names in FLAGS_35A.items():
        level = _general(snapshot) if flag == "General" else _worst(snapshot.checks, names)
        if not snapshot.data_valid and flag == "BmsInternal":
            level = Level.FAULT
        if level is None:
            out[f"Alarm_{flag}"] = out[f"Warning_{flag}"] = NOT_SUPPORTED
            continue
        out[f"Alarm_{flag}"] = ACTIVE if level >= alarm_level else OK
        out[f"Warning_{flag}"] = ACTIVE if level >= Level.WARNING else OK
    return out


def flags_359(snapshot: BmsSnapshot, alarm_level: Level) -> dict[str, int]:
    """Raw one-bit values for every ``Protection_*`` and ``Warning_*`` signal of 0x359."""
    out: dict[str, int] = {}
    for flag, names in FLAGS_359.items():
        level = _worst(snapshot.checks, names) or Level.OK
        if flag == "SystemError" and not snapshot.data_valid:
            level = Level.FAULT
        out[f"Protection_{flag}"] = int(level >= alarm_level)
        out[f"Warning_{flag}"] = int(level >= Level.WARNING)
    return out
