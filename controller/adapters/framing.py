"""Helpers shared by the output adapters: DBC-backed encoding and periodic schedules.

Adapters send a few frames per second, so cantools' ``encode`` is fast enough; what they must
not do is let one out-of-range value (a NaN from an invalid measurement, a current beyond the
field) raise inside the control step. `FrameEncoder` therefore converts physical values to raw
integers itself, saturating at the field limits, and hands cantools only raw values.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
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


class FrameEncoder:
    """Encodes one DBC message from physical values; every field saturates at its limits."""

    def __init__(self, message: cantools.database.can.Message, bus: str) -> None:
        self.message = message
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
        raw = {name: 0 for name in self._fields}
        for name, value in values.items():
            raw[name] = self.raw(name, value, down=name in round_down)
        data = self.message.encode(raw, scaling=False, padding=False, strict=True)
        return OutFrame(self.frame_id, bytes(data), self.bus, is_extended_id=self.is_extended)

    def encode_raw(self, values: Mapping[str, int]) -> OutFrame:
        """The frame carrying raw integer fields (flags, ASCII, enumerations)."""
        raw = {name: 0 for name in self._fields}
        raw.update(values)
        data = self.message.encode(raw, scaling=False, padding=False, strict=True)
        return OutFrame(self.frame_id, bytes(data), self.bus, is_extended_id=self.is_extended)


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
