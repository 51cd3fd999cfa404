"""The per-frame path of the decoder (small batches) equals its array path, frame for frame.

Both paths get the same batches (genuine frames mixed with repeated, late and jumping
counters, corrupted CRCs, wrong lengths, unknown IDs and multiplexer values, equal,
unordered and missing (NaN) timestamps) and must leave identical state and reports:
measured values and their times, counters, per-source counts. The databases cover the
slave protocol (classic and FD with 29-bit IDs) and third-party layouts: Motorola and
signed signals, scaling, validity flags, index signals and a plain alive counter, and
Motorola signals of FD frames across 64-bit words. A steady batch is written in one pass
over all slot shapes or in one pass per shape, depending on its size, or from flat tables
where it holds a frame of every slot: all are checked.
"""

from __future__ import annotations

import functools
from dataclasses import asdict
from pathlib import Path

import cantools
import numpy as np
import pytest
from cantools.database import Database, Message, Signal
from cantools.database.conversion import BaseConversion
from conftest import CORPUS
from hypothesis import given
from hypothesis import strategies as st
from ingest_support import slave_targets, with_mux

from controller.frames import MAX_PAYLOAD, FrameBatch
from controller.ingest import compile_decoder, load_mapping, parse_mapping, slot_words
from controller.ingest.layout import compile_message
from dbc import e2e
from dbc.slave_protocol import build_database
from dbc.topology import Topology

HERE = Path(__file__).resolve().parent
INDEXED_MAPPING = {
    "rule": [
        {
            "target": "cell_voltage",
            "message": "^CellBlock$",
            "signal": r"^Voltage(?P<index>\d)$",
            "index_signal": "BlockIndex",
            "index_stride": 4,
            "unit_scale": 0.001,
            "validity": "BlockInvalid",
        },
        {
            "target": "cell_temperature",
            "message": "^TempBlock$",
            "signal": r"^Temp(?P<index>\d)$",
            "index_signal": "ModuleId",
            "index_stride": 4,
        },
    ],
    "e2e": [{"message": "^TempBlock$", "counter": "ModuleId", "max_jump": 3}],
}
WORDS_MAPPING = {
    "rule": [
        {
            "target": "cell_voltage",
            "message": "^Wide$",
            "signal": r"^Value(?P<index>[01])$",
            "validity": "{signal}_Invalid",
            "unit_scale": 0.001,
        },
        {
            "target": "cell_voltage",
            "message": "^(Wide|Long|Short)$",
            "signal": r"^Value(?P<index>[2-6])$",
        },
    ]
}
CASES = ["slaves", "slaves_fd", "indexed", "foxbms", "words"]


def _signal(name, start, length, big=False, signed=False, scale=1.0, offset=0.0) -> Signal:
    order = "big_endian" if big else "little_endian"
    return Signal(
        name, start, length, order, signed, conversion=BaseConversion.factory(scale, offset)
    )


def _words_database() -> Database:
    """FD frames with Motorola and little-endian signals inside and across 64-bit words,
    of lengths that are and are not whole words."""
    wide = [
        _signal("Value0", 59, 20, big=True, signed=True, scale=0.5, offset=-3),  # bytes 7-9
        _signal("Value0_Invalid", 60, 1, big=True),
        _signal("Value1", 28, 13, scale=0.25),
        _signal("Value1_Invalid", 41, 1),
        _signal("Value2", 87, 16, big=True),
    ]
    long = [
        _signal("Value3", 239, 32, big=True, signed=True, scale=0.001),  # bytes 29-32
        _signal("Value4", 495, 24, big=True, scale=2),  # bytes 61-63
        _signal("Value5", 420, 40, signed=True, scale=-0.5),  # bytes 52-57
    ]
    short = [_signal("Value6", 7, 20, big=True, signed=True)]
    return Database(
        [
            Message(0x120, "Wide", 12, wide, is_fd=True),
            Message(0x1ABCDE0, "Long", 64, long, is_extended_frame=True, is_fd=True),
            Message(0x121, "Short", 3, short),
        ]
    )


