"""Run the controller core at a fixed period on real buses.

The loop keeps an absolute schedule (``next += period``) on a monotonic clock so it never
drifts; a cycle that ends after the next deadline counts as an overrun and the schedule skips
ahead rather than bursting to catch up. Every cycle is measured (lateness, cycle time, frames
taken per bus, losses) and judged live by a `Supervisor`; the counts go out on the vehicle
bus as BMS_RuntimeHealth and into the store. A cycle takes at most
``max_frames_per_cycle`` frames from each bus, and sends the core's frames in the order the
core gives them (ContactorCommand first), so a receive flood cannot stretch the step ahead
of the contactor command; a changed contactor command goes out as soon as the core decided
it, before the rest of the step (`SplitCore`). On SIGINT/SIGTERM the core is asked for a
safe stop (limits to zero, contactors open) and stepped until it reports standby or a
timeout passes, then the buses are closed.
"""

from __future__ import annotations

import gc
import importlib
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import can
import numpy as np

from controller.adapters.base import Level
from controller.diagnosis.events import Event, Kind
from controller.frames import FrameBatch, OutFrame
from controller.persisted import Persisted
from controller.shell.health_frame import HealthFrame
from controller.shell.receiver import BatchingListener
from controller.shell.reconnect import Reconnector, retire
from controller.shell.store import StoreWriter
from controller.shell.supervision import Cycle, RuntimeStats, SupervisionConfig, Supervisor
from controller.shell.systemd import Notifier

log = logging.getLogger(__name__)
SWITCH_SHARE = 0.05  # the interpreter's thread switch interval, as a share of the period
SOC_STEP_PERCENT = 0.2  # SOC movement (points) that is stored at once, whatever the period
# Modules NumPy imports on the first call of a function the core uses (np.median imports
# numpy.ma): a cycle that judged temperature plausibility for the first time spent 20-30 ms
# importing. They are imported before the loop instead.
LAZY_IMPORTS = ("numpy.ma",)


def import_lazy_modules() -> None:
    """Import now what a cycle would otherwise import on first use (`LAZY_IMPORTS`)."""
    for name in LAZY_IMPORTS:
        importlib.import_module(name)


class Core(Protocol):
    """What the runtime needs from the controller core."""

    def step(self, state: Any, batch: FrameBatch, now: float) -> Any: ...

    def request_shutdown(self, state: Any) -> Any: ...

    def is_safe(self, state: Any) -> bool: ...

    def fail_safe_frames(self, state: Any) -> tuple[OutFrame, ...]: ...

    def persisted(self, state: Any) -> Persisted: ...

    def persisted_summary(self, state: Any) -> Persisted: ...


@runtime_checkable
class SplitCore(Protocol):
    """A core whose step comes in two halves (`controller.core.Controller.judge` and
    ``finish``): the runtime sends the first half's ``urgent`` frames (a changed contactor
    command) before it runs the second, so an open command does not wait for state
    estimation, limits and stages. ``finish`` returns them again at the head of its frames."""

    def judge(self, state: Any, batch: FrameBatch, now: float) -> Any: ...

    def finish(self, judged: Any) -> Any: ...


