"""Adapter registry: building from [[adapters]] tables, errors naming keys, wire collisions."""

from __future__ import annotations

import tomllib

import pytest
from adapter_support import snapshot

from controller.adapters.canbms_inverter import CanBmsInverter
from controller.adapters.elcon import ElconCharger
from controller.adapters.registry import ADAPTERS, build_adapters
from controller.errors import ConfigError
from controller.frames import FrameBatch
from controller.stage import StageInputs

CONFIG = """
[[adapters]]
type = "canbms_inverter"
variant = "pylontech"
bus = "inverter"

[[adapters]]
type = "elcon"
bus = "charger"
addresses = [0xE5, 0xE9]
max_current = 12.5
"""


def test_builds_every_configured_adapter_in_order_and_they_run_together():
    adapters = build_adapters(tomllib.loads(CONFIG)["adapters"])
    inverter, charger = adapters
    assert isinstance(inverter, CanBmsInverter) and inverter.config.variant == "pylontech"
    assert isinstance(charger, ElconCharger) and charger.config.addresses == (0xE5, 0xE9)
    assert (inverter.name, inverter.bus, charger.name, charger.bus) == (
        "canbms_inverter",
        "inverter",
        "elcon",
        "charger",
    )
    sent: set[tuple[str, int]] = set()
    for adapter in adapters:
        _, out = adapter.step(
            adapter.initial_state(), StageInputs(snapshot(), FrameBatch.empty()), 0.0
        )
        sent |= {(f.bus, f.arbitration_id) for f in out.frames}
    assert ("inverter", 0x359) in sent and ("charger", 0x1806E9F4) in sent


def test_every_registered_type_builds_from_its_minimal_table():
    minimal = {"canbms_inverter": {"variant": "sma"}, "elcon": {"max_current": 10}}
    assert set(minimal) == set(ADAPTERS)
    for kind, table in minimal.items():
        (adapter,) = build_adapters([{"type": kind, **table}])
        assert adapter.name == kind


def test_same_type_twice_gets_distinct_names():
    adapters = build_adapters(
        [
            {"type": "canbms_inverter", "variant": "victron", "bus": "a"},
            {"type": "canbms_inverter", "variant": "victron", "bus": "b"},
        ]
    )
    assert [a.name for a in adapters] == ["canbms_inverter", "canbms_inverter_1"]


@pytest.mark.parametrize(
    ("tables", "key"),
    [
        ([{"variant": "victron"}], "adapters[0].type"),
        ([{"type": "deye"}], "adapters[0].type"),
        ([{"type": "elcon", "max_current": 10}, {"type": "elcon"}], "adapters[1].max_current"),
        ([{"type": "canbms_inverter", "variant": "victron", "speed": 1}], "adapters[0].speed"),
        (
            [
                {"type": "canbms_inverter", "variant": "victron"},
                {"type": "canbms_inverter", "variant": "sma"},
            ],
            "adapters[1].bus",
        ),
        (
            [
                {"type": "elcon", "max_current": 10, "addresses": [0xE5, 0xE7]},
                {"type": "elcon", "max_current": 10, "addresses": [0xE7]},
            ],
            "adapters[1].bus",
        ),
        (
            [
                {"type": "elcon", "max_current": 10, "name": "x"},
                {"type": "canbms_inverter", "variant": "sma", "name": "x"},
            ],
            "adapters[1].name",
        ),
        (["elcon"], "adapters[0]"),
    ],
)
def test_errors_name_the_key(tables, key):
    with pytest.raises(ConfigError) as info:
        build_adapters(tables)
    assert info.value.key == key


def test_chargers_on_different_buses_may_share_an_address():
    adapters = build_adapters(
        [
            {"type": "elcon", "max_current": 10, "bus": "charger_a"},
            {"type": "elcon", "max_current": 10, "bus": "charger_b"},
        ]
    )
    assert [a.bus for a in adapters] == ["charger_a", "charger_b"]
