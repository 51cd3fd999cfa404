"""Limits and SOC configuration: validation naming the key, presets against protection."""

from __future__ import annotations

import copy

import pytest

from controller.adapters.base import Level
from controller.errors import ConfigError
from controller.limits import Derating, LimitInputs, parse_limits, parse_soc
from controller.presets import load_preset
from controller.protection import Check, parse_protection

CHEMISTRIES = ("nmc", "lfp", "lto")


@pytest.mark.parametrize("chemistry", CHEMISTRIES)
def test_presets_load(chemistry):
    limits = parse_limits(load_preset("limits", chemistry))
    soc = parse_soc(load_preset("soc", chemistry))
    assert limits.discharge_cell_voltage_v < limits.charge_cell_voltage_v
    assert soc.ocv.y[0] <= limits.discharge_cell_voltage_v < limits.charge_cell_voltage_v
    assert limits.charge_cell_voltage_v < soc.ocv.y[-1] + 0.05


def alarm(protection, check: Check) -> float:
    return protection.checks[check].levels[Level.ALARM].threshold


@pytest.mark.parametrize("chemistry", CHEMISTRIES)
def test_preset_tables_reach_zero_by_the_protection_alarm_thresholds(chemistry):
    """The limits must have stopped the current before protection has to derate or open."""
    limits = parse_limits(load_preset("limits", chemistry))
    prot = parse_protection(load_preset("protection", chemistry))
    c, d = limits.charge, limits.discharge
    assert c.cell_voltage(alarm(prot, Check.CELL_OVERVOLTAGE)) == 0.0
    assert d.cell_voltage(alarm(prot, Check.CELL_UNDERVOLTAGE)) == 0.0
    assert c.temperature(alarm(prot, Check.OVERTEMPERATURE_CHARGE)) == 0.0
    assert c.temperature(alarm(prot, Check.UNDERTEMPERATURE_CHARGE)) == 0.0
    assert d.temperature(alarm(prot, Check.OVERTEMPERATURE_DISCHARGE)) == 0.0
    assert d.temperature(alarm(prot, Check.UNDERTEMPERATURE_DISCHARGE)) == 0.0
    # and the full current is available in the middle of the window
    mid_t = 25.0
    target = Derating(limits).targets(
        LimitInputs(
            cell_voltage_min=float(limits.discharge.cell_voltage.x[-1]),
            cell_voltage_max=float(limits.charge.cell_voltage.x[0]),
            temperature_min=mid_t,
            temperature_max=mid_t,
            soc_min=50.0,
            soc_max=50.0,
            pack_voltage=float("nan"),
        )
    )
    assert target[0] == limits.max_charge_current_a
    assert target[2] == limits.max_discharge_current_a
    # protection trips on the charge current above its maximum, not at it
    assert alarm(prot, Check.OVERCURRENT_CHARGE) > limits.max_charge_current_a
    assert alarm(prot, Check.OVERCURRENT_DISCHARGE) > limits.max_discharge_current_a


def broken(section: str, chemistry: str, path: tuple[str, ...], value) -> dict:
    data = copy.deepcopy(load_preset(section, chemistry))
    node = data
    for key in path[:-1]:
        node = node[key]
    if value is None:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return data


@pytest.mark.parametrize(
    ("path", "value", "key"),
    [
        (("cells_in_series",), 0, "limits.cells_in_series"),
        (("max_charge_current_a",), None, "limits.max_charge_current_a"),
        (("alarm_factor",), 1.5, "limits.alarm_factor"),
        (("hold",), 3.0, "limits.hold"),
        (("discharge_cell_voltage_v",), 4.2, "limits.discharge_cell_voltage_v"),
        (("charge", "temperature", "y"), [0, 2, 1, 1, 0.5, 0, 0], "limits.charge.temperature.y"),
        (
            ("charge", "cell_voltage", "x"),
            [4.2, 4.1, 4.15, 4.18, 4.2],
            "limits.charge.cell_voltage.x",
        ),
        (("discharge", "current"), {"x": [0], "y": [1]}, "limits.discharge.current"),
        (("discharge", "temperature"), None, "limits.discharge.temperature"),
    ],
)
def test_limits_errors_name_the_key(path, value, key):
    with pytest.raises(ConfigError) as err:
        parse_limits(broken("limits", "nmc", path, value))
    assert err.value.key == key


@pytest.mark.parametrize(
    ("path", "value", "key"),
    [
        (("capacity_ah",), 0, "soc.capacity_ah"),
        (("rest_time",), 10, "soc.rest_time"),
        (("ocv",), {"x": [0.0, 50, 100], "y": [3.0, 3.3, 3.3]}, "soc.ocv.y"),
        (("ocv",), {"x": [5.0, 50, 100], "y": [3.0, 3.7, 4.2]}, "soc.ocv.x"),
        (("cell_type",), "nca", "soc.cell_type"),
    ],
)
def test_soc_errors_name_the_key(path, value, key):
    with pytest.raises(ConfigError) as err:
        parse_soc(broken("soc", "nmc", path, value))
    assert err.value.key == key
