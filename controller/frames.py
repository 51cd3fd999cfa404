"""Frames as the core sees them: a batch of received frames as arrays, and frames to send.

The core never touches python-can objects: the shell converts at the edge, so the same
core runs on a live bus, on a recorded log and under hypothesis.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

import numpy as np

MAX_PAYLOAD = 64
EXTENDED_FLAG = 0x8000_0000  # set in a frame key for 29-bit identifiers


class _MessageLike(Protocol):
    arbitration_id: int
    data: bytes | bytearray
    timestamp: float
    is_extended_id: bool


@dataclass(frozen=True)
class FrameBatch:
    """Frames received since the last step, in arrival order.

    ``data`` is ``(N, 64)`` uint8; bytes beyond ``dlc`` (the payload length in bytes,
    0..64) are zero. Each frame names the bus it came from: ``bus`` indexes ``bus_names``,
    which the batch carries itself, so whoever builds a batch and whoever reads it share
    names, never positions (`on` selects one bus). ``extended`` marks 29-bit identifiers: an
    11-bit frame 0x100 and a 29-bit frame 0x100 are different messages. Where it is not
    given, identifiers above 0x7FF are taken as 29-bit (they cannot be anything else) and the
    others as 11-bit.
    """

    ids: np.ndarray  # (N,) uint32
    dlc: np.ndarray  # (N,) uint8, payload length in bytes
    data: np.ndarray  # (N, 64) uint8
    timestamps: np.ndarray  # (N,) float64, seconds
    bus: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint8))  # (N,) uint8
    extended: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))  # (N,) bool
    bus_names: tuple[str, ...] = ()  # name of each value of ``bus``

    def __post_init__(self) -> None:
        if self.bus.shape[0] != self.ids.shape[0]:
            object.__setattr__(self, "bus", np.zeros(self.ids.shape[0], np.uint8))
        if self.extended.shape[0] != self.ids.shape[0]:
            object.__setattr__(self, "extended", self.ids > 0x7FF)

    @property
    def keys(self) -> np.ndarray:
        """Identifier plus `EXTENDED_FLAG` for 29-bit frames: what decoders look up."""
        return self.ids.astype(np.uint32) | np.where(self.extended, EXTENDED_FLAG, 0).astype(
            np.uint32
        )

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    @classmethod
    def empty(cls) -> FrameBatch:
        return cls(
            ids=np.zeros(0, np.uint32),
            dlc=np.zeros(0, np.uint8),
            data=np.zeros((0, MAX_PAYLOAD), np.uint8),
            timestamps=np.zeros(0, np.float64),
        )

    @classmethod
    def from_messages(cls, messages: Sequence[_MessageLike], bus: str) -> FrameBatch:
        """Pack python-can messages (or anything shaped like them) from the bus named ``bus``."""
        n = len(messages)
        if n == 0:
            return cls.empty()
        payload = b"".join(bytes(m.data[:MAX_PAYLOAD]).ljust(MAX_PAYLOAD, b"\0") for m in messages)
        return cls(
            ids=np.fromiter((m.arbitration_id for m in messages), np.uint32, n),
            dlc=np.fromiter((min(len(m.data), MAX_PAYLOAD) for m in messages), np.uint8, n),
            data=np.frombuffer(payload, np.uint8).reshape(n, MAX_PAYLOAD).copy(),
            timestamps=np.fromiter((m.timestamp for m in messages), np.float64, n),
            extended=np.fromiter((m.is_extended_id for m in messages), bool, n),
            bus_names=(bus,),
        )

    @classmethod
    def concatenate(cls, batches: Iterable[FrameBatch]) -> FrameBatch:
        """One batch of several, in order; bus names are merged, never positions."""
        parts = [b for b in batches if len(b)]
        if not parts:
            return cls.empty()
        names = tuple(dict.fromkeys(name for b in parts for name in b.bus_names))
        if len(names) > 255:
            raise ValueError("a batch carries at most 255 buses")
        index = {name: i for i, name in enumerate(names)}
        buses = [
            np.array([index[n] for n in b.bus_names], np.uint8)[b.bus] if b.bus_names else b.bus
            for b in parts
        ]
        return cls(
            ids=np.concatenate([b.ids for b in parts]),
            dlc=np.concatenate([b.dlc for b in parts]),
            data=np.concatenate([b.data for b in parts]),
            timestamps=np.concatenate([b.timestamps for b in parts]),
            bus=np.concatenate(buses),
            extended=np.concatenate([b.extended for b in parts]),
            bus_names=names,
        )

    def select(self, mask: np.ndarray | slice) -> FrameBatch:
        """The frames where ``mask`` is true (or at the given indices, or in a slice)."""
        if isinstance(mask, slice):
            mask = np.arange(len(self))[mask]
        index = np.asarray(mask)
        if index.dtype == bool:
            index = np.flatnonzero(index)
        return FrameBatch(
            ids=self.ids.take(index),
            dlc=self.dlc.take(index),
            data=self.data.take(index, axis=0),
            timestamps=self.timestamps.take(index),
            bus=self.bus.take(index),
            extended=self.extended.take(index),
            bus_names=self.bus_names,
        )

    def on(self, bus: str) -> FrameBatch:
        """The frames received on the bus named ``bus`` (none when the batch has no such bus)."""
        if bus not in self.bus_names:
            return self.select(np.zeros(0, np.intp))
        if len(self.bus_names) == 1:
            return self
        index = np.flatnonzero(self.bus == self.bus_names.index(bus))
        return self if index.size == len(self) else self.select(index)

    def restamped(self, timestamps: np.ndarray) -> FrameBatch:
        """The same frames with other reception times (virtual time, replay)."""
        return replace(self, timestamps=timestamps)


def frame_key(arbitration_id: int, is_extended: bool) -> int:
    """The key of one message, as `FrameBatch.keys` gives it for received frames."""
    return arbitration_id | (EXTENDED_FLAG if is_extended else 0)


@dataclass(frozen=True)
class OutFrame:
    """A frame the core wants sent; ``bus`` names the configured bus role."""

    arbitration_id: int
    data: bytes
    bus: str
    is_extended_id: bool = False
    is_fd: bool = False
