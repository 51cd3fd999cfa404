"""Fault resets only from the sources `security.reset_sources` names: a refused source resets
nothing and is logged once per request, naming it; a listed source resets as before. Closed
loop in virtual time; the BMS state is what the EMS decodes with cantools from BMS_Status."""

from __future__ import annotations

from dataclasses import replace

import pytest
from core_support import VEHICLE, Rig
from reset_support import bms_state, named, run

from controller.canopen_node import BatteryNodeConfig
from controller.config.loader import default_config, parse_config
from controller.contactors import ContactorState, Request
from controller.errors import ConfigError
from controller.fault_reset import ACCEPTED, REQUESTED, SOURCE_REFUSED
from controller.security.config import SecurityConfig

ERROR, STANDBY = 6, 1  # BMS_State values
CELL = 7
NODE = 5


def latched_overvoltage_gone(sources: tuple[str, ...]) -> Rig:
    """A rig whose over-voltage fault latched and whose cause is gone, standby requested."""
    security = replace(SecurityConfig(), reset_sources=sources)
    rig = Rig(replace(default_config(), canopen=BatteryNodeConfig(node_id=NODE), security=security))
    rig.run(0.5)
    rig.close(Request.DISCHARGE)
    rig.plant.cell_v[CELL] = 5.0
    rig.plant.force("cells", "status", "ivt")
    rig.run_until(lambda r: r.state.contactors.state is ContactorState.FAULT, 5.0)
    rig.plant.request = Request.STANDBY
    rig.plant.cell_v[CELL] = 3.7
    rig.plant.force("cells", "status", "ivt")
    run(rig, 2.0)
    assert bms_state(rig) == ERROR
    return rig


def write_2101(value: int = 1) -> tuple[tuple[int, int, bytes], ...]:
    """An expedited one-byte SDO download of 2101h:00 (CiA 301: command 0x2F)."""
    return ((VEHICLE, 0x600 + NODE, bytes([0x2F, 0x01, 0x21, 0, value, 0, 0, 0])),)


def test_by_default_only_the_ems_resets_and_a_2101h_write_is_refused_naming_canopen() -> None:
    assert SecurityConfig().reset_sources == ("ems",)
    rig = latched_overvoltage_gone(("ems",))
    events = run(rig, 0.5, extra=write_2101())
    [refused] = named(events, SOURCE_REFUSED)
    assert "source canopen" in refused.detail and "security.reset_sources" in refused.detail
    assert not named(events, REQUESTED) and not named(events, ACCEPTED)
    assert bms_state(rig) == ERROR
    assert "cell_overvoltage" in rig.controller.persisted(rig.state).latched

    rig.plant.reset = True  # the EMS bit, as canbms reset sends it
    events = run(rig, 0.5)
    [asked] = named(events, REQUESTED)
    assert "source ems" in asked.detail
    assert named(events, ACCEPTED) and not named(events, SOURCE_REFUSED)
    assert bms_state(rig) == STANDBY


def test_an_ems_reset_bit_held_is_refused_once_when_only_canopen_may_reset() -> None:
    rig = latched_overvoltage_gone(("canopen",))
    rig.plant.reset = True
    events = run(rig, 1.0)  # ten EMS frames with the bit: one request, one refusal
    [refused] = named(events, SOURCE_REFUSED)
    assert "source ems" in refused.detail
    assert not named(events, REQUESTED)
    assert bms_state(rig) == ERROR
    rig.plant.reset = False
    run(rig, 0.3)

    events = run(rig, 0.5, extra=write_2101())
    [asked] = named(events, REQUESTED)
    assert "source canopen" in asked.detail
    assert named(events, ACCEPTED)
    assert bms_state(rig) == STANDBY


def test_both_sources_listed_reset_as_each_alone() -> None:
    rig = latched_overvoltage_gone(("ems", "canopen"))
    events = run(rig, 0.5, extra=write_2101())
    assert named(events, ACCEPTED) and not named(events, SOURCE_REFUSED)
    assert bms_state(rig) == STANDBY


@pytest.mark.parametrize(
    ("value", "key"),
    [
        ([], "security.reset_sources"),
        (["ems", "ems"], "security.reset_sources"),
        (["monitor"], "security.reset_sources[0]"),
    ],
)
def test_a_bad_reset_source_list_is_refused_naming_its_key(value: list, key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({"security": {"reset_sources": value}})
    assert caught.value.key == key
