"""DBC signals compiled into byte segments, decoded for many frames and signals at once.

A signal of up to 64 bits touches at most 9 payload bytes. For each touched byte it takes
a run of adjacent bits, so the raw value is ``sum(((byte >> rshift) & mask) << lshift)``
over those segments, whatever the byte order or start bit. Stacking the segments of many
signals into ``(K, S, J)`` tables (K layouts of S signals of J segments) lets one fancy
gather decode every frame of a batch against its own layout, with no per-frame or
per-signal Python code.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from cantools.database.can import Message, Signal

from controller.errors import MappingError
from controller.frames import frame_key
from dbc.masks import every, positions

MAX_SEGMENTS = 9  # 64 bits spread over 9 bytes when not byte-aligned
MAX_PAYLOAD = 64


@dataclass(frozen=True)
class SignalLayout:
    """Where one signal's bits sit and how its raw value becomes a physical one."""

    name: str
    length: int
    signed: bool
    scale: float
    offset: float
    segments: tuple[tuple[int, int, int, int], ...]  # (byte, rshift, mask, lshift)


def bit_positions(start: int, length: int, byte_order: str) -> list[tuple[int, int]]:
    """(byte, bit in byte) of raw bits 0 (LSB) .. length-1, in DBC bit numbering."""
    if byte_order == "little_endian":
        return [((start + i) // 8, (start + i) % 8) for i in range(length)]
    # Motorola: start is the MSB; walk towards the LSB in the DBC "sawtooth" order.
    positions = []
    pos = start
    for _ in range(length):
        positions.append((pos // 8, pos % 8))
        pos = pos + 15 if pos % 8 == 0 else pos - 1
    return positions[::-1]


def segments_of(start: int, length: int, byte_order: str) -> tuple[tuple[int, int, int, int], ...]:
    """Group a signal's bits into one (byte, rshift, mask, lshift) run per byte."""
    runs: dict[int, list[int]] = {}  # byte -> [lowest bit in byte, lowest raw bit, count]
    for raw_bit, (byte, bit) in enumerate(bit_positions(start, length, byte_order)):
        run = runs.setdefault(byte, [bit, raw_bit, 0])
        run[0] = min(run[0], bit)
        run[1] = min(run[1], raw_bit)
        run[2] += 1
    return tuple(
        (byte, low_bit, (1 << count) - 1, low_raw)
        for byte, (low_bit, low_raw, count) in sorted(runs.items())
    )


def compile_signal(signal: Signal, where: str = "") -> SignalLayout:
    """Byte segments and scaling of a cantools signal; float signals are not supported."""
    name = f"{where}.{signal.name}" if where else signal.name
    if signal.is_float:
        raise MappingError(f"{name}: IEEE float signals are not supported")
    if not 1 <= signal.length <= 64:
        raise MappingError(f"{name}: length {signal.length} is outside 1..64 bits")
    segments = segments_of(signal.start, signal.length, signal.byte_order)
    if any(byte < 0 or byte >= MAX_PAYLOAD for byte, *_ in segments):
        raise MappingError(f"{name}: bits lie outside a {MAX_PAYLOAD}-byte payload")
    return SignalLayout(
        name=signal.name,
        length=signal.length,
        signed=bool(signal.is_signed),
        scale=float(signal.scale),
        offset=float(signal.offset),
        segments=segments,
    )


@dataclass(frozen=True)
class Slot:
    """The signals one frame carries: a message, or one mux value of a multiplexed message."""

    mux_value: int | None
    signals: tuple[SignalLayout, ...]


@dataclass(frozen=True)
class MessageLayout:
    """A compiled message: its multiplexer (if any) and one slot per mux value."""

    name: str
    frame_id: int  # with `EXTENDED_FLAG` for 29-bit messages, as `FrameBatch.keys`
    length: int
    mux: SignalLayout | None
    slots: tuple[Slot, ...]


def compile_message(message: Message) -> MessageLayout:
    """Compile every signal of ``message``; one level of multiplexing is supported.

    As in cantools, a signal whose multiplexer is not a signal of the message is never
    decoded, and a value named in the multiplexer's choices is a (possibly empty) slot.
    """
    muxes = [s for s in message.signals if s.is_multiplexer]
    if len(muxes) > 1 or any(s.multiplexer_signal is not None for s in muxes):
        raise MappingError(f"{message.name}: nested or multiple multiplexers are not supported")
    layouts = {s.name: compile_signal(s, message.name) for s in message.signals}
    for sig in layouts.values():
        if max(byte for byte, *_ in sig.segments) >= message.length:
            raise MappingError(
                f"{message.name}.{sig.name}: bits lie beyond the {message.length}-byte payload"
            )
    root = tuple(layouts[s.name] for s in message.signals if s.multiplexer_signal is None)
    if not muxes:
        slot = Slot(None, root)
        return MessageLayout(message.name, _key(message), message.length, None, (slot,))
    children = [s for s in message.signals if s.multiplexer_signal == muxes[0].name]
    values = sorted(
        {v for s in children for v in (s.multiplexer_ids or ())}
        | {int(v) for v in (muxes[0].choices or {})}
    )
    if values and not 0 <= values[0] <= values[-1] < 2**32:
        raise MappingError(f"{message.name}: multiplexer values must lie in 0..2**32-1")
    slots = tuple(
        Slot(
            value,
            root + tuple(layouts[s.name] for s in children if value in (s.multiplexer_ids or ())),
        )
        for value in values
    )
    return MessageLayout(message.name, _key(message), message.length, layouts[muxes[0].name], slots)


class _Family:
    """One distinct row layout: S signals of J segments, decoded with broadcast tables."""

    def __init__(self, row: Sequence[SignalLayout]) -> None:
        s = len(row)
        j = max((len(sig.segments) for sig in row), default=1)
        self.width = s
        self.byte = np.zeros((s, j), np.intp)
        self.rshift = np.zeros((s, j), np.uint64)
        self.mask = np.zeros((s, j), np.uint64)
        self.lshift = np.zeros((s, j), np.uint64)
        for c, sig in enumerate(row):
            for g, (byte, rshift, mask, lshift) in enumerate(sig.segments):
                self.byte[c, g] = byte
                self.rshift[c, g] = rshift
                self.mask[c, g] = mask
                self.lshift[c, g] = lshift
        self.signed = np.array([sig.signed for sig in row], bool)
        self.sign = np.array([1 << (sig.length - 1) if sig.signed else 0 for sig in row], np.uint64)
        self.scale = np.array([sig.scale for sig in row], np.float64)
        self.offset = np.array([sig.offset for sig in row], np.float64)
        self.any_signed = bool(self.signed.any())
        self.shifts_right = bool(self.rshift.any())
        self.single = j == 1  # one byte per signal: no shifting left, no OR reduction
        self.identity = bool((self.scale == 1).all() and (self.offset == 0).all())

    def raw(self, data: np.ndarray) -> np.ndarray:
        parts = data[:, self.byte].astype(np.uint64)  # (N, S, J)
        if self.shifts_right:
            parts >>= self.rshift
        parts &= self.mask
        if self.single:
            return parts[:, :, 0]
        parts <<= self.lshift
        return np.bitwise_or.reduce(parts, axis=2)

    def physical(self, data: np.ndarray) -> np.ndarray:
        raw = self.raw(data)
        value = raw.astype(np.float64)
        if self.any_signed:
            # (raw ^ s) - s sign-extends a field whose sign bit is s, modulo 2**64.
            signed = ((raw ^ self.sign) - self.sign).view(np.int64).astype(np.float64)
            value = np.where(self.signed, signed, value)
        return value if self.identity else value * self.scale + self.offset


class SlotTable:
    """K rows (layouts) of up to S signals each, decoded for N frames at once.

    Rows with identical layouts share one family (e.g. every cell-voltage frame of every
    module), and each family decodes all its frames with one gather. The per-batch loop
    runs over the families present, which the DBC bounds, never over frames or modules.
    Columns beyond a row's signals decode to 0.
    """

    def __init__(self, rows: Sequence[Sequence[SignalLayout]]) -> None:
        families: dict[tuple, int] = {}
        examples: list[Sequence[SignalLayout]] = []
        for row in rows:
            if families.setdefault(_shape_key(row), len(families)) == len(examples):
                examples.append(row)
        self.rows = tuple(tuple(row) for row in rows)
        self._families = [_Family(row) for row in examples]
        self._family = np.array([families[_shape_key(row)] for row in rows] or [0], np.intp)
        self.width = max((len(r) for r in rows), default=0) or 1

    def _split(self, rows: np.ndarray) -> list[tuple[_Family, np.ndarray | None]]:
        """(family, positions in ``rows``) for every family present; None means all rows."""
        if rows.size == 0:
            return []
        family = self._family[rows]
        first = family[0]
        if family.size == 1 or every(family == first):
            return [(self._families[first], None)]
        order = np.argsort(family, kind="stable")
        sorted_family = family[order]
        bounds = [0, *(positions(sorted_family[1:] != sorted_family[:-1]) + 1).tolist(), order.size]
        parts = [order[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
        return [(self._families[family[part[0]]], part) for part in parts]

    def _decode(self, data: np.ndarray, rows: np.ndarray, dtype: type, physical: bool):
        split = self._split(rows)
        if len(split) == 1 and split[0][1] is None and split[0][0].width == self.width:
            family = split[0][0]  # the usual small batch: one layout, no copy into ``out``
            return family.physical(data) if physical else family.raw(data)
        out = np.zeros((rows.shape[0], self.width), dtype)
        for family, part in split:
            where = slice(None) if part is None else part
            frames = data if part is None else data[part]
            out[where, : family.width] = family.physical(frames) if physical else family.raw(frames)
        return out

    def raw(self, data: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Unsigned raw values ``(N, S)`` of frames ``data`` (N, 64) laid out as ``rows``."""
        return self._decode(data, rows, np.uint64, physical=False)

    def physical(self, data: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Scaled values ``(N, S)`` as float64: sign-extended raw * scale + offset."""
        return self._decode(data, rows, np.float64, physical=True)


def _shape_key(row: Sequence[SignalLayout]) -> tuple:
    """What decoding depends on: segments, signedness and scaling, not names."""
    return tuple((s.segments, s.length, s.signed, s.scale, s.offset) for s in row)


def _key(message: Message) -> int:
    return frame_key(message.frame_id, message.is_extended_frame)
