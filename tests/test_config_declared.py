"""The declared configuration: named buses, cross-section checks, schema and reference."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import jsonschema
import pytest

from canbms.cli import main
from controller.config.declare import dump
from controller.config.loader import default_config, parse_config
from controller.config.schema import config_schema, reference_sections, reference_table
from controller.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "docs" / "examples").glob("*.toml")) + sorted(
    (ROOT / "hil").glob("*.toml")
)


def _error(data: dict) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse_config(data)
    return info.value


def test_without_buses_the_internal_and_vehicle_buses_are_virtual() -> None:
    buses = default_config().buses
    assert list(buses) == ["internal", "vehicle"]
    assert [(b.name, b.interface, b.channel) for b in buses.values()] == [
        ("internal", "virtual", "canbms-internal"),
        ("vehicle", "virtual", "canbms-vehicle"),
    ]


def test_any_number_of_named_buses_with_python_can_options_passed_through() -> None:
    config = parse_config(
        {
            "buses": {
                "charger": {"interface": "socketcan", "channel": "can2", "bitrate": 250_000},
                "vehicle": {"fd": True, "data_bitrate": 2_000_000, "receive_own_messages": True},
                "internal": {},
            },
            "adapters": [{"type": "elcon", "max_current": 10}],
        }
    )
    assert list(config.buses) == ["internal", "vehicle", "charger"]  # the core's buses first
    assert config.buses["charger"].bus_kwargs() == {
        "interface": "socketcan",
        "channel": "can2",
        "bitrate": 250_000,
    }
    assert config.buses["vehicle"].bus_kwargs() == {
        "interface": "virtual",
        "channel": "canbms-vehicle",
        "fd": True,
        "data_bitrate": 2_000_000,
        "receive_own_messages": True,
    }
    assert config.adapters[0].bus == "charger"


@pytest.mark.parametrize(
    ("data", "key", "problem"),
    [
        (
            {"adapters": [{"type": "elcon", "max_current": 10}]},
            "adapters[0].bus",
            "'charger' is not a configured bus (configured: internal, vehicle)",
        ),
        (
            {"canopen": {"bus": "service"}},
            "canopen.bus",
            "'service' is not a configured bus (configured: internal, vehicle)",
        ),
        ({"buses": {"vehicle": {}}}, "buses.internal", "missing: the pack core lives on this bus"),
        ({"buses": {"vehicle": {"bitrate": 5}}}, "buses.vehicle.bitrate", "below the minimum"),
        ({"buses": {"internal": 3}}, "buses.internal", "expected a table, got int"),
        ({"cycle_ms": "10"}, "cycle_ms", "expected a number, got '10'"),
        ({"pack": {"chemistry": "nca"}}, "pack.chemistry", "'nca' is not one of nmc, lfp, lto"),
        ({"balancing": {"period": 1}}, "balancing.period", "unknown key (known: enabled, "),
        ({"protecton": {}}, "protecton", "unknown key (known: adapters, balancing, buses"),
        (
            {"adapters": [{"type": "elcon", "max_current": 10, "addresses": [0xE5, 1]}]},
            "adapters[0].addresses[1]",
            "1 is not one of 0xE5, 0xE7, 0xE8, 0xE9",
        ),
    ],
)
def test_errors_name_the_dotted_key(data: dict, key: str, problem: str) -> None:
    error = _error(data)
    assert error.key == key
    assert problem in error.problem


def test_unit_conversions_are_properties_of_the_declared_values() -> None:
    config = parse_config({"cycle_ms": 20, "balancing": {"period_ms": 250, "threshold_mv": 5}})
    assert config.cycle_s == pytest.approx(0.02)
    assert config.balancing.period_s == pytest.approx(0.25)
    assert config.balancing.threshold == pytest.approx(0.005)


def test_presets_are_merged_before_validation() -> None:
    config = parse_config({"pack": {"chemistry": "lfp", "modules": 1, "cells_per_module": 16}})
    assert config.limits.cells_in_series == 16
    assert config.limits.charge_cell_voltage_v < 3.65


def test_base_dir_is_the_configuration_files_folder(tmp_path: Path) -> None:
    file = tmp_path / "canbms.toml"
    file.write_text("cycle_ms = 20\n")
    from controller.config.loader import load_config

    assert load_config(file).base_dir == tmp_path


@pytest.fixture(scope="module")
def schema() -> dict:
    result = config_schema()
    jsonschema.Draft202012Validator.check_schema(result)
    return result


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_shipped_configurations_validate_against_the_schema(schema: dict, path: Path) -> None:
    with path.open("rb") as f:
        jsonschema.validate(tomllib.load(f), schema, cls=jsonschema.Draft202012Validator)


@pytest.mark.parametrize(
    "data",
    [
        {"cycle_ms": 0.5},
        {"pack": {"modules": 0}},
        {"pack": {"chemistry": "nca"}},
        {"contactors": {"lockout": 5}},
        {"buses": {"vehicle": {"bitrate": "fast"}}},
        {"adapters": [{"type": "canbms_inverter", "variant": "growatt"}]},
        {"adapters": [{"type": "elcon"}]},
        {"canopen": {"node_id": 128}},
    ],
)
def test_schema_rejects_what_the_loader_rejects(schema: dict, data: dict) -> None:
    with pytest.raises(ConfigError):
        parse_config(data)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, schema, cls=jsonschema.Draft202012Validator)


def test_configuration_reference_holds_the_generated_tables() -> None:
    doc = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    for title, section in reference_sections().items():
        assert reference_table(section) in doc, f"docs/configuration.md: `{title}` table differs"


def test_config_check_prints_the_effective_configuration(capsys, tmp_path: Path) -> None:
    file = tmp_path / "canbms.toml"
    file.write_text('[pack]\nchemistry = "lfp"\n\n[balancing]\nenabled = false\n')
    assert main(["config", "check", str(file), "--json"]) == 0
    out = capsys.readouterr()
    effective = json.loads(out.out)
    assert effective["pack"]["chemistry"] == "lfp"
    assert effective["contactors"] == dump(default_config().contactors)
    assert "warning: balancing.enabled: false" in out.err
    assert main(["config", "check", str(file)]) == 0
    assert tomllib.loads(capsys.readouterr().out)["balancing"]["period_ms"] == 500.0


def test_config_check_fails_naming_the_key(capsys, tmp_path: Path) -> None:
    file = tmp_path / "canbms.toml"
    file.write_text("[contactors]\nlockout_s = -1\n")
    assert main(["config", "check", str(file)]) != 0
    assert "contactors.lockout_s: -1.0 is below the minimum 0.0" in capsys.readouterr().err


def test_config_schema_writes_the_file(tmp_path: Path) -> None:
    out = tmp_path / "canbms.schema.json"
    assert main(["config", "schema", "-o", str(out)]) == 0
    assert json.loads(out.read_text())["$schema"].endswith("2020-12/schema")


@pytest.mark.parametrize("path", sorted((ROOT / "hil").glob("*.toml")), ids=lambda p: p.name)
def test_the_effective_configuration_loads_back_to_itself(capsys, path: Path) -> None:
    from controller.config.loader import load_config

    assert main(["config", "check", str(path)]) == 0
    effective = tomllib.loads(capsys.readouterr().out)
    effective.pop("ingest")  # printed in its compiled form (timeouts in seconds)
    assert dump(parse_config(effective)) == dump(load_config(path))
