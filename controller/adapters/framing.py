"""Helpers shared by the output adapters: DBC-backed encoding and periodic schedules.

What an encoder must not do is let one out-of-range value (a NaN from an invalid measurement,
a current beyond the field) raise inside the control step. `FrameEncoder` therefore converts
physical values to raw integers itself, saturating at the field limits.

The controller sends frames every cycle, and cantools' ``Message.encode`` checks its
arguments and walks its codec on every call. So each encoder learns the place of every field
from cantools once, at construction (`RawPacker`: the bits each signal sets when cantools
encodes it alone), and then packs raw values as a few integer shifts. A message the packer
cannot reproduce exactly (floats, multiplexing) and any value cantools would refuse go
through ``Message.encode`` itself, so the DBC and cantools stay the contract.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Collection, Mapping
from pathlib import Path

import cantools

from controller.errors import MappingError
from controller.frames import OutFrame


def load_dbc(path: Path) -> cantools.database.can.Database:
    """Load a DBC once, at adapter construction."""
    try:
        return cantools.database.load_file(str(path), strict=True)
    except (OSError, cantools.database.UnsupportedDatabaseFormatError) as exc:
        raise MappingError(f"cannot load {path}: {exc}") from exc


class RawPacker:
    """Packs raw signal values of one DBC message as cantools does, in integer operations.

    ``fields`` maps each signal to ``(big_endian, shift, mask, low, high)``: the signal's bits are
    contiguous in the payload read as one little-endian integer (Intel signals) or one
    big-endian integer (Motorola signals); ``low..high`` are the raw values cantools'
    strict encoding accepts without looking at value tables. Everything is read off
    ``Message.encode`` at construction and checked against it before use.
    """

    def __init__(self, message: cantools.database.can.Message) -> None:
        self.message = message
        self.length = message.length
        self.fields: dict[str, tuple[bool, int, int, int, int]] = {}
        self.compiled = not message.is_multiplexed() and all(
            not s.is_float and not s.is_multiplexer and s.multiplexer_ids is None
            for s in message.signals
        )
        if self.compiled:
            try:
                self.compiled = self._learn() and self._agrees()
            except (ValueError, OverflowError, cantools.database.EncodeError):
                self.compiled = False  # a layout cantools itself cannot encode: leave it to it

    def _encoded(self, raw: Mapping[str, int]) -> tuple[int, int]:
        data = self.message.encode(
            {s.name: raw.get(s.name, 0) for s in self.message.signals},
            scaling=False,
            padding=False,
            strict=False,
        )
        return int.from_bytes(data, "little"), int.from_bytes(data, "big")

    def _learn(self) -> bool:
        for signal in self.message.signals:
            mask = (1 << signal.length) - 1
            ones = -1 if signal.is_signed else mask
            big = signal.byte_order == "big_endian"
            little_ones, big_ones = self._encoded({signal.name: ones})
            placed = big_ones if big else little_ones
            shift = (placed & -placed).bit_length() - 1
            lowest = self._encoded({signal.name: 1})[1 if big else 0]
            if placed != mask << shift or lowest != 1 << shift:
                return False
            low, high = _strict_range(signal)
            self.fields[signal.name] = (big, shift, mask, low, high)
        return True

    def _agrees(self) -> bool:
        """Random raw values packed both ways give the same bytes."""
        draw = random.Random(self.message.frame_id)
        for _ in range(8):
            raw = {}
            for signal in self.message.signals:
                bits = signal.length - 1 if signal.is_signed else signal.length
                value = draw.getrandbits(bits)
                raw[signal.name] = -value if signal.is_signed and draw.random() < 0.5 else value
            little, _ = self._encoded(raw)
            if self._pack(raw) != little.to_bytes(self.length, "little"):
                return False
        return True

    def _pack(self, raw: Mapping[str, int]) -> bytes:
        little = big = 0
        fields = self.fields
        for name, value in raw.items():
            is_big, shift, mask, _, _ = fields[name]
            if is_big:
                big |= (value & mask) << shift
            else:
                little |= (value & mask) << shift
        if big:
            little |= int.from_bytes(big.to_bytes(self.length, "big"), "little")
        return little.to_bytes(self.length, "little")

    def pack(self, raw: Mapping[str, int]) -> bytes:
        """``Message.encode(raw, scaling=False, padding=False, strict=True)``, fast where the
        message and the values allow it; it raises where cantools does."""
        if self.compiled and len(raw) == len(self.fields):
            fields = self.fields
            for name, value in raw.items():
                field = fields.get(name)
                if field is None or type(value) is not int or not field[3] <= value <= field[4]:
                    break
            else:
                return self._pack(raw)
        return bytes(self.message.encode(dict(raw), scaling=False, padding=False, strict=True))


def _strict_range(signal: cantools.database.can.Signal) -> tuple[int, int]:
    """The raw values whose scaled value cantools' strict encoding accepts (the DBC minimum
    and maximum with its tolerance); others, and values in a value table, go to cantools."""
    if signal.is_signed:
        low, high = -(1 << (signal.length - 1)), (1 << (signal.length - 1)) - 1
    else:
        low, high = 0, (1 << signal.length) - 1
    conversion = signal.conversion
    if conversion.scale <= 0:
        return 0, -1  # a falling scale is rare enough to leave to cantools
    tolerance = abs(conversion.scale) * 1e-6
    minimum, maximum = signal.minimum, signal.maximum

    def scaled(raw: int) -> float:  # compared exactly as cantools compares it
        return conversion.raw_to_scaled(raw, decode_choices=False)

    first = _boundary(low, high, lambda r: minimum is None or scaled(r) >= minimum - tolerance)
    after = _boundary(low, high, lambda r: maximum is not None and scaled(r) > maximum + tolerance)
    return first, after - 1


def _boundary(low: int, high: int, reached: Callable[[int], bool]) -> int:
    """The first raw value of ``low..high`` where ``reached`` holds (``high + 1`` if none);
    ``reached`` turns from false to true once along rising raw values."""
    lo, hi = low, high + 1
    while lo < hi:
        mid = (lo + hi) // 2
        if reached(mid):
            hi = mid
        else:
            lo = mid + 1
    return lo


class FrameEncoder:
    """Encodes one DBC message from physical values; every field saturates at its limits."""

    def __init__(self, message: cantools.database.can.Message, bus: str) -> None:
        self.message = message
        self.packer = RawPacker(message)
        self.bus = bus
        self.frame_id = message.frame_id
        self.is_extended = message.is_extended_frame
        self._fields: dict[str, tuple[float, float, int, int]] = {}
        for signal in message.signals:
            if signal.is_signed:
                lo, hi = -(1 << (signal.length - 1)), (1 << (signal.length - 1)) - 1
            else:
                lo, hi = 0, (1 << signal.length) - 1
            self._fields[signal.name] = (float(signal.scale), float(signal.offset), lo, hi)

    @classmethod
    def of(cls, db: cantools.database.can.Database, frame_id: int, bus: str) -> FrameEncoder:
        try:
            return cls(db.get_message_by_frame_id(frame_id), bus)
        except KeyError as exc:
            raise MappingError(f"message 0x{frame_id:X} is not in the DBC") from exc

    def raw(self, name: str, value: float, down: bool = False) -> int:
        """Raw field value of a physical value: rounded (or rounded down), saturated,
        non-finite -> physical 0."""
        scale, offset, lo, hi = self._fields[name]
        if not math.isfinite(value):
            value = 0.0
        # saturate before dividing: a huge physical value would overflow to inf
        value = min(max(value, lo * scale + offset), hi * scale + offset)
        exact = (value - offset) / scale
        raw = math.floor(exact + 1e-9) if down else round(exact)
        return min(max(raw, lo), hi)

    def encode(self, values: Mapping[str, float], round_down: Collection[str] = ()) -> OutFrame:
        """The frame carrying ``values`` (physical units); unnamed fields are sent as raw 0.

        Fields named in ``round_down`` never exceed the value: a current limit rounded to the
        nearest step could allow more than the BMS does."""
        raw = dict.fromkeys(self._fields, 0)
        for name, value in values.items():
            raw[name] = self.raw(name, value, down=name in round_down)
        return OutFrame(
            self.frame_id, self.packer.pack(raw), self.bus, is_extended_id=self.is_extended
        )

    def encode_raw(self, values: Mapping[str, int]) -> OutFrame:
        """The frame carrying raw integer fields (flags, ASCII, enumerations)."""
        raw = dict.fromkeys(self._fields, 0)
        raw.update(values)
        return OutFrame(
            self.frame_id, self.packer.pack(raw), self.bus, is_extended_id=self.is_extended
        )


def schedule(
    next_due: Mapping[int, float],
    periods: Mapping[int, float],
    now: float,
    force: Collection[int] = (),
) -> tuple[tuple[int, ...], dict[int, float]]:
    """Which keys are due at ``now`` and the next due times.

    The schedule is absolute (``next += period``) so it does not drift with the step period,
    but a late step never bursts: a key more than one period late restarts from ``now``.
    Keys in ``force`` are sent at once and restart their period from ``now``.
    """
    due: list[int] = []
    updated: dict[int, float] = {}
    for key, period in periods.items():
        when = next_due.get(key)
        if key in force or when is None or now >= when:
            due.append(key)
            nxt = when + period if when is not None and key not in force else now + period
            updated[key] = nxt if nxt > now else now + period
        else:
            updated[key] = when
    return tuple(due), updated


def ascii_field(text: str, width: int = 8) -> int:
    """``text`` as a little-endian integer of ``width`` ASCII bytes, space padded, byte 0 first."""
    data = text.encode("ascii", errors="replace")[:width].ljust(width, b" ")
    return int.from_bytes(data, "little")
