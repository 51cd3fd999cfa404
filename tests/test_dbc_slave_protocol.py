"""The generated slave-bus DBC: loads strictly, matches the contract, round-trips values.

cantools is the independent decoder: the database is built from cantools objects, dumped
to text, parsed back strictly, and every check below runs on the parsed copy.
"""

from __future__ import annotations

import functools
import math
import subprocess
import sys

import cantools
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import dbc
from dbc.errors import ContractError, TopologyError
from dbc.layout import (
    balancing_id,
    cell_layout,
    cell_voltages_id,
    module_status_id,
    sensor_layout,
    temperatures_id,
)
from dbc.slave_protocol import dump_string
from dbc.topology import MAX_CELLS_PER_MODULE, MAX_MODULES, MAX_SENSORS_PER_MODULE, Topology

CHECKED_IN = {
    "canbms_slaves.dbc": Topology(),
    "canbms_slaves_fd.dbc": Topology(
        modules=16, cells_per_module=32, sensors_per_module=8, fd=True
    ),
}
PERIODS = {"BalancingCommand": 500, "CellVoltages": 100, "Temperatures": 1000, "ModuleStatus": 100}
# Dumping and parsing cost grows with messages and slots. The layout of a module does not
# depend on its index, so random packs stay within 16 modules and this slot budget (every
# per-module count stays reachable); the full module range is pinned separately below.
RANDOM_MODULES = 16
SLOT_BUDGET = 96


