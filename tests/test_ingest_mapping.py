"""Mapping configuration: bad files fail at load or compile with the offending key named."""

from __future__ import annotations

from pathlib import Path

import cantools
import pytest
from ingest_support import slave_targets

from controller.errors import ConfigError, MappingError
from controller.ingest import compile_decoder, load_mapping, parse_mapping
from dbc.slave_protocol import build_database
from dbc.topology import Topology

TOPO = Topology(modules=2, cells_per_module=6, sensors_per_module=3)
DB = build_database(TOPO)
PARAMS = {"cells_per_module": 6, "sensors_per_module": 3}

CELL_RULE = {
    "target": "cell_voltage",
    "message": r"^CellVoltages_M(?P<module>\d+)$",
    "signal": r"^(?P<cell>M\d+_Cell(?P<index>\d+))_Voltage$",
    "per_module": "cells_per_module",
    "validity": "{cell}_Invalid",
}


def _compile(data, targets=None):
    return compile_decoder(DB, parse_mapping(data, PARAMS), targets or {"cell_voltage": 12})


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"rule": [{**CELL_RULE, "signal": "(unclosed"}]}, "mapping.rule[0].signal"),
        ({"rule": [{**CELL_RULE, "per_module": "cells"}]}, "mapping.rule[0].per_module"),
        ({"rule": [{**CELL_RULE, "per_module": -1}]}, "mapping.rule[0].per_module"),
        ({"rule": [{**CELL_RULE, "unit_scale": "mV"}]}, "mapping.rule[0].unit_scale"),
        ({"rule": [{**CELL_RULE, "validty": "x"}]}, "mapping.rule[0].validty"),
        ({"rule": [{**CELL_RULE, "validity": "{sensor}_Invalid"}]}, "mapping.rule[0].validity"),
        ({"rule": [CELL_RULE], "e2e": [{"message": ".*"}]}, "mapping.e2e[0]"),
        ({"rule": [CELL_RULE], "e2e": [{"crc": "x", "max_jump": 0}]}, "mapping.e2e[0].max_jump"),
        ({"rule": [CELL_RULE], "source": [{"message": ".*"}]}, "mapping.source[0].name"),
        ({"rule": []}, "mapping.rule"),
        ({"rule": [CELL_RULE], "extra": 1}, "mapping.extra"),
    ],
)
def test_invalid_mapping_names_the_key(data, key) -> None:
    with pytest.raises(ConfigError) as info:
        parse_mapping(data, PARAMS)
    assert info.value.key == key


@pytest.mark.parametrize(
    ("data", "targets", "message"),
    [
        ({"rule": [{**CELL_RULE, "target": "cell_v"}]}, None, r"rule\[0\]\.target: 'cell_v'"),
        ({"rule": [CELL_RULE]}, {"cell_voltage": 13}, "element 12 of 13 is fed by no signal"),
        ({"rule": [{**CELL_RULE, "validity": "{cell}_Bad"}]}, None, r"rule\[0\]\.validity"),
        ({"rule": [{**CELL_RULE, "per_module": 5}]}, None, "fed by both"),
        (
            {"rule": [CELL_RULE], "e2e": [{"message": "^CellVoltages_M00$", "crc": "{message}_X"}]},
            None,
            r"e2e\[0\]\.crc",
        ),
        (
            {"rule": [CELL_RULE], "e2e": [{"message": "^Cell.*", "crc": "M00_Cell00_Voltage"}]},
            None,
            r"e2e\[0\]\.crc",
        ),
    ],
)
def test_mapping_that_does_not_fit_the_dbc_fails_to_compile(data, targets, message) -> None:
    with pytest.raises(MappingError, match=message):
        _compile(data, targets)


def test_signals_beyond_the_target_size_are_left_out() -> None:
    decoder = _compile({"rule": [CELL_RULE]}, {"cell_voltage": 7})
    assert decoder.layout == (("cell_voltage", 0, 7),)


