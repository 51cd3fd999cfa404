"""Collect frames from a bus on python-can's reader thread, hand them to the core as a batch.

The reader thread only keeps each received message with its reception time (one list append
under a lock, no copy); the control loop takes them out once per cycle and packs them into
the batch's arrays in one pass per array. A frame costs the reader about a microsecond, so a
full bus leaves the control loop's share of the interpreter lock alone. A failure inside the
listener is kept and reported on the control loop's thread instead of silently killing the
reader (python-can issue #1039).
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
    """A `can.Listener` that keeps received frames until the control loop drains them.

    Frames are stamped with ``clock`` (the control loop's monotonic clock) on reception, so
    staleness is judged on one time base whatever the interface puts in ``msg.timestamp``.
    At most ``capacity`` frames wait; beyond that they are dropped and counted.
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
        self._messages: list[can.Message] = []
        self._stamps: list[float] = []

    def on_message_received(self, msg: can.Message) -> None:
        if msg.is_error_frame or msg.is_remote_frame:
            return
        stamp = self.clock()
        with self._lock:
            if len(self._messages) >= self.capacity:
                self.dropped += 1  # the core sees the gap as missing data: fail safe
                return
            self._messages.append(msg)  # python-can hands every reader a message of its own
            self._stamps.append(stamp)

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
            n = len(self._messages)
            k = n if limit is None else min(n, limit)
            if k == n:
                messages, self._messages = self._messages, []
                stamps, self._stamps = self._stamps, []
            else:
                messages, self._messages = self._messages[:k], self._messages[k:]
                stamps, self._stamps = self._stamps[:k], self._stamps[k:]
        self.last_drained = k
        self.waiting = n - k
        return _packed(messages, stamps, self.bus)


def _packed(messages: list[can.Message], stamps: list[float], bus: str) -> FrameBatch:
    """The frames as arrays, one pass per array; payloads beyond their length are zero."""
    n = len(messages)
    if n == 0:
        return FrameBatch.empty()
    payload = b"".join([bytes(m.data[:MAX_PAYLOAD]).ljust(MAX_PAYLOAD, b"\0") for m in messages])
    return FrameBatch(
        ids=np.fromiter([m.arbitration_id for m in messages], np.uint32, n),
        dlc=np.fromiter([min(len(m.data), MAX_PAYLOAD) for m in messages], np.uint8, n),
        data=np.frombuffer(payload, np.uint8).reshape(n, MAX_PAYLOAD).copy(),
        timestamps=np.array(stamps, np.float64),
        extended=np.fromiter([m.is_extended_id for m in messages], bool, n),
        bus_names=(bus,),
    )
