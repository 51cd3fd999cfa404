"""Collect frames from a bus on python-can's reader thread, hand them to the core as a batch.

The reader thread only copies bytes into a preallocated array under a lock; the control loop
takes them out once per cycle. A failure inside the listener is kept and reported on the
control loop's thread instead of silently killing the reader (python-can issue #1039).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import can
import numpy as np

from controller.frames import MAX_PAYLOAD, FrameBatch

ERROR_BACKOFF_S = 0.01


class BatchingListener(can.Listener):
    """A `can.Listener` that accumulates received frames into arrays.

    Frames are stamped with ``clock`` (the control loop's monotonic clock) on reception, so
    staleness is judged on one time base whatever the interface puts in ``msg.timestamp``.
    """

    def __init__(
        self, bus: str, capacity: int = 4096, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.bus = bus
        self.clock = clock
        self.capacity = capacity
        self.dropped = 0
        self.errors = 0  # receive errors, cumulative
        self.last_drained = 0  # frames handed out by the last `drain`
        self.waiting = 0  # frames the last `drain` left for the next one
        self.error: BaseException | None = None
        self._lock = threading.Lock()
        self._reset_buffer()

    def _reset_buffer(self) -> None:
        self._ids = np.zeros(self.capacity, np.uint32)
        self._dlc = np.zeros(self.capacity, np.uint8)
        self._data = np.zeros((self.capacity, MAX_PAYLOAD), np.uint8)
        self._timestamps = np.zeros(self.capacity, np.float64)
        self._extended = np.zeros(self.capacity, bool)
        self._count = 0

    def on_message_received(self, msg: can.Message) -> None:
        if msg.is_error_frame or msg.is_remote_frame:
            return
        payload = bytes(msg.data[:MAX_PAYLOAD])
        with self._lock:
            i = self._count
            if i >= self.capacity:
                self.dropped += 1  # the core sees the gap as missing data: fail safe
                return
            self._ids[i] = msg.arbitration_id
            self._dlc[i] = len(payload)
            self._data[i, : len(payload)] = np.frombuffer(payload, np.uint8)
            self._timestamps[i] = self.clock()
            self._extended[i] = msg.is_extended_id
            self._count = i + 1

    def on_error(self, exc: Exception) -> None:
        """Reader-thread failure: kept for the control loop, which logs it once per outage.

        A lost transport raises on every read at once; python-can's notifier retries in a
        loop, so the reader thread backs off here instead of spinning a core that the
        control loop needs.
        """
        self.errors += 1
        self.error = exc
        time.sleep(ERROR_BACKOFF_S)

    def take_error(self) -> BaseException | None:
        """The reader thread's last failure, once; the control loop reports it."""
        error, self.error = self.error, None
        return error

    def drain(self, limit: int | None = None) -> FrameBatch:
        """Frames received since the last call, oldest first; at most ``limit`` of them, the
        rest wait (in order) for the next call, so a flood cannot stretch one cycle."""
        with self._lock:
            n = self._count
            k = n if limit is None else min(n, limit)
            batch = FrameBatch(
                ids=self._ids[:k].copy(),
                dlc=self._dlc[:k].copy(),
                data=self._data[:k].copy(),
                timestamps=self._timestamps[:k].copy(),
                extended=self._extended[:k].copy(),
                bus_names=(self.bus,),
            )
            for array in (self._ids, self._dlc, self._data, self._timestamps, self._extended):
                array[: n - k] = array[k:n]  # numpy copies overlapping slices safely
            self._count = n - k
        self.last_drained = k
        self.waiting = n - k
        return batch
