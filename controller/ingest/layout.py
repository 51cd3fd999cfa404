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
    frame_id: int
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
        return MessageLayout(message.name, message.frame_id, message.length, None, (slot,))
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
    return MessageLayout(
        message.name, message.frame_id, message.length, layouts[muxes[0].name], slots
    )


class SlotTable:
    """K rows of up to S signals each, stacked so that N frames decode in one gather.

    Row ``k`` holds the signals of layout ``k`` in columns ``0..len-1``; unused columns
    have an all-zero mask and decode to ``0``.
    """

    def __init__(self, rows: Sequence[Sequence[SignalLayout]]) -> None:
        k = max(len(rows), 1)
        s = max((len(r) for r in rows), default=0) or 1
        j = max((len(sig.segments) for r in rows for sig in r), default=0) or 1
        self.width = s
        self.byte = np.zeros((k, s, j), np.intp)
        self.rshift = np.zeros((k, s, j), np.uint64)
        self.mask = np.zeros((k, s, j), np.uint64)
        self.lshift = np.zeros((k, s, j), np.uint64)
        self.sign = np.zeros((k, s), np.uint64)
        self.signed = np.zeros((k, s), bool)
        self.scale = np.ones((k, s), np.float64)
        self.offset = np.zeros((k, s), np.float64)
        for r, row in enumerate(rows):
            for c, sig in enumerate(row):
                for g, (byte, rshift, mask, lshift) in enumerate(sig.segments):
                    self.byte[r, c, g] = byte
                    self.rshift[r, c, g] = rshift
                    self.mask[r, c, g] = mask
                    self.lshift[r, c, g] = lshift
                if sig.signed:
                    self.signed[r, c] = True
                    self.sign[r, c] = 1 << (sig.length - 1)
                self.scale[r, c] = sig.scale
                self.offset[r, c] = sig.offset

    def raw(self, data: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Unsigned raw values ``(N, S)`` of frames ``data`` (N, 64) laid out as ``rows``."""
        n = data.shape[0]
        flat_index = self.byte[rows] + (np.arange(n, dtype=np.intp) * data.shape[1])[:, None, None]
        parts = data.reshape(-1)[flat_index].astype(np.uint64)
        parts >>= self.rshift[rows]
        parts &= self.mask[rows]
        parts <<= self.lshift[rows]
        return np.bitwise_or.reduce(parts, axis=2)

    def physical(self, data: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Scaled values ``(N, S)`` as float64: sign-extended raw * scale + offset."""
        raw = self.raw(data, rows)
        sign = self.sign[rows]
        # (raw ^ s) - s sign-extends a field whose sign bit is s, modulo 2**64.
        signed = ((raw ^ sign) - sign).view(np.int64).astype(np.float64)
        value = np.where(self.signed[rows], signed, raw.astype(np.float64))
        return value * self.scale[rows] + self.offset[rows]
