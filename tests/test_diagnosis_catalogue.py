"""The shipped catalogue is complete and valid, load errors name the key, overrides apply."""

from __future__ import annotations

import copy
import tomllib
from pathlib import Path

import pytest

from controller.contactors import Cause
from controller.diagnosis.catalogue import (
    SHIPPED,
    Reaction,
    Severity,
    apply_overrides,
    load_catalogue,
    parse_catalogue,
    shipped,
)
from controller.diagnosis.table import markdown
from controller.errors import ConfigError
from controller.protection import Check

DOC = Path(__file__).parents[1] / "docs" / "diagnosis.md"
RAW = tomllib.loads(SHIPPED.read_text(encoding="utf-8"))


def _with(change: dict) -> dict:
    data = copy.deepcopy(RAW)
    for key, value in change.items():
        data["cell_overvoltage"][key] = value
    return data


def test_every_protection_check_and_contactor_fault_has_an_entry() -> None:
    cat = shipped()
    assert {c.value for c in Check} <= {d.id for d in cat}
    faults = (Cause.WELDED, Cause.FAILED_TO_CLOSE, Cause.FEEDBACK_LOST)
    assert {f"contactor_{c.value}" for c in faults} <= {d.id for d in cat}
    for name in ("precharge_failed", "precharge_overcurrent", "source_silent", "stage_exception"):
        assert name in cat
    assert cat["invalid_measurement"].elements == ("cell", "sensor", "module")
    assert cat["cell_overvoltage"].configured_in == "protection.cell_overvoltage"
    assert cat["stage_exception"].reaction is Reaction.OPEN_CONTACTORS
    assert cat["e2e_reject_rate"].threshold == pytest.approx(0.05)


def test_codes_and_ids_are_unique_and_every_entry_has_a_cause() -> None:
    cat = list(shipped())
    assert len({d.code for d in cat}) == len(cat)
    assert all(d.cause.endswith(".") for d in cat)


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"colour": "red"}, "cell_overvoltage.colour"),
        ({"severity": "severe"}, "cell_overvoltage.severity"),
        ({"reaction": "explode"}, "cell_overvoltage.reaction"),
        ({"element": "wheel"}, "cell_overvoltage.element"),
        ({"code": 101}, "cell_undervoltage.code"),  # the later entry repeats it
        ({"set_delay_ms": 10}, "cell_overvoltage.set_delay_ms"),
        ({"latching": "yes"}, "cell_overvoltage.latching"),
    ],
)
def test_load_errors_name_the_dotted_key(change: dict, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_catalogue(_with(change))
    assert info.value.key == key


def test_a_duplicate_code_names_both_entries() -> None:
    data = copy.deepcopy(RAW)
    data["source_silent"]["code"] = data["bus_receive_error"]["code"]
    with pytest.raises(ConfigError, match="source_silent") as info:
        parse_catalogue(data)
    assert info.value.key == "bus_receive_error.code"


def test_a_duplicate_id_in_the_file_is_refused(tmp_path: Path) -> None:
    text = SHIPPED.read_text(encoding="utf-8")
    block = text[text.index("[bus_send_error]") : text.index("[stage_exception]")]
    file = tmp_path / "catalogue.toml"
    file.write_text(text + "\n" + block, encoding="utf-8")
    with pytest.raises(ConfigError, match="bus_send_error"):
        load_catalogue(file)


def test_overrides_change_enable_and_delays_only_where_allowed() -> None:
    cat = apply_overrides(
        shipped(),
        {
            "source_silent": {"set_delay_ms": 250, "clear_delay_ms": 50},
            "bus_send_error": {"enabled": False},
        },
    )
    assert cat["source_silent"].set_delay_ms == 250 and cat["source_silent"].clear_delay_ms == 50
    assert not cat["bus_send_error"].enabled
    assert cat["bus_receive_error"] == shipped()["bus_receive_error"]
    assert shipped()["source_silent"].set_delay_ms == 1000, "the shipped catalogue is unchanged"
    assert [d.id for d in cat] == [d.id for d in shipped()]


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        ({"no_such_thing": {"enabled": False}}, "diagnosis.no_such_thing"),
        ({"source_silent": {"threshold": 2}}, "diagnosis.source_silent.threshold"),
        ({"source_silent": {"set_delay_ms": -1}}, "diagnosis.source_silent.set_delay_ms"),
        ({"slave_timeout": {"set_delay_ms": 5}}, "diagnosis.slave_timeout.set_delay_ms"),
        ({"bus_receive_error": {"enabled": "no"}}, "diagnosis.bus_receive_error.enabled"),
    ],
)
def test_override_errors_name_the_dotted_key(overrides: dict, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        apply_overrides(shipped(), overrides)
    assert info.value.key == key


def test_severities_map_to_levels_in_order() -> None:
    levels = [s.level for s in Severity]
    assert levels == sorted(levels)


def test_the_documented_table_is_the_catalogue() -> None:
    text = DOC.read_text(encoding="utf-8")
    table = text[text.index("| ID | code |") :]
    assert table == markdown(shipped()), "regenerate docs/diagnosis.md from the catalogue"


def test_the_adapters_raise_only_catalogue_ids() -> None:
    from controller.adapters import canbms_inverter, elcon, keepalive

    ids = {
        keepalive.LOST,
        keepalive.CAPPED,
        canbms_inverter.NO_CVL,
        elcon.STALE,
        elcon.STOPPED,
        elcon.FLAG_STOP[0],
        elcon.FLAG_WARNING[0],
        "device_present",
    }
    assert ids <= {d.id for d in shipped()}
    assert shipped()[elcon.FLAG_STOP[0]].severity.level is elcon.FLAG_STOP[1]
    assert shipped()[elcon.FLAG_WARNING[0]].severity.level is elcon.FLAG_WARNING[1]