@st.composite
def topologies(draw: st.DrawFn) -> Topology:
    fd = draw(st.booleans())
    modules = draw(st.integers(1, RANDOM_MODULES))
    per_module = max(SLOT_BUDGET // modules, 2)
    cells = draw(st.integers(1, min(MAX_CELLS_PER_MODULE[fd], per_module - 1)))
    sensors = draw(st.integers(1, min(MAX_SENSORS_PER_MODULE[fd], max(per_module - cells, 1))))
    return Topology(modules, cells, sensors, fd)


@functools.lru_cache(maxsize=32)
def _load(topology: Topology) -> cantools.database.can.Database:
    return cantools.database.load_string(dump_string(topology), "dbc", strict=True)


def _family(name: str) -> str:
    return name.split("_M")[0]


@pytest.mark.parametrize("name", sorted(CHECKED_IN))
def test_checked_in_files_are_what_the_generator_writes(name):
    text = dbc.path(name).read_text(encoding="utf-8")
    assert text == dump_string(CHECKED_IN[name]), f"{name} drifted: regenerate with canbms dbc"


@pytest.mark.parametrize("name", sorted(CHECKED_IN))
def test_checked_in_files_load_strictly_and_dump(name):
    database = cantools.database.load_file(dbc.path(name), strict=True)
    topology = CHECKED_IN[name]
    assert len(database.messages) == 4 * topology.modules
    assert all(m.is_fd == topology.fd for m in database.messages)
    result = subprocess.run(
        [sys.executable, "-m", "cantools", "dump", str(dbc.path(name))],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "CellVoltages_M00" in result.stdout


def test_default_pack_is_96s_in_8_modules_of_12_on_classic_can():
    database = cantools.database.load_file(dbc.path("canbms_slaves.dbc"), strict=True)
    cells = [s for m in database.messages for s in m.signals if s.name.endswith("_Voltage")]
    temps = [s for m in database.messages for s in m.signals if s.name[4:8] == "Temp"]
    assert len(cells) == 96
    assert len(temps) == 2 * 32  # value + invalid per sensor
    assert database.get_message_by_name("CellVoltages_M07").frame_id == 0x207
    assert database.dbc.attributes["BusType"].value == "CAN"
    assert "CRC-8 SAE J1850" in database.buses[0].comment


def test_fd_file_reloads_as_fd_frames_of_64_bytes():
    database = cantools.database.load_file(dbc.path("canbms_slaves_fd.dbc"), strict=True)
    assert database.dbc.attributes["BusType"].value == "CAN FD"
    cells = database.get_message_by_name("CellVoltages_M15")
    assert cells.is_fd and cells.length == 64
    assert cells.get_signal_by_name("M15_Cell31_Voltage").start == 16 + 31 * 15
    assert cells.get_signal_by_name("M15_Cell31_Voltage").scale == pytest.approx(0.0004)


@given(topologies())
def test_random_topologies_give_a_strict_contract_with_every_slot_in_place(topology):
    database = _load(topology)
    messages = database.messages
    assert len(messages) == 4 * topology.modules
    assert len({m.frame_id for m in messages}) == len(messages)
    assert len({m.name for m in messages}) == len(messages)
    for message in messages:
        family = _family(message.name)
        assert message.cycle_time == PERIODS[family]
        assert message.is_fd == topology.fd
        assert message.length <= (64 if topology.fd else 8)
        assert not message.is_extended_frame and message.frame_id < 0x800
        module = int(message.name[-2:])
        expected_id = {
            "BalancingCommand": balancing_id,
            "CellVoltages": cell_voltages_id,
            "Temperatures": temperatures_id,
            "ModuleStatus": module_status_id,
        }[family](module)
        assert message.frame_id == expected_id
        header = {s.name: s for s in message.signals if s.name.startswith(message.name)}
        assert (header[f"{message.name}_CRC"].start, header[f"{message.name}_CRC"].length) == (0, 8)
        assert header[f"{message.name}_Counter"].start == 8
        assert header[f"{message.name}_Counter"].length == 4
        senders = message.senders
        assert senders == (["Master"] if family == "BalancingCommand" else [f"Slave_M{module:02}"])
    _check_slots(topology, database)


def _check_slots(topology: Topology, database: cantools.database.can.Database) -> None:
    """Every cell and sensor sits in its group and slot; only real ones get signals."""
    layouts = {"CellVoltages": cell_layout(topology), "Temperatures": sensor_layout(topology)}
    counts = {
        "CellVoltages": topology.cells_per_module,
        "Temperatures": topology.sensors_per_module,
    }
    for m in range(topology.modules):
        for family, layout in layouts.items():
            message = database.get_message_by_name(f"{family}_M{m:02}")
            mux = message.get_signal_by_name(f"{message.name}_Mux")
            assert mux.is_multiplexer and (mux.start, mux.length) == (12, 4)
            groups = math.ceil(counts[family] / layout.per_frame)
            assert groups <= 16
            seen_groups = set()
            for index in range(counts[family]):
                group, slot = divmod(index, layout.per_frame)
                base = (
                    f"M{m:02}_Cell{index:02}"
                    if family == "CellVoltages"
                    else f"M{m:02}_Temp{index:02}"
                )
                value = message.get_signal_by_name(
                    f"{base}_Voltage" if family == "CellVoltages" else base
                )
                invalid = message.get_signal_by_name(f"{base}_Invalid")
                assert value.multiplexer_ids == [group] == invalid.multiplexer_ids
                assert value.start == layout.start(slot)
                assert value.length == layout.value_bits
                assert value.is_signed == layout.signed
                assert invalid.start == layout.start(slot) + layout.value_bits
                assert invalid.start < 8 * message.length
                seen_groups.add(group)
            assert seen_groups == set(range(groups))
            # only real cells/sensors get signals: 3 header signals + 2 per slot
            assert len(message.signals) == 3 + 2 * counts[family]
        balancing = database.get_message_by_name(f"BalancingCommand_M{m:02}")
        mask = balancing.get_signal_by_name(f"M{m:02}_BalanceMask")
        assert (mask.start, mask.length) == (16, topology.cells_per_module)


def _raw_values(draw: st.DrawFn, message, group: int | None) -> dict[str, int]:
    raw = {}
    for signal in message.signals:
        if signal.multiplexer_ids is not None and group not in signal.multiplexer_ids:
            continue
        if signal.is_multiplexer:
            raw[signal.name] = group
            continue
        # the raw range the DBC declares (the Profile 11 counter never sends 15)
        low = round(signal.conversion.scaled_to_raw(signal.minimum))
        high = round(signal.conversion.scaled_to_raw(signal.maximum))
        raw[signal.name] = draw(st.integers(low, high))
    return raw


def _slots(frame: bytes, layout) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised slot extraction from the layout descriptor alone (what decoders do)."""
    bits = np.unpackbits(np.frombuffer(frame, np.uint8), bitorder="little")
    starts = layout.start(np.arange(layout.per_frame))
    assert starts[-1] + layout.slot_bits <= bits.size
    weights = 1 << np.arange(layout.value_bits, dtype=np.int64)
    idx = starts[:, None] + np.arange(layout.value_bits)
    raw = (bits[idx].astype(np.int64) * weights).sum(axis=1)
    if layout.signed:
        raw = np.where(raw >= 1 << (layout.value_bits - 1), raw - (1 << layout.value_bits), raw)
    return raw, bits[starts + layout.value_bits]


@given(topologies(), st.data())
def test_physical_values_round_trip_through_cantools(topology, data):
    database = _load(topology)
    for family in PERIODS:
        module = data.draw(st.integers(0, topology.modules - 1), label="module")
        message = database.get_message_by_name(f"{family}_M{module:02}")
        mux = next((s for s in message.signals if s.is_multiplexer), None)
        group = None
        if mux is not None:
            groups = sorted({i for s in message.signals for i in (s.multiplexer_ids or ())})
            group = data.draw(st.sampled_from(groups), label="group")
        raw = _raw_values(data.draw, message, group)
        physical = {
            name: message.get_signal_by_name(name).conversion.raw_to_scaled(value)
            for name, value in raw.items()
        }
        frame = message.encode(physical, strict=True)
        assert len(frame) == message.length
        decoded = message.decode(frame, decode_choices=False)
        for name, value in physical.items():
            resolution = message.get_signal_by_name(name).scale
            assert decoded[name] == pytest.approx(value, abs=resolution / 2), name
        if family in ("CellVoltages", "Temperatures"):
            layout = cell_layout(topology) if family == "CellVoltages" else sensor_layout(topology)
            values, invalid = _slots(frame, layout)
            count = (
                topology.cells_per_module
                if family == "CellVoltages"
                else topology.sensors_per_module
            )
            first = group * layout.per_frame
            for slot, index in enumerate(range(first, min(first + layout.per_frame, count))):
                base = (
                    f"M{module:02}_Cell{index:02}"
                    if family == "CellVoltages"
                    else f"M{module:02}_Temp{index:02}"
                )
                value_name = f"{base}_Voltage" if family == "CellVoltages" else base
                assert values[slot] == raw[value_name]
                assert invalid[slot] == raw[f"{base}_Invalid"]


@pytest.mark.parametrize("fd", [False, True])
def test_the_largest_module_count_keeps_ids_unique_and_in_their_ranges(fd):
    database = _load(Topology(modules=MAX_MODULES, cells_per_module=2, sensors_per_module=2, fd=fd))
    ids = sorted(m.frame_id for m in database.messages)
    assert len(set(ids)) == 4 * MAX_MODULES
    for family, base in (
        ("BalancingCommand", 0x140),
        ("CellVoltages", 0x200),
        ("Temperatures", 0x280),
        ("ModuleStatus", 0x300),
    ):
        last = database.get_message_by_name(f"{family}_M{MAX_MODULES - 1:02}")
        assert last.frame_id == base + MAX_MODULES - 1
        assert last.cycle_time == PERIODS[family]
    # four disjoint blocks of consecutive IDs, all 11-bit
    bases = (0x140, 0x200, 0x280, 0x300)
    assert set(ids) == {base + m for base in bases for m in range(MAX_MODULES)}
    assert ids[-1] < 0x800


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"modules": 0}, "modules"),
        ({"modules": 65}, "modules"),
        ({"cells_per_module": 49}, "cells_per_module"),
        ({"cells_per_module": 65, "fd": True}, "cells_per_module"),
        ({"sensors_per_module": 0}, "sensors_per_module"),
        ({"sensors_per_module": 49}, "sensors_per_module"),
        ({"modules": 2.0}, "modules"),
        ({"modules": True}, "modules"),
        ({"fd": 1}, "fd"),
    ],
)
def test_topologies_the_protocol_cannot_carry_are_rejected_by_field(kwargs, field):
    with pytest.raises(TopologyError) as excinfo:
        Topology(**kwargs)
    assert excinfo.value.field == field
    assert str(excinfo.value).startswith(f"{field}:")
    assert isinstance(excinfo.value, ContractError)


def test_fd_allows_what_classic_cannot():
    topology = Topology(modules=64, cells_per_module=64, sensors_per_module=64, fd=True)
    assert topology.n_cells == 4096
    assert (topology.voltage_groups, topology.temperature_groups) == (2, 3)
    classic = Topology(cells_per_module=48, sensors_per_module=48)
    assert (classic.voltage_groups, classic.temperature_groups) == (16, 16)
