"""Vectorised packing of little-endian DBC signals: many frames of one layout at once.

A `Packer` is compiled once from cantools signals (start bit, length, scale, offset,
signedness); ``pack`` then turns a ``(frames, signals)`` matrix of raw values into a
``(frames, length)`` byte matrix with a few whole-array shifts and ORs, instead of one
cantools ``encode_message`` call per frame. cantools stays the reference: the tests decode
every packed frame with it. A value and the 1-bit flag right above it (`joined`) pack as one
column, half the columns for the cell and sensor slots.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from cantools.database.can import Signal


def signal_key(signal: Signal) -> tuple[int, int, float, float, bool]:
    """What fixes a signal's bits: equal keys pack identically."""
    return (
        signal.start,
        signal.length,
        float(signal.scale),
        float(signal.offset),
        signal.is_signed,
    )


class Field(NamedTuple):
    """The bits of one packed column (a little-endian cantools signal has the same fields)."""

    name: str
    start: int
    length: int
    is_signed: bool = False
    scale: float = 1.0
    offset: float = 0.0
    byte_order: str = "little_endian"


def joined(value: Signal | Field, flag: Signal | Field) -> Field:
    """A value and the 1-bit flag right above it as one unsigned field: its raw value is
    ``(value_raw & value_mask) | flag << value.length``, one column to pack instead of two."""
    if flag.length != 1 or flag.start != value.start + value.length:
        raise ValueError(f"{flag.name}: not a 1-bit flag right above {value.name}")
    return Field(f"{value.name}+{flag.name}", value.start, value.length + 1)


class Packer:
    """Packs raw values of ``signals`` (in that column order) into ``length``-byte payloads."""

    def __init__(self, signals: Sequence[Signal | Field], length: int) -> None:
        for s in signals:
            if s.byte_order != "little_endian":
                raise ValueError(f"{s.name}: only little-endian signals can be packed")
            if s.start + s.length > 8 * length:
                raise ValueError(f"{s.name}: does not fit in {length} bytes")
        self.names = [s.name for s in signals]
        self.length = length
        self.scale = np.array([float(s.scale) for s in signals])
        self.offset = np.array([float(s.offset) for s in signals])
        bits = np.array([s.length for s in signals], np.int64)
        signed = np.array([s.is_signed for s in signals])
        self.raw_min = np.where(signed, -(1 << (bits - 1)), 0)
        self.raw_max = np.where(signed, (1 << (bits - 1)) - 1, (1 << bits) - 1)
        self._mask = ((1 << bits) - 1).astype(np.uint64)
        # Each value is shifted into the 64-bit little-endian word its start bit falls in and
        # ORed there; a value that runs past the end of its word spills into the next one.
        start = np.array([s.start for s in signals], np.int64)
        word = start // 64
        order = np.argsort(word, kind="stable")
        self._order = None if np.array_equal(order, np.arange(order.size)) else order
        self._words = -(-length // 8)
        self._word_ids, self._segments = np.unique(word[order], return_index=True)
        shift = (start % 64)[order]
        self._shift = shift.astype(np.uint64)
        spills = shift + bits[order] > 64
        self._spill = np.flatnonzero(spills)
        self._spill_word = word[order][spills] + 1
        self._spill_shift = (64 - shift[spills]).astype(np.uint64)

    def column(self, name: str) -> int:
        return self.names.index(name)

    def to_raw(self, physical: np.ndarray, columns: np.ndarray | slice | int) -> np.ndarray:
        """Round physical values of ``columns`` to raw integers, saturating at the range."""
        raw = np.rint((physical - self.offset[columns]) / self.scale[columns])
        raw = np.minimum(np.maximum(raw, self.raw_min[columns]), self.raw_max[columns])
        return raw.astype(np.int64)

    def pack(self, raw: np.ndarray) -> np.ndarray:
        """``(frames, signals)`` raw integers -> ``(frames, length)`` uint8 payloads."""
        values = np.ascontiguousarray(raw, np.int64).view(np.uint64) & self._mask
        if self._order is not None:
            values = values[:, self._order]
        words = np.zeros((values.shape[0], self._words), np.uint64)
        placed = values << self._shift
        words[:, self._word_ids] = np.bitwise_or.reduceat(placed, self._segments, axis=1)
        if self._spill.size:
            words[:, self._spill_word] |= values[:, self._spill] >> self._spill_shift
        payload = words.astype("<u8", copy=False).view(np.uint8)
        if payload.shape[1] == self.length:
            return payload
        return np.ascontiguousarray(payload[:, : self.length])
