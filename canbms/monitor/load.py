"""Bus load from the frames seen: frames per second and share of the bit rate.

Each frame counts with its worst-case length on the wire (classic CAN: header, data, CRC,
bit stuffing, interframe space; 29-bit IDs add the extended header). CAN FD frames are
counted at the nominal bit rate as well, an upper bound. The window is the last second of
frame timestamps.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

WINDOW_S = 1.0


def frame_bits(dlc: np.ndarray, extended: np.ndarray) -> np.ndarray:
    """Worst-case bits per frame, bit stuffing and the 3-bit interframe space included."""
    data = 8 * np.asarray(dlc, np.int64)
    head = np.where(extended, 64, 44)  # SOF .. EOF without data
    stuffable = np.where(extended, 54, 34) + data  # SOF .. CRC, where stuff bits may fall
    return data + head + (stuffable - 1) // 4 + 3


@dataclass(frozen=True)
class Load:
    frames_per_s: float
    percent: float | None  # None: bit rate unknown


class LoadMeter:
    """Frames of one bus over the last second; ``bitrate`` None gives no percentage."""

    def __init__(self, bitrate: int | None) -> None:
        self.bitrate = bitrate
        self._times = np.zeros(0)
        self._bits = np.zeros(0, np.int64)

    def add(self, timestamps: np.ndarray, dlc: np.ndarray, extended: np.ndarray) -> None:
        self._times = np.concatenate([self._times, np.asarray(timestamps, float)])
        self._bits = np.concatenate([self._bits, frame_bits(dlc, extended)])

    def load(self, now: float) -> Load:
        keep = self._times > now - WINDOW_S
        self._times, self._bits = self._times[keep], self._bits[keep]
        bits = float(self._bits.sum()) / WINDOW_S
        percent = None if not self.bitrate else 100.0 * bits / self.bitrate
        return Load(self._times.shape[0] / WINDOW_S, percent)
