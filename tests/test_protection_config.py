"""The fault table is validated at load; every error names the offending key."""

from __future__ import annotations

from dataclasses import replace

import pytest
from protection_support import Driver, disturb, healthy, preset

from controller.adapters.base import Level
from controller.errors import ConfigError
from controller.presets import load_preset
from controller.protection import Check, Protection, parse_protection


def _error(data: dict) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse_protection(data)
    return info.value


def _drop(data: dict, *path: str) -> dict:
    *parents, last = path
    for key in parents:
        data = data[key]
    del data[last]


def _put(data: dict, value, *path: str) -> None:
    *parents, last = path
    for key in parents:
        data = data.setdefault(key, {})
    data[last] = value


@pytest.mark.parametrize("chemistry", ["nmc", "lfp", "lto"])
def test_presets_parse_and_cover_every_check(chemistry: str) -> None:
    cfg = parse_protection(load_preset("protection", chemistry))
    assert set(cfg.checks) == set(Check)
    assert all(c.enabled and Level.FAULT in c.levels for c in cfg.checks.values())


@pytest.mark.parametrize(
    ("chemistry", "low", "high"), [("nmc", 2.8, 4.2), ("lfp", 2.5, 3.65), ("lto", 1.5, 2.8)]
)
def test_preset_operating_window_sits_inside_the_cell_limits(chemistry, low, high) -> None:
    cfg = parse_protection(load_preset("protection", chemistry))
    ov = cfg.checks[Check.CELL_OVERVOLTAGE].levels
    uv = cfg.checks[Check.CELL_UNDERVOLTAGE].levels
    assert ov[Level.WARNING].threshold < high <= ov[Level.FAULT].threshold
    assert uv[Level.FAULT].threshold <= low < uv[Level.WARNING].threshold


@pytest.mark.parametrize(
    ("mutate", "key", "words"),
    [
        (
            lambda d: _drop(d, "cell_overvoltage", "fault", "threshold"),
            "protection.cell_overvoltage.fault.threshold",
            "missing",
        ),
        (
            lambda d: _put(d, "4.2", "cell_overvoltage", "fault", "threshold"),
            "protection.cell_overvoltage.fault.threshold",
            "expected a number",
        ),
        (
            lambda d: _put(d, True, "overcurrent_charge", "alarm", "set_delay_ms"),
            "protection.overcurrent_charge.alarm.set_delay_ms",
            "expected a number",
        ),
        (
            lambda d: _put(d, -1, "ems_timeout", "fault", "clear_delay_ms"),
            "protection.ems_timeout.fault.clear_delay_ms",
            "below the minimum",
        ),
        (
            lambda d: _put(d, -0.1, "slave_timeout", "fault", "hysteresis"),
            "protection.slave_timeout.fault.hysteresis",
            "below the minimum",
        ),
        (
            lambda d: _put(d, 4.3, "cell_overvoltage", "alarm", "threshold"),
            "protection.cell_overvoltage.fault.threshold",
            "must be above the alarm threshold",
        ),
        (
            lambda d: _put(d, 3.1, "cell_undervoltage", "alarm", "threshold"),
            "protection.cell_undervoltage.alarm.threshold",
            "must be below the warning threshold",
        ),
        (
            lambda d: (
                _put(d, -30, "undertemperature_discharge", "fault", "threshold")
                or _drop(d, "undertemperature_discharge", "alarm")
                or _put(d, -40, "undertemperature_discharge", "warning", "threshold")
            ),
            "protection.undertemperature_discharge.fault.threshold",
            "must be below the warning threshold",
        ),
        (
            lambda d: _put(d, 4.18, "cell_undervoltage", "warning", "threshold"),
            "protection.cell_undervoltage.warning.threshold",
            "no operating window",
        ),
        (
            lambda d: _put(d, 1, "cell_overvoltage", "fault", "treshold"),
            "protection.cell_overvoltage.fault.treshold",
            "unknown key",
        ),
        (
            lambda d: _put(d, {}, "cell_overvoltage", "critical"),
            "protection.cell_overvoltage.critical",
            "unknown key",
        ),
        (
            lambda d: _put(d, {}, "cell_overvolatge"),
            "protection.cell_overvolatge",
            "unknown key",
        ),
        (
            lambda d: _put(d, 0.5, "invalid_measurement", "fault", "threshold"),
            "protection.invalid_measurement.fault.threshold",
            "unknown key",
        ),
        (
            lambda d: _drop(d, "ems_timeout"),
            "protection.ems_timeout",
            "missing table",
        ),
        (
            lambda d: _put(d, {}, "ems_timeout"),
            "protection.ems_timeout",
            "at least one",
        ),
        (
            lambda d: _put(d, "yes", "ems_timeout", "enabled"),
            "protection.ems_timeout.enabled",
            "true or false",
        ),
        (
            lambda d: _put(d, 3.0, "cell_overvoltage", "fault"),
            "protection.cell_overvoltage.fault",
            "expected a table",
        ),
        (
            lambda d: _put(d, -1.0, "charge_detect_current"),
            "protection.charge_detect_current",
            "below the minimum",
        ),
        (
            lambda d: _drop(d, "charge_detect_current"),
            "protection.charge_detect_current",
            "missing",
        ),
    ],
)
def test_config_error_names_the_key(mutate, key: str, words: str) -> None:
    data = preset()
    mutate(data)
    error = _error(data)
    assert error.key == key
    assert words in str(error)


def test_disabled_check_needs_no_levels_and_never_reports() -> None:
    data = preset()
    data["ems_timeout"] = {"enabled": False}
    protection = Protection(parse_protection(data))
    d = Driver(protection)
    d.run(replace(healthy(), ems_request_age=float("inf")), 2.0)
    assert d.state.levels[Check.EMS_TIMEOUT] is Level.OK
    assert not d.state.fault_active


def test_omitted_levels_are_never_reported() -> None:
    data = preset()
    del data["cell_overvoltage"]["warning"]
    del data["cell_overvoltage"]["alarm"]
    d = Driver(Protection(parse_protection(data)))
    d.run(disturb(healthy(), Check.CELL_OVERVOLTAGE, 4.3), 1.0)
    levels = {e.level for e in d.events if e.diagnosis == Check.CELL_OVERVOLTAGE}
    assert levels == {Level.FAULT}


@pytest.mark.parametrize(
    ("section", "chemistry", "key", "words"),
    [
        ("protection", "nca", "chemistry", "available: lfp, lto, nmc"),
        ("protection", "../protection/nmc", "chemistry", "not a preset name"),
        ("nothing_here", "nmc", "chemistry", "available: none"),
        ("Protection", "nmc", "section", "not a preset name"),
    ],
)
def test_load_preset_errors_name_what_is_wrong(section, chemistry, key, words) -> None:
    with pytest.raises(ConfigError) as info:
        load_preset(section, chemistry)
    assert info.value.key == key
    assert words in str(info.value)
