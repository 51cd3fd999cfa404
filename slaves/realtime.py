"""Run a `PackSimulator` or a `SimulatedSystem` in real time on python-can buses.

The step ending at virtual time ``(k + 1) * step`` runs once the monotonic clock has
reached ``start + (k + 1) * step``: the schedule is absolute, so it never drifts. A late
loop catches up by stepping back to back; if it falls more than ``max_lag_s`` behind
(a suspended process, an overloaded machine) it re-anchors instead of bursting frames.
Frames from the bus arrive on python-can's notifier thread and are handed to the
simulator on the stepping thread; a failure of the reader is raised there, not lost.
A pack simulator runs on one bus; a system runs on one bus per role (``internal``,
``vehicle``), each with its own reader.
"""

from __future__ import annotations

import collections
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import can

from slaves.simulator import PackSimulator
from slaves.system import INTERNAL

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


class Simulation(Protocol):
    """What the runner steps: frames out and in per bus role (``SimulatedSystem``)."""

    def step(self, dt: float) -> dict[str, list[can.Message]]: ...

    def receive(self, role: str, messages: Iterable[can.Message]) -> None: ...


class _PackOnBus:
    """A pack simulator seen as a simulation with one bus, the internal one."""

    def __init__(self, sim: PackSimulator) -> None:
        self.sim = sim

    def step(self, dt: float) -> dict[str, list[can.Message]]:
        return {INTERNAL: self.sim.step(dt)}

    def receive(self, role: str, messages: Iterable[can.Message]) -> None:
        self.sim.receive(messages)


class RealtimeRunner:
    """Steps ``sim`` at a fixed period on its buses; the caller owns (and shuts down) them.

    ``bus`` is one bus for a `PackSimulator`, or a mapping of role to bus for a
    simulation with several (every role it sends on needs a bus).
    """

    SEND_TIMEOUT_S = 0.005

    def __init__(
        self,
        sim: PackSimulator | Simulation,
        bus: can.BusABC | Mapping[str, can.BusABC],
        step: float = 0.01,
        clock: Callable[[], float] = time.monotonic,
        on_second: Callable[[Any, RealtimeStats], None] | None = None,
        max_lag_s: float = 0.5,
    ) -> None:
        if not step > 0:
            raise ValueError(f"step: {step} must be positive")
        self.sim = sim
        self._stepped: Simulation = _PackOnBus(sim) if isinstance(sim, PackSimulator) else sim
        self.buses = {INTERNAL: bus} if isinstance(bus, can.BusABC) else dict(bus)
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
        inboxes = {role: _Inbox() for role in self.buses}
        notifiers = [
            can.Notifier(bus, [inboxes[role]], timeout=0.05) for role, bus in self.buses.items()
        ]
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
                for role, inbox in inboxes.items():
                    if inbox.error is not None:
                        raise BusReceiveError(
                            f"receiving from {self.buses[role]}: {inbox.error}"
                        ) from inbox.error
                    received = inbox.drain()
                    self.stats.frames_received += len(received)
                    self._stepped.receive(role, received)
                self._send(self._stepped.step(self.step))
                k += 1
                self.stats.steps += 1
                if self.on_second is not None and self.stats.steps % steps_per_second == 0:
                    self.on_second(self.sim, self.stats)
        finally:
            for notifier in notifiers:
                notifier.stop()
        return self.stats

    def _send(self, frames: dict[str, list[can.Message]]) -> None:
        for role, messages in frames.items():
            bus = self.buses.get(role)
            if bus is None:
                if messages:
                    raise ValueError(f"no bus for role {role!r} (buses: {sorted(self.buses)})")
                continue
            for msg in messages:
                try:
                    bus.send(msg, timeout=self.SEND_TIMEOUT_S)
                    self.stats.frames_sent += 1
                except can.CanError as exc:
                    self.stats.send_errors += 1
                    log.warning("send 0x%X on %s failed: %s", msg.arbitration_id, role, exc)