class Runtime:
    """Owns the buses, the clock and the signals; the core owns every decision.

    ``buses`` maps the configured bus names to open python-can buses; frames are read and
    sent by those names. ``listeners`` adds python-can listeners per bus name to the one
    notifier that reads that bus. A step that raises is a defect, but the process is a safety
    device: it is logged, the core is asked for its safe stop and its fail-safe frames
    (contactors open, zero limits) are sent on every bus, and the loop goes on.
    """

    def __init__(
        self,
        core: Core,
        state: Any,
        buses: Mapping[str, can.BusABC],
        period: float = 0.01,
        clock: Callable[[], float] = time.monotonic,
        on_step: Callable[[Any, float], None] | None = None,
        listeners: Mapping[str, Sequence[can.Listener]] | None = None,
        writer: StoreWriter | None = None,
        persist_every: float = 5.0,
        service: Notifier | None = None,
        reconnector: Reconnector | None = None,
        supervision: SupervisionConfig | None = None,
        health: HealthFrame | None = None,
        restored_stats: RuntimeStats | None = None,
    ) -> None:
        self.core = core
        self.state = state
        self.buses = dict(buses)
        self.period = period
        self.clock = clock
        self.on_step = on_step
        self.supervision = supervision or SupervisionConfig()
        self.supervisor = Supervisor(self.supervision, tuple(self.buses), restored_stats)
        self.health = health
        self._health_due = clock() + (health.period if health is not None else 0.0)
        self._store_losses = 0  # writer drops and errors seen so far
        self._unbuilt = 0  # records the core failed to build, cumulative
        self._unbuilt_since: float | None = None
        self._stop = threading.Event()
        self.writer = writer
        self.service = service or Notifier()
        self._ready = False
        self.persist_every = persist_every
        self._persisted: Persisted | None = None
        self._persisted_at = -float("inf")
        self._failing: set[str] = set()  # buses whose reader reports errors
        self._send_failing: set[str] = set()  # buses whose last send failed
        self.reconnector = reconnector
        self._listeners = [BatchingListener(name, clock=clock) for name in self.buses]
        self._readers = {
            name: [listener, *(listeners or {}).get(name, ())]
            for name, listener in zip(self.buses, self._listeners, strict=True)
        }
        self._dropped = dict.fromkeys(self.buses, 0)  # each receiver's drops seen so far
        self._notifiers = {
            name: can.Notifier(bus, self._readers[name], timeout=0.05)
            for name, bus in self.buses.items()
        }

    @property
    def stats(self) -> RuntimeStats:
        """This run's counts (`supervisor.total` adds the earlier runs from the store)."""
        return self.supervisor.run

    def stop(self, *_: object) -> None:
        """Ask the loop to stop safely; safe to call from a signal handler."""
        self._stop.set()

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGINT, self.stop)
        signal.signal(signal.SIGTERM, self.stop)

    def run(self, duration: float | None = None, shutdown_timeout: float = 3.0) -> RuntimeStats:
        import_lazy_modules()
        # Start-up objects (databases, compiled tables) are frozen out of the collector: a
        # full collection over them paused a cycle by 40-110 ms on a loaded machine.
        gc.collect()
        gc.freeze()
        # The loop shares the interpreter with the bus reader threads: at Python's default
        # 5 ms switch interval a cycle waited up to that long for a reader to hand over, and
        # a 90 % loaded bus overran the 10 ms period 2-9 times in 30 s (0-2 at 0.5 ms).
        switch = sys.getswitchinterval()
        sys.setswitchinterval(min(switch, self.period * SWITCH_SHARE))
        start = due = self.clock()
        try:
            while not self._stop.is_set():
                if duration is not None and self.clock() - start >= duration:
                    break
                ended = self._cycle(due)
                due = self._wait(due + self.period, ended)
            self._safe_stop(shutdown_timeout)
        finally:
            sys.setswitchinterval(switch)
            self.close()
        return self.stats

    def _cycle(self, deadline: float) -> float:
        """One cycle that was due at ``deadline``; returns when its work ended."""
        began = self.clock()
        limit = self.supervision.max_frames_per_cycle
        batch = FrameBatch.concatenate(listener.drain(limit) for listener in self._listeners)
        for listener in self._listeners:
            self._watch_receive(listener)
        self._reconnect(began)
        send_errors = 0
        failed = False
        events: tuple[Event, ...] = ()
        sent = 0  # frames of the step already sent
        try:
            if isinstance(self.core, SplitCore):
                judged = self.core.judge(self.state, batch, began)
                sent = len(judged.urgent)
                send_errors += self._send(judged.urgent)
                result = self.core.finish(judged)
            else:
                result = self.core.step(self.state, batch, began)
        except Exception:  # noqa: BLE001 - the loop must outlive a defect in a step
            failed = True
            log.exception("step failed: stopping safely, contactors open, limits zero")
            self.state = self.core.request_shutdown(self.state)
            send_errors += self._send(self.core.fail_safe_frames(self.state))
        else:
            self.state = result.state
            send_errors += self._send(result.frames[sent:])  # in the core's order
            events = result.events
            self.service.notify("WATCHDOG=1" if self._ready else "READY=1")
            self._ready = True
            for line in map(str, events):
                log.warning("%s", line)
        if self.health is not None and began >= self._health_due:
            send_errors += self._send((self.health.encode(self.supervisor.take("frame")),))
            skipped = int((began - self._health_due) / self.health.period)
            self._health_due += (skipped + 1) * self.health.period
        if self.on_step is not None:
            self.on_step(self.state, began)
        ended = self.clock()
        cycle = self._measured(deadline, began, ended, send_errors, failed)
        judged = self.supervisor.observe(cycle)
        for event in judged:
            log.warning("%s", event)
        if not failed:
            self._persist((*events, *judged), began)
        elif self.writer is not None and judged:
            self.writer.submit(None, tuple(judged))  # the history, without the failed state
        if (line := self.supervisor.summary(began)) is not None:
            log.warning("%s", line)
        return ended

    def _measured(
        self, deadline: float, began: float, ended: float, send_errors: int, failed: bool
    ) -> Cycle:
        dropped = {}
        for listener in self._listeners:
            dropped[listener.bus] = listener.dropped - self._dropped[listener.bus]
            self._dropped[listener.bus] = listener.dropped
        losses = (
            0 if self.writer is None else self.writer.dropped + self.writer.errors + self._unbuilt
        )
        store_drops, self._store_losses = losses - self._store_losses, losses
        return Cycle(
            deadline,
            began,
            ended,
            self.period,
            taken={listener.bus: listener.last_drained for listener in self._listeners},
            waiting={listener.bus: listener.waiting for listener in self._listeners},
            dropped=dropped,
            send_errors=send_errors,
            failed=failed,
            store_drops=store_drops,
        )

    def _persist(self, events: tuple[Event, ...], now: float, force: bool = False) -> None:
        """Hand the store the events, and the persisted state when a latch changed, when the
        SOC became known or its lowest, highest or mean cell moved by ``SOC_STEP_PERCENT``
        since it was stored, and at least
        every ``persist_every`` seconds; the writer thread does the disk work. So a kill at
        any instant loses no latch and less than that step of SOC."""
        if self.writer is None:
            return
        try:
            summary = self.core.persisted_summary(self.state)
            if force or self._worth_storing(summary, now):
                persisted = self.core.persisted(self.state)
                self._persisted, self._persisted_at = summary, now
                self.writer.submit(persisted, events, self.supervisor.total.as_record())
                self._unbuilt_since = None
                return
        except Exception:  # noqa: BLE001 - a defect in building the record stops no cycle
            self._unbuilt += 1  # counted with the store's losses: store_behind
            if self._unbuilt_since is None:  # the traceback once per outage, not every cycle
                self._unbuilt_since = now
                log.exception("building the state record failed: the last stored one stays")
        if events:
            self.writer.submit(None, events)

    def _worth_storing(self, summary: Persisted, now: float) -> bool:
        last = self._persisted
        if last is None or summary.latched != last.latched:
            return True
        if summary.soc_known != last.soc_known:
            return True
        moved = summary.soc_known and any(
            abs(a - b) >= SOC_STEP_PERCENT
            for a, b in (
                (summary.soc_min, last.soc_min),
                (summary.soc_max, last.soc_max),
                (summary.soc_mean, last.soc_mean),
            )
        )
        return moved or now - self._persisted_at >= self.persist_every

    def _watch_receive(self, listener: BatchingListener) -> None:
        """A receive outage is one diagnosis, set when it starts and cleared when frames flow
        again, not a line per error."""
        error = listener.take_error()
        name = listener.bus
        if error is not None and name not in self._failing:
            self._failing.add(name)
            self._report(
                "bus_receive_error", "set", name, f"receive failed: {error}; its data goes stale"
            )
        elif error is None and name in self._failing and listener.last_drained:
            self._failing.discard(name)
            if self.reconnector is not None:
                self.reconnector.forget(name)
            self._report(
                "bus_receive_error",
                "cleared",
                name,
                f"receives again after {listener.errors} errors",
            )

    def _reconnect(self, now: float) -> None:
        """Take over the buses reopened since the last cycle; ask for the ones still failing."""
        if self.reconnector is None:
            return
        for name, bus in self.reconnector.ready():
            # the old reader ends within one failing read (about 10 ms); what it reported
            # is about the old bus, so it is dropped before the new one starts reading
            self._notifiers[name].stop(timeout=0.1)
            self._readers[name][0].take_error()
            retire(self.buses[name])
            self.buses[name] = bus
            self._notifiers[name] = can.Notifier(bus, self._readers[name], timeout=0.05)
            log.warning("bus %r reopened", name)
            if name in self._send_failing:
                self._send_failing.discard(name)
                self._report("bus_send_error", "cleared", name, "reopened")
        for name in self._failing | self._send_failing:
            self.reconnector.poke(name, now)

    def _report(self, diagnosis: str, kind: Kind, bus: str, detail: str) -> None:
        """A bus diagnosis of the shell, logged as the core's events are."""
        event = Event(
            self.clock(),
            diagnosis,
            Level.WARNING,
            kind,
            elements=np.array([list(self.buses).index(bus)]),
            element_kind="bus",
            detail=f"{bus!r} {detail}",
        )
        (log.error if kind == "set" else log.warning)("%s", event)

    def _wait(self, deadline: float, now: float) -> float:
        """Wait for ``deadline``, the next cycle's due time. When it already passed at
        ``now`` (an overrun), the next cycle runs at once for the latest deadline that
        passed; the ones before it are skipped, so the loop never bursts to catch up."""
        if now > deadline:
            return deadline + int((now - deadline) / self.period) * self.period
        self._stop.wait(deadline - self.clock())
        return deadline

    def _send(self, frames: tuple[OutFrame, ...] | list[OutFrame]) -> int:
        """Send in the given order; the frames that could not be sent, counted.

        After a failure on a bus the rest of its frames in this call are not tried: a bus
        that is off or whose queue is full would cost a timeout per frame, every cycle."""
        errors = 0
        failed: set[str] = set()
        for frame in frames:
            bus = self.buses.get(frame.bus)
            if bus is None:
                continue
            if frame.bus in failed:
                errors += 1
                continue
            msg = can.Message(
                arbitration_id=frame.arbitration_id,
                data=frame.data,
                is_extended_id=frame.is_extended_id,
                is_fd=frame.is_fd,
            )
            try:
                bus.send(msg, timeout=0.005)
            except (can.CanError, OSError, ValueError) as exc:  # a lost adapter, a full queue
                errors += 1
                failed.add(frame.bus)
                if frame.bus not in self._send_failing:
                    self._send_failing.add(frame.bus)
                    self._report("bus_send_error", "set", frame.bus, f"send failed: {exc}")
            else:
                if frame.bus in self._send_failing:
                    self._send_failing.discard(frame.bus)
                    self._report("bus_send_error", "cleared", frame.bus, "sends again")
        return errors

    def _safe_stop(self, timeout: float) -> None:
        log.info("stopping: limits to zero, opening contactors")
        self.service.notify("STOPPING=1")
        self.state = self.core.request_shutdown(self.state)
        end = self.clock() + timeout
        while self.clock() < end:
            self._cycle(self.clock())
            if self.core.is_safe(self.state):
                return
            time.sleep(self.period)
        log.error("contactors not confirmed open within %.1f s of the stop request", timeout)

    def close(self) -> None:
        for notifier in self._notifiers.values():
            notifier.stop()
        if self.writer is not None:
            self._persist((), self.clock(), force=True)
            self.writer.finish()
        for bus in self.buses.values():
            bus.shutdown()
        log.info("runtime stopped: %s", self.stats.summary())
