"""Frames of one simulated bus as arrays: what the slave modules send, before python-can.

A consumer in the same process (a benchmark, a decoder fed with arrays) reads the arrays and
never pays for one `can.Message` per frame; ``messages`` builds them for a bus.
"""

from __future__ import annotations

from typing import NamedTuple

import can
import numpy as np


class SlaveFrames(NamedTuple):
    """Frames in send order: ``data`` is ``(frames, width)`` uint8, row k valid to ``dlc[k]``."""

    stamps: np.ndarray  # (frames,) float64, virtual send instants
    ids: np.ndarray  # (frames,) int64 arbitration IDs
    dlc: np.ndarray  # (frames,) payload length in bytes
    data: np.ndarray  # (frames, width) uint8
    extended: bool  # 29-bit identifiers
    fd: bool  # CAN FD frames (with bit rate switch)

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    def messages(self) -> list[can.Message]:
        """The frames as python-can messages, in the same order."""
        extended, fd = self.extended, self.fd
        rows = self.data.tobytes()
        width = self.data.shape[1]
        return [
            can.Message(
                arbitration_id=frame_id,
                data=rows[k * width : k * width + length],
                timestamp=stamp,
                is_extended_id=extended,
                is_fd=fd,
                bitrate_switch=fd,
            )
            for k, (frame_id, length, stamp) in enumerate(
                zip(self.ids.tolist(), self.dlc.tolist(), self.stamps.tolist(), strict=True)
            )
        ]
