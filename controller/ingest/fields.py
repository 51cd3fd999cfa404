"""A signal as a shift and mask of the payload read as one integer.

A DBC signal's bits are contiguous in the payload read little-endian (Intel) or read
big-endian (Motorola), so one shift and one mask give its raw value; the per-frame path and
the steady-batch path both decode from this form.
"""

from __future__ import annotations

from typing import NamedTuple

from controller.ingest.layout import SignalLayout


class Field(NamedTuple):
    """One signal as a shift and mask of the payload read as one integer."""

    big: bool  # Motorola: contiguous in the big-endian reading of the payload
    shift: int
    mask: int
    sign: int  # the sign bit of a signed signal, else 0
    scale: float
    offset: float

    def raw(self, little: int, big: int) -> int:
        return ((big if self.big else little) >> self.shift) & self.mask

    def physical(self, little: int, big: int) -> float:
        raw = ((big if self.big else little) >> self.shift) & self.mask
        if raw & self.sign:
            raw -= self.sign << 1
        return raw * self.scale + self.offset  # as float(raw) * scale + offset


def field_of(sig: SignalLayout, length: int) -> Field:
    """Little-endian signals are contiguous in the payload read little-endian, Motorola
    signals in the payload read big-endian; the segments say which and where."""
    bits = [
        (byte, rshift + k, lshift + k)
        for byte, rshift, mask, lshift in sig.segments
        for k in range(mask.bit_length())
    ]
    low = min(bits, key=lambda b: b[2])
    little = all(8 * byte + bit - lsb == 8 * low[0] + low[1] for byte, bit, lsb in bits)
    start = 8 * low[0] + low[1] if little else 8 * (length - 1 - low[0]) + low[1]
    if not little:
        assert all(8 * (length - 1 - byte) + bit - lsb == start for byte, bit, lsb in bits)
    sign = 1 << (sig.length - 1) if sig.signed else 0
    return Field(not little, start, (1 << sig.length) - 1, sign, sig.scale, sig.offset)
