"""Packs above 64 modules: the 29-bit ID scheme of the slave contract."""

from __future__ import annotations

import cantools
import numpy as np
import pytest
from ingest_support import batch, encode, slave_targets

from controller.config.pack import parse_pack
from controller.errors import ConfigError
from controller.ingest import RejectReason, compile_decoder, load_mapping
from dbc.errors import TopologyError
from dbc.layout import (
    EXTENDED_BASE_ID,
    balancing_id,
    cell_voltages_id,
    module_status_id,
    temperatures_id,
)
from dbc.slave_protocol import build_database, dump_string
from dbc.topology import MAX_MODULES, MAX_MODULES_EXTENDED, Topology

TOPOLOGY = Topology(modules=70, cells_per_module=5, sensors_per_module=2, extended_ids=True)
KINDS = {"BalancingCommand": 1, "CellVoltages": 2, "Temperatures": 3, "ModuleStatus": 4}


@pytest.fixture(scope="module")
def loaded() -> cantools.database.can.Database:
    return cantools.database.load_string(dump_string(TOPOLOGY), "dbc", strict=True)


def test_extended_pack_round_trips_through_a_strict_dbc(loaded) -> None:
    built = build_database(TOPOLOGY)
    assert len(loaded.messages) == 4 * TOPOLOGY.modules
    for message in built.messages:
        again = loaded.get_message_by_name(message.name)
        assert again.is_extended_frame and again.frame_id == message.frame_id
        assert {(s.name, s.start, s.length, str(s.multiplexer_ids)) for s in again.signals} == {
            (s.name, s.start, s.length, str(s.multiplexer_ids)) for s in message.signals
        }


def test_ids_are_base_kind_and_module(loaded) -> None:
    for message in loaded.messages:
        family, module = message.name.split("_M")
        expected = EXTENDED_BASE_ID | KINDS[family] << 12 | int(module)
        assert message.frame_id == expected, message.name
        assert message.frame_id < 1 << 29
    ids = [m.frame_id for m in loaded.messages]
    assert len(set(ids)) == len(ids)
    # The CRC covers the low 16 bits of the ID: they alone must tell every message apart.
    assert len({i & 0xFFFF for i in ids}) == len(ids)


def test_the_largest_extended_pack_keeps_ids_unique_and_apart_from_11_bit_ones() -> None:
    modules = np.arange(MAX_MODULES_EXTENDED)
    ids = [
        f(int(m), True)
        for f in (balancing_id, cell_voltages_id, temperatures_id, module_status_id)
        for m in modules
    ]
    assert len(set(ids)) == len({i & 0xFFFF for i in ids}) == 4 * MAX_MODULES_EXTENDED
    assert min(ids) > 0x7FF and max(ids) < 1 << 29
    assert cell_voltages_id(3) == 0x203  # the 11-bit scheme is unchanged


def test_more_than_64_modules_need_extended_ids() -> None:
    with pytest.raises(TopologyError) as excinfo:
        Topology(modules=MAX_MODULES + 1)
    assert excinfo.value.field == "modules" and "extended_ids" in str(excinfo.value)
    with pytest.raises(TopologyError) as excinfo:
        Topology(modules=MAX_MODULES_EXTENDED + 1, extended_ids=True)
    assert excinfo.value.field == "modules"
    with pytest.raises(TopologyError) as excinfo:
        Topology(extended_ids=1)
    assert excinfo.value.field == "extended_ids"
    # the frame layouts do not depend on the ID scheme
    small = build_database(Topology(modules=2))
    wide = build_database(Topology(modules=2, extended_ids=True))
    for a, b in zip(small.messages, wide.messages, strict=True):
        assert a.length == b.length and a.name == b.name
        assert [s.start for s in a.signals] == [s.start for s in b.signals]


def test_extended_frames_decode_through_the_controller_ingest(loaded) -> None:
    params = {"cells_per_module": 5, "sensors_per_module": 2}
    decoder = compile_decoder(
        loaded, load_mapping("canbms_slaves", params), slave_targets(TOPOLOGY)
    )
    state = decoder.new_state()
    frames = []
    for module in (0, 64, 69):
        message = loaded.get_message_by_name(f"CellVoltages_M{module:02}")
        values = {f"CellVoltages_M{module:02}_Mux": 1}
        values |= {f"M{module:02}_Cell{c:02}_Voltage": 3.0 + 0.1 * c for c in (3, 4)}
        frames.append((message.frame_id, encode(message, values, 7), 0.01 * module))
    report = decoder.decode(batch(frames), state)
    assert report.rejected.sum() == 0 and report.unknown == 0
    volts = state.measurements["cell_voltage"].value
    for module in (0, 64, 69):
        np.testing.assert_allclose(volts[module * 5 + 3 : module * 5 + 5], [3.3, 3.4])
    # the same payload under another module's ID fails the CRC
    moved = [(cell_voltages_id(65, True), frames[1][1], 1.0)]
    assert decoder.decode(batch(moved), state).rejected_for(RejectReason.CRC) == 1


def test_pack_config_accepts_extended_module_counts() -> None:
    assert parse_pack({"modules": 2000, "cells_per_module": 50, "fd": True}).cells == 100_000
    with pytest.raises(ConfigError, match="pack.modules"):
        parse_pack({"modules": MAX_MODULES_EXTENDED + 1})
