"""EDS export: canopen loads the file back with the same objects, types, access and defaults."""

from __future__ import annotations

import argparse
import io

import canopen
import pytest
from canopen.objectdictionary import ODArray, ODRecord, ODVariable

from canbms.cli import eds as eds_cli
from controller.canopen_node import (
    BatteryNodeConfig,
    build_dictionary,
    export_eds,
    load_battery_node_config,
)
from controller.errors import ConfigError

FIELDS = ("name", "data_type", "access_type", "default", "pdo_mappable", "min", "max", "unit")


def entries(od: canopen.ObjectDictionary) -> dict[tuple[int, int], ODVariable]:
    out = {}
    for index in od:
        obj = od[index]
        if isinstance(obj, ODRecord | ODArray):
            out.update({(index, sub): obj[sub] for sub in obj})
        else:
            out[(index, 0)] = obj
    return out


def load(text: str, node_id: int | None) -> canopen.ObjectDictionary:
    source = io.StringIO(text)
    source.name = "battery.eds"
    return canopen.import_od(source, node_id)


@pytest.mark.parametrize("node_id", [1, 0x42, 127])
def test_round_trip_keeps_objects_types_access_and_defaults(node_id):
    od = build_dictionary(BatteryNodeConfig(node_id=node_id, heartbeat_ms=321, tpdo3_ms=70))
    text = io.StringIO()
    export_eds(od, text)
    back = load(text.getvalue(), node_id)
    assert list(back) == list(od)
    for index in od:
        assert type(back[index]) is type(od[index]) and back[index].name == od[index].name
    original, loaded = entries(od), entries(back)
    assert loaded.keys() == original.keys()
    for key, var in original.items():
        for field in FIELDS:
            assert getattr(loaded[key], field) == getattr(var, field), (hex(key[0]), key[1], field)
        assert loaded[key].factor == pytest.approx(var.factor)
    # the numbers a charger relies on, read independently from the loaded dictionary
    assert back[0x1800][1].default == 0x180 + node_id and back[0x1800][1].relative
    assert back[0x1802][5].default == 70 and back[0x1017].default == 321
    assert back[0x1A02][1].default == 0x60700010 and back[0x1A02][2].default == 0x60810008
    assert back[0x1000].default == 418


def test_cob_ids_are_node_relative_in_the_file():
    text = io.StringIO()
    export_eds(build_dictionary(BatteryNodeConfig(node_id=9)), text)
    assert "DefaultValue=$NODEID+0x380" in text.getvalue()
    assert load(text.getvalue(), 20)[0x1802][1].default == 0x380 + 20


def test_cli_writes_an_eds_commissioned_for_the_node_id(tmp_path):
    parser = argparse.ArgumentParser()
    eds_cli.add_subparser(parser.add_subparsers())
    out = tmp_path / "battery.eds"
    args = parser.parse_args(["eds", "-o", str(out), "--node-id", "0x33"])
    assert args.func(args) == 0
    back = canopen.import_od(str(out))  # no node ID given: taken from [DeviceComissioning]
    assert back.node_id == 0x33 and back[0x1802][1].default == 0x380 + 0x33
    assert back[0x6070].data_type == 0x6 and back[0x6070].access_type == "ro"


def test_cli_reads_start_up_values_from_the_config_table(tmp_path):
    config = tmp_path / "bms.toml"
    config.write_text("[canopen]\nheartbeat_ms = 250\ncharge_current_scale_pct = 80\n")
    parser = argparse.ArgumentParser()
    eds_cli.add_subparser(parser.add_subparsers())
    out = tmp_path / "battery.eds"
    args = parser.parse_args(["eds", "-o", str(out), "--config", str(config)])
    assert args.func(args) == 0
    back = canopen.import_od(str(out), 1)
    assert back[0x1017].default == 250 and back[0x2100][1].default == 80
    config.write_text("[canopen]\nheartbeat = 250\n")
    with pytest.raises(Exception, match=r"canopen\.heartbeat: unknown key"):
        args.func(args)


@pytest.mark.parametrize("text", ["0", "128"])
def test_cli_rejects_node_ids_outside_the_canopen_range(text, capsys):
    parser = argparse.ArgumentParser()
    eds_cli.add_subparser(parser.add_subparsers())
    with pytest.raises(SystemExit):
        parser.parse_args(["eds", "-o", "x.eds", "--node-id", text])


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ({"node_id": 0}, "canopen.node_id"),
        ({"charge_current_scale_pct": 120}, "canopen.charge_current_scale_pct"),
        ({"self_start": 1}, "canopen.self_start"),
    ],
)
def test_config_errors_name_the_key(table, key):
    with pytest.raises(ConfigError) as err:
        load_battery_node_config(table)
    assert err.value.key == key