def test_shipped_mappings_compile_for_their_databases(corpus_dir) -> None:
    decoder = compile_decoder(DB, load_mapping("canbms_slaves", PARAMS), slave_targets(TOPO))
    assert decoder.sources == ("M00", "M01")
    assert set(decoder.protected) == {
        f"{kind}_M{m:02}"
        for kind in ("CellVoltages", "Temperatures", "ModuleStatus")
        for m in range(2)
    }
    fox = cantools.database.load_file(corpus_dir / "foxbms.dbc", strict=False)
    targets = {"cell_voltage": 216, "cell_temperature": 180}  # all the stream can carry
    decoder = compile_decoder(fox, load_mapping("foxbms_afe"), targets)
    assert "afe" in decoder.sources and not decoder.protected
    with pytest.raises(MappingError, match="cell_voltage: element 216"):
        compile_decoder(fox, load_mapping("foxbms_afe"), {**targets, "cell_voltage": 217})


def test_unknown_shipped_mapping_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="no shipped mapping"):
        load_mapping("nonexistent")


INDEXED = cantools.database.load_file(Path(__file__).parent / "data" / "indexed_slaves.dbc")
BLOCK_RULE = {
    "target": "cell_voltage",
    "message": "^CellBlock$",
    "signal": r"^Voltage(?P<index>\d)$",
    "index_signal": "BlockIndex",
    "index_stride": 4,
}


@pytest.mark.parametrize(
    ("rule", "key"),
    [
        ({**BLOCK_RULE, "index_stride": 0}, "mapping.rule[0].index_stride"),
        ({**BLOCK_RULE, "index_stride": "cells"}, "mapping.rule[0].index_stride"),
        ({**BLOCK_RULE, "index_signal": "{slot}"}, "mapping.rule[0].index_signal"),
    ],
)
def test_invalid_index_signal_names_the_key(rule, key) -> None:
    with pytest.raises(ConfigError) as info:
        parse_mapping({"rule": [rule]}, PARAMS)
    assert info.value.key == key


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        ([{**BLOCK_RULE, "index_signal": "Block"}], r"rule\[0\]\.index_signal: .* 'Block'"),
        ([{**BLOCK_RULE, "index_stride": 3}], r"cell_voltage\[3\] is fed by both"),
        (
            [
                BLOCK_RULE,
                {
                    **BLOCK_RULE,
                    "message": "^TempBlock$",
                    "index_signal": "ModuleId",
                    "signal": r"^Temp(?P<index>\d)$",
                },
            ],
            "fed by both",
        ),
    ],
)
def test_index_signals_that_do_not_fit_fail_to_compile(rules, message) -> None:
    with pytest.raises(MappingError, match=message):
        compile_decoder(INDEXED, parse_mapping({"rule": rules}, PARAMS), {"cell_voltage": 12})


def test_templates_see_the_multiplexer_value() -> None:
    with pytest.raises(MappingError, match="has no signal 'Flag0'"):
        _compile({"rule": [{**CELL_RULE, "validity": "Flag{mux}"}]})


def test_an_optional_target_is_fed_completely_or_not_at_all() -> None:
    status = {
        "target": "module_voltage",
        "message": r"^ModuleStatus_M(?P<module>\d+)$",
        "signal": r"^M\d+_ModuleVoltage$",
    }
    targets = {"cell_voltage": 12, "module_voltage": 2, "board_temperature": 2}
    mapping = parse_mapping({"rule": [CELL_RULE, status]}, PARAMS)
    decoder = compile_decoder(
        DB, mapping, targets, optional={"module_voltage", "board_temperature"}
    )
    assert decoder.available == {"cell_voltage", "module_voltage"}
    assert decoder.new_state().measurements.available == decoder.available
    assert [n.split(":")[0] for n in decoder.notices] == ["board_temperature"]
    with pytest.raises(MappingError, match="module_voltage: element 2 of 3"):
        compile_decoder(DB, mapping, {**targets, "module_voltage": 3}, optional={"module_voltage"})
    with pytest.raises(MappingError, match="board_temperature: element 0 of 2"):
        compile_decoder(DB, mapping, targets)