@functools.cache
def _case(name: str):
    """(cantools database, decoder) of one test case."""
    if name in ("slaves", "slaves_fd"):
        topology = Topology(2, 12, 4, False) if name == "slaves" else Topology(2, 40, 8, True, True)
        db = build_database(topology)
        params = {k: v for k, v in asdict(topology).items() if isinstance(v, int)}
        decoder = compile_decoder(
            db, load_mapping("canbms_slaves", params), slave_targets(topology)
        )
    elif name == "words":
        db = _words_database()
        decoder = compile_decoder(db, parse_mapping(WORDS_MAPPING), {"cell_voltage": 7})
    elif name == "indexed":
        db = cantools.database.load_file(HERE / "data" / "indexed_slaves.dbc")
        targets = {"cell_voltage": 40, "cell_temperature": 24}
        decoder = compile_decoder(db, parse_mapping(INDEXED_MAPPING), targets)
    else:
        db = cantools.database.load_file(CORPUS / "foxbms.dbc", strict=False)
        targets = {"cell_voltage": 216, "cell_temperature": 180}
        decoder = compile_decoder(db, load_mapping("foxbms_afe"), targets)
    return db, decoder


@st.composite
def _batches(draw, db, decoder, faults: bool = True, every_slot: bool = False):
    """One to three batches of frames of ``db``: mostly well formed, some broken (none
    without ``faults``: known IDs, right lengths, good CRCs, counters in sequence); with
    ``every_slot``, each batch begins with a frame of every slot of every message; maybe
    each batch with the messages of the first in the same order, as periodic traffic."""
    messages = [m for m in db.messages if m.name not in decoder.unsupported]
    slots = [(m, s.mux_value) for m in messages for s in compile_message(m).slots if every_slot]
    protected = decoder.protected
    running = {m.frame_id: draw(st.integers(0, 14)) for m in messages}
    backwards = draw(st.booleans())  # each batch older than the one before (a log replayed)
    repeated = draw(st.booleans())  # every batch carries the first one's messages (periodic)
    batches = []
    for b in range(draw(st.integers(1, 3))):
        if b == 0 or not repeated:
            n = len(slots) + draw(st.integers(0, 2 * decoder.small_batch + 2))
            plan = [
                slots[i] if i < len(slots) else (draw(st.sampled_from(messages)), None)
                for i in range(n)
            ]
        rows = []
        for i in range(n):
            message, mux = plan[i]
            payload = bytearray(draw(st.binary(min_size=message.length, max_size=message.length)))
            layout = compile_message(message)
            if mux is not None:
                payload = with_mux(message, payload, mux)
            elif layout.mux is not None and (not faults or draw(st.booleans())):
                values = [s.mux_value for s in layout.slots]
                payload = with_mux(message, payload, draw(st.sampled_from(values)))
            kinds = ["next", "next", "next", "repeat", "skip", "any"] if faults else ["next"]
            kind = draw(st.sampled_from(kinds))
            running[message.frame_id] += {"next": 1, "skip": 3}.get(kind, 0)
            counter = running[message.frame_id] if kind != "any" else draw(st.integers(0, 15))
            crc, _ = protected.get(message.name, (False, False))
            if crc and len(payload) >= e2e.MIN_LENGTH:
                payload = bytearray(e2e.protect(message.frame_id & 0xFFFF, payload, counter))
                if faults and draw(st.integers(0, 9)) == 0:
                    payload[draw(st.integers(0, len(payload) - 1))] ^= 1 << draw(st.integers(0, 7))
            elif message.name == "TempBlock":  # the plain counter is ModuleId, byte 0
                payload[0] = counter % 7 if faults else counter % 256  # 8 bits, no wrap
            frame_id, extended = message.frame_id, message.is_extended_frame
            fault = draw(st.integers(0, 19)) if faults else -1
            if fault == 0:
                payload = payload[:-1]  # a wrong length
            elif fault == 1:
                frame_id, extended = draw(st.integers(0, 0x7FF)), False  # maybe unknown
            elif fault == 2:
                extended = not extended  # the same number as the other kind of ID
            rows.append((frame_id, extended, bytes(payload)))
        times = draw(st.lists(st.integers(0, 4), min_size=n, max_size=n))
        if not faults or draw(st.booleans()):
            times.sort()
        stamps = 10.0 * (-b if backwards else b) + np.array(times, float) / 1000.0
        if faults and n and draw(st.integers(0, 9)) == 0:  # a receiver without a clock
            stamps[draw(st.integers(0, n - 1))] = np.nan
        batches.append(_batch(rows, stamps))
    return batches


