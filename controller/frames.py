"""Frames as the core sees them: a batch of received frames as arrays, and frames to send.

The core never touches python-can objects: the shell converts at the edge, so the same
core runs on a live bus, on a recorded log and under hypothesis.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
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
    0..64) are zero. ``bus`` is the index of the bus the frame came from. ``extended`` marks
    29-bit identifiers: an 11-bit frame 0x100 and a 29-bit frame 0x100 are different
    messages. Where it is not given, identifiers above 0x7FF are taken as 29-bit (they cannot
    be anything else) and the others as 11-bit.
    """

    ids: np.ndarray  # (N,) uint32
    dlc: np.ndarray  # (N,) uint8, payload length in bytes
    data: np.ndarray  # (N, 64) uint8
    timestamps: np.ndarray  # (N,) float64, seconds
    bus: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint8))  # (N,) uint8
    extended: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))  # (N,) bool

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
    def from_messages(cls, messages: Sequence[_MessageLike], bus: int = 0) -> FrameBatch:
        """Pack python-can messages (or anything shaped like them) into arrays."""
        n = len(messages)
        if n == 0:
            return cls.empty()
        payload = b"".join(bytes(m.data[:MAX_PAYLOAD]).ljust(MAX_PAYLOAD, b"\0") for m in messages)
        return cls(
            ids=np.fromiter((m.arbitration_id for m in messages), np.uint32, n),
            dlc=np.fromiter((min(len(m.data), MAX_PAYLOAD) for m in messages), np.uint8, n),
            data=np.frombuffer(payload, np.uint8).reshape(n, MAX_PAYLOAD).copy(),
            timestamps=np.fromiter((m.timestamp for m in messages), np.float64, n),
            bus=np.full(n, bus, np.uint8),
            extended=np.fromiter((m.is_extended_id for m in messages), bool, n),
        )

    @classmethod
    def concatenate(cls, batches: Iterable[FrameBatch]) -> FrameBatch:
        parts = [b for b in batches if len(b)]
        if not parts:
            return cls.empty()
        return cls(
            ids=np.concatenate([b.ids for b in parts]),
            dlc=np.concatenate([b.dlc for b in parts]),
            data=np.concatenate([b.data for b in parts]),
            timestamps=np.concatenate([b.timestamps for b in parts]),
            bus=np.concatenate([b.bus for b in parts]),
            extended=np.concatenate([b.extended for b in parts]),
        )

    def select(self, mask: np.ndarray) -> FrameBatch:
        """The frames where ``mask`` is true (or at the given indices)."""
        return FrameBatch(
            ids=self.ids[mask],
            dlc=self.dlc[mask],
            data=self.data[mask],
            timestamps=self.timestamps[mask],
            bus=self.bus[mask],
            extended=self.extended[mask],
        )


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
