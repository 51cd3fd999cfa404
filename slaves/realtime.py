"""Run a `PackSimulator` in real time on any python-can bus.

The step ending at virtual time ``(k + 1) * step`` runs once the monotonic clock has
reached ``start + (k + 1) * step``: the schedule is absolute, so it never drifts. A late
loop catches up by stepping back to back; if it falls more than ``max_lag_s`` behind
(a suspended process, an overloaded machine) it re-anchors instead of bursting frames.
Frames from the bus arrive on python-can's notifier thread and are handed to the
simulator on the stepping thread; a failure of the reader is raised there, not lost.
"""

from __future__ import annotations

import collections
import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import can

from slaves.simulator import PackSimulator

log = logging.getLogger(__name__)


class BusReceiveError(RuntimeError):
    """The bus reader thread failed; the run stops instead of simulating deaf modules."""


@dataclass
class RealtimeStats:
    steps: int = 0
    frames_sent: int = 0
    frames_received: int = 0
    send_errors: int = 0
    reanchors: int = 0
    max_lag_s: float = 0.0


class _Inbox(can.Listener):
    """Collects received frames on the reader thread; keeps the reader's failure."""

    def __init__(self) -> None:
        self._frames: collections.deque[can.Message] = collections.deque()
        self.error: BaseException | None = None

    def on_message_received(self, msg: can.Message) -> None:
        self._frames.append(msg)

    def on_error(self, exc: Exception) -> None:
        log.error("bus receive failed: %s", exc)
        self.error = exc

    def drain(self) -> list[can.Message]:
        out = []
        while self._frames:
            out.append(self._frames.popleft())
        return out


class RealtimeRunner:
    """Steps ``sim`` at a fixed period on ``bus``; the caller owns (and shuts down) the bus."""

    SEND_TIMEOUT_S = 0.005

    def __init__(
        self,
        sim: PackSimulator,
        bus: can.BusABC,
        step: float = 0.01,
        clock: Callable[[], float] = time.monotonic,
        on_second: Callable[[PackSimulator, RealtimeStats], None] | None = None,
        max_lag_s: float = 0.5,
    ) -> None:
        if not step > 0:
            raise ValueError(f"step: {step} must be positive")
        self.sim = sim
        self.bus = bus
        self.step = step
        self.clock = clock
        self.on_second = on_second
        self.max_lag_s = max_lag_s
        self.stats = RealtimeStats()
        self._stop = threading.Event()

    def stop(self, *_: object) -> None:
        """Ask the loop to end after the current step; safe from a signal handler."""
        self._stop.set()

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGINT, self.stop)
        signal.signal(signal.SIGTERM, self.stop)

    def run(self, duration: float | None = None) -> RealtimeStats:
        """Run until ``duration`` seconds have been simulated (forever if None) or stopped."""
        inbox = _Inbox()
        notifier = can.Notifier(self.bus, [inbox], timeout=0.05)
        steps_per_second = max(1, round(1.0 / self.step))
        total = None if duration is None else round(duration / self.step)
        anchor, k = self.clock(), 0
        try:
            while not self._stop.is_set() and (total is None or self.stats.steps < total):
                deadline = anchor + (k + 1) * self.step
                lag = self.clock() - deadline
                if lag < 0:
                    self._stop.wait(-lag)
                    continue
                if lag > self.max_lag_s:
                    self.stats.reanchors += 1
                    anchor = self.clock() - (k + 1) * self.step
                self.stats.max_lag_s = max(self.stats.max_lag_s, lag)
                if inbox.error is not None:
                    raise BusReceiveError(f"receiving from {self.bus}: {inbox.error}") from (
                        inbox.error
                    )
                received = inbox.drain()
                self.stats.frames_received += len(received)
                self.sim.receive(received)
                self._send(self.sim.step(self.step))
                k += 1
                self.stats.steps += 1
                if self.on_second is not None and self.stats.steps % steps_per_second == 0:
                    self.on_second(self.sim, self.stats)
        finally:
            notifier.stop()
        return self.stats

    def _send(self, frames: list[can.Message]) -> None:
        for msg in frames:
            try:
                self.bus.send(msg, timeout=self.SEND_TIMEOUT_S)
                self.stats.frames_sent += 1
            except can.CanError as exc:
                self.stats.send_errors += 1
                log.warning("send 0x%X failed: %s", msg.arbitration_id, exc)