def _batch(rows, timestamps) -> FrameBatch:
    data = np.zeros((len(rows), MAX_PAYLOAD), np.uint8)
    for i, (_, _, payload) in enumerate(rows):
        data[i, : len(payload)] = np.frombuffer(payload, np.uint8)
    return FrameBatch(
        ids=np.array([r[0] for r in rows], np.uint32),
        dlc=np.array([len(r[2]) for r in rows], np.uint8),
        data=data,
        timestamps=timestamps,
        extended=np.array([r[1] for r in rows], bool),
    )


def _snapshot(state, report) -> list:
    m = state.measurements
    return [
        m.value,
        m.reported_valid,
        m.updated_at,
        state.counters.reference,
        state.counters.received,
        state.accepted,
        state.rejected,
        state.last_seen,
        state.unknown,
        report.frames,
        report.unknown,
        report.accepted,
        report.rejected,
        report.updated,
    ]


def _compare(decoder, batches, one_pass: int) -> object:
    """Decode ``batches`` frame by frame and as arrays (steady batches written in one pass
    up to ``one_pass`` frames times columns); the per-frame state."""
    frames, arrays = decoder.new_state(), decoder.new_state()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(slot_words, "_ONE_PASS", one_pass)
        for batch in batches:
            got = _snapshot(frames, decoder.decode_frames(batch, frames))
            expected = _snapshot(arrays, decoder.decode_arrays(batch, arrays))
            for a, b in zip(got, expected, strict=True):
                np.testing.assert_array_equal(a, b)
    return frames


ONE_PASS = st.sampled_from([slot_words._ONE_PASS, 0])  # as built, and one pass per shape


@pytest.mark.filterwarnings("ignore:invalid value encountered in maximum:RuntimeWarning")
@pytest.mark.parametrize("name", CASES)
@given(one_pass=ONE_PASS, data=st.data())
def test_per_frame_and_array_paths_leave_the_same_state(name, one_pass, data) -> None:
    if name == "foxbms" and not CORPUS.is_dir():
        pytest.skip(f"DBC corpus not found at {CORPUS}")
    db, decoder = _case(name)
    batches = data.draw(_batches(db, decoder))
    frames = _compare(decoder, batches, one_pass)
    assert frames.accepted.sum() + frames.rejected.sum() + frames.unknown == sum(map(len, batches))


@pytest.mark.parametrize("name", CASES)
@given(one_pass=ONE_PASS, data=st.data())
def test_steady_batches_decode_alike_on_both_paths(name, one_pass, data) -> None:
    """Healthy traffic, which the array path decodes as a steady batch; with a frame of
    every slot in each batch, as on a bus read once a second, or without."""
    if name == "foxbms" and not CORPUS.is_dir():
        pytest.skip(f"DBC corpus not found at {CORPUS}")
    db, decoder = _case(name)
    every_slot = name != "foxbms" and data.draw(st.booleans())  # its 304 slots: slow to draw
    batches = data.draw(_batches(db, decoder, faults=False, every_slot=every_slot))
    frames = _compare(decoder, batches, one_pass)
    assert frames.rejected.sum() == 0
