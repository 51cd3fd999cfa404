"""The compiled decoder agrees with cantools on every message of every DBC we know."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import cantools
import numpy as np
import pytest
from cantools.database.can import Message, Signal
from cantools.database.conversion import BaseConversion
from hypothesis import given
from hypothesis import strategies as st

from controller.frames import MAX_PAYLOAD, FrameBatch
from controller.ingest import compile_decoder
from controller.ingest.layout import SlotTable, compile_signal

PROJECT_DBC = sorted((Path(__file__).resolve().parents[1] / "dbc").glob("*.dbc"))
CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "dbc-corpus"
CORPUS_DBC = sorted(CORPUS.glob("*.dbc")) if CORPUS.is_dir() else []


@cache
def _compiled(path: str):
    db = cantools.database.load_file(path, strict=False)
    return db, compile_decoder(db)


def _cantools_unsupported(db) -> set[str]:
    """Messages outside the compiler's scope, judged from cantools' own model."""
    out = set()
    for m in db.messages:
        muxes = [s for s in m.signals if s.is_multiplexer]
        nested = len(muxes) > 1 or any(s.multiplexer_signal for s in muxes)
        if nested or any(s.is_float for s in m.signals):
            out.add(m.name)
        try:
            m.decode(bytes(m.length), decode_choices=False)
        except cantools.database.DecodeError as exc:
            if "unpacking failed" in str(exc):  # signals beyond the message length
                out.add(m.name)
    return out


def _batch(frames: list[tuple[int, bytes]]) -> FrameBatch:
    data = np.zeros((len(frames), MAX_PAYLOAD), np.uint8)
    for i, (_, payload) in enumerate(frames):
        data[i, : len(payload)] = np.frombuffer(payload, np.uint8)
    return FrameBatch(
        ids=np.array([f for f, _ in frames], np.uint32),
        dlc=np.array([len(p) for _, p in frames], np.uint8),
        data=data,
        timestamps=np.arange(len(frames), dtype=np.float64),
    )


def _assert_matches_cantools(db, decoder, frames: list[tuple[int, bytes]]) -> int:
    """Decode ``frames`` both ways; returns how many cantools could decode."""
    decoded = decoder.decode_all(_batch(frames))
    seen = {name: 0 for name in decoded}
    checked = 0
    for row, (frame_id, payload) in enumerate(frames):
        message = db.get_message_by_frame_id(frame_id)
        if message.name in decoder.unsupported:
            assert message.name not in decoded
            continue
        try:
            expected = message.decode(payload, decode_choices=False, scaling=True)
        except cantools.database.DecodeError:
            out = decoded.get(message.name)
            assert out is None or row not in out.rows  # unknown mux value: dropped
            continue
        out = decoded[message.name]
        i = seen[message.name]
        seen[message.name] += 1
        assert out.rows[i] == row
        present = {name for name, mask in out.present.items() if mask[i]}
        assert present == set(expected), message.name  # mux routing
        for name, value in expected.items():
            assert out.values[name][i] == pytest.approx(float(value), rel=1e-12, abs=1e-9), (
                f"{message.name}.{name}"
            )
        checked += 1
    return checked


def _payloads(db) -> st.SearchStrategy:
    messages = db.messages
    return st.lists(
        st.sampled_from(messages).flatmap(
            lambda m: st.binary(min_size=m.length, max_size=m.length).map(
                lambda p, m=m: (m.frame_id, p)
            )
        ),
        min_size=1,
        max_size=12,
    )


@pytest.mark.parametrize("path", PROJECT_DBC, ids=lambda p: p.name)
def test_project_dbc_decodes_like_cantools(path: Path) -> None:
    db, decoder = _compiled(str(path))
    assert set(decoder.unsupported) == _cantools_unsupported(db)

    @given(_payloads(db))
    def check(frames):
        _assert_matches_cantools(db, decoder, frames)

    check()


@pytest.mark.parametrize("name", [p.name for p in CORPUS_DBC])
def test_corpus_dbc_decodes_like_cantools(corpus_dir: Path, name: str) -> None:
    db, decoder = _compiled(str(corpus_dir / name))
    assert set(decoder.unsupported) == _cantools_unsupported(db)

    @given(_payloads(db))
    def check(frames):
        _assert_matches_cantools(db, decoder, frames)

    check()


def test_every_corpus_message_matches_cantools(corpus_dir: Path) -> None:
    """A fixed-seed sweep so that no message escapes the random sampling above."""
    rng = np.random.default_rng(20240611)
    decoded = undecodable = 0
    for path in [*sorted(corpus_dir.glob("*.dbc")), *PROJECT_DBC]:
        db, decoder = _compiled(str(path))
        frames = [
            (m.frame_id, rng.integers(0, 256, m.length, dtype=np.uint8).tobytes())
            for m in db.messages
            for _ in range(6)
        ]
        checked = _assert_matches_cantools(db, decoder, frames)
        decoded += checked
        undecodable += len(frames) - checked
    assert decoded > 5000
    assert undecodable < decoded / 4  # only frames with mux values the DBC does not define


def _signal_message(byte_order: str, start: int, length: int, signed: bool, scale: float):
    conversion = BaseConversion.factory(scale=scale, offset=0.5)
    signal = Signal("S", start, length, byte_order, signed, conversion=conversion)
    return signal, Message(0x10, "M", MAX_PAYLOAD, [signal], strict=False)


@st.composite
def _placed_signal(draw):
    """Any legal signal placement inside a 64-byte payload."""
    length = draw(st.integers(1, 64))
    byte_order = draw(st.sampled_from(["little_endian", "big_endian"]))
    if byte_order == "little_endian":
        start = draw(st.integers(0, MAX_PAYLOAD * 8 - length))
    else:
        # Motorola: count bits from the MSB of byte 0 (linear bit 0 = bit 7 of byte 0);
        # the DBC start bit names the field's MSB.
        first = draw(st.integers(0, MAX_PAYLOAD * 8 - length))
        start = first // 8 * 8 + 7 - first % 8
    return byte_order, start, length, draw(st.booleans()), draw(st.sampled_from([1, 0.1, 3.5]))


@given(_placed_signal(), st.data())
def test_any_signal_placement_round_trips_through_cantools(placed, data) -> None:
    byte_order, start, length, signed, scale = placed
    signal, message = _signal_message(byte_order, start, length, signed, scale)
    low, high = (-(2 ** (length - 1)), 2 ** (length - 1) - 1) if signed else (0, 2**length - 1)
    raw = data.draw(st.integers(low, high))
    payload = message.encode({"S": raw}, scaling=False, strict=False)
    table = SlotTable([[compile_signal(signal)]])
    frame = np.frombuffer(payload, np.uint8)[None, :]
    value = table.physical(frame, np.array([0]))[0, 0]
    assert value == pytest.approx(raw * scale + 0.5, rel=1e-12)


def test_float_signals_are_left_out_and_their_frames_counted_unknown() -> None:
    f = Signal("F", 0, 32, conversion=BaseConversion.factory(is_float=True))
    i = Signal("I", 32, 8)
    db = cantools.database.Database(
        [Message(0x20, "Floaty", 8, [f], strict=False), Message(0x21, "Plain", 8, [i])]
    )
    decoder = compile_decoder(db)
    assert "Floaty" in decoder.unsupported
    state = decoder.new_state()
    report = decoder.decode(_batch([(0x20, bytes(8)), (0x21, bytes(8)), (0x99, b"")]), state)
    assert report.unknown == 2
    assert report.accepted.sum() == 1
