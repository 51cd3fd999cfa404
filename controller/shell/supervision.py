"""Live supervision of the control loop: lateness, cycle time, receive backlog, losses.

The runtime measures every cycle (`Cycle`) and hands it to a `Supervisor`, which adds it to
three tallies of the same counts: since the last health frame, since the last summary line,
and for the whole run. It turns the counts into the shell's diagnoses with hysteresis, so the
normal jitter of a loaded machine (an odd late wake-up) raises nothing: a diagnosis is set
when ``count`` events fall within ``window_ms`` and cleared after ``quiet_ms`` without one.
Lost data (frames dropped by a full receive buffer, store writes dropped) sets its diagnosis
at once. Time is whatever the runtime's clock says, so a fake clock drives all of it.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Literal

import numpy as np

from controller.adapters.base import Level
from controller.config.declare import setting
from controller.diagnosis.events import Event, Kind

LATE, OVERRUN, BACKLOG, STORE = "cycle_late", "cycle_overrun", "receive_backlog", "store_behind"


@dataclass(frozen=True, kw_only=True)
class SupervisionConfig:
    """How the shell judges its own control loop (diagnoses 920-923)."""

    late_ms: float = setting(
        5.0, ge=0.1, le=10_000.0, unit="ms",
        doc="a cycle that starts more than this after its deadline counts as late",
    )  # fmt: skip
    count: int = setting(
        5, ge=1, le=10_000,
        doc="late cycles, overruns or cycles leaving a backlog within window_ms that set "
        "cycle_late, cycle_overrun or receive_backlog",
    )  # fmt: skip
    window_ms: float = setting(
        1000.0, ge=10.0, le=3_600_000.0, unit="ms", doc="the window in which count events set"
    )
    quiet_ms: float = setting(
        10_000.0, ge=0.0, le=3_600_000.0, unit="ms",
        doc="a supervision diagnosis clears after this long without its event",
    )  # fmt: skip
    max_frames_per_cycle: int = setting(
        1024, ge=16, le=65_536,
        doc="frames one cycle takes from one bus at most; the rest waits for the next cycle, "
        "so a flood cannot stretch the step",
    )  # fmt: skip
    summary_every_s: float = setting(
        60.0, ge=1.0, le=86_400.0, unit="s",
        doc="period of the runtime summary line, logged only when something was lost, late "
        "or failed in it",
    )  # fmt: skip


@dataclass(frozen=True)
class Cycle:
    """One cycle as the runtime measured it; counts are of this cycle only."""

    deadline: float  # when it should have started
    began: float
    ended: float  # after its work, before waiting for the next deadline
    period: float
    taken: Mapping[str, int] = field(default_factory=dict)  # frames taken, per bus
    waiting: Mapping[str, int] = field(default_factory=dict)  # frames left for the next cycle
    dropped: Mapping[str, int] = field(default_factory=dict)  # frames a full buffer lost
    send_errors: int = 0
    failed: bool = False  # the step raised
    store_drops: int = 0  # store requests dropped or failed

    @property
    def lateness(self) -> float:
        return max(0.0, self.began - self.deadline)

    @property
    def overrun(self) -> bool:
        """It ended after the next deadline: the schedule skips a period."""
        return self.ended > self.deadline + self.period


@dataclass
class RuntimeStats:
    """Counts over a span of cycles (a health frame's period, a summary's, a run, all runs)."""

    cycles: int = 0
    late_cycles: int = 0
    overruns: int = 0
    max_cycle_s: float = 0.0
    max_lateness_s: float = 0.0
    max_backlog: int = 0  # most frames one cycle took from one bus
    dropped_frames: int = 0
    send_errors: int = 0
    step_errors: int = 0
    store_drops: int = 0

    def add(self, cycle: Cycle, late: bool) -> None:
        self.cycles += 1
        self.late_cycles += late
        self.overruns += cycle.overrun
        self.max_cycle_s = max(self.max_cycle_s, cycle.ended - cycle.began)
        self.max_lateness_s = max(self.max_lateness_s, cycle.lateness)
        self.max_backlog = max(self.max_backlog, *cycle.taken.values(), 0)
        self.dropped_frames += sum(cycle.dropped.values())
        self.send_errors += cycle.send_errors
        self.step_errors += cycle.failed
        self.store_drops += cycle.store_drops

    @property
    def troubled(self) -> bool:
        """Something was late, lost or failed (cycle time and backlog are always there)."""
        return any(
            (
                self.late_cycles,
                self.overruns,
                self.dropped_frames,
                self.send_errors,
                self.step_errors,
                self.store_drops,
            )
        )

    def merged(self, other: RuntimeStats) -> RuntimeStats:
        """Both spans as one: counts add up, maxima take the larger."""
        return RuntimeStats(
            **{
                f.name: max(getattr(self, f.name), getattr(other, f.name))
                if f.name.startswith("max_")
                else getattr(self, f.name) + getattr(other, f.name)
                for f in fields(self)
            }
        )

    def as_record(self) -> dict[str, float]:
        return {f.name: float(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_record(cls, record: Mapping[str, float]) -> RuntimeStats:
        """Counters a store holds, by any version: unknown names ignored, missing ones 0."""
        known = {f.name: f.type for f in fields(cls)}
        return cls(
            **{
                name: float(value) if known[name] in (float, "float") else int(value)
                for name, value in record.items()
                if name in known and math.isfinite(value)
            }
        )

    def summary(self) -> str:
        return (
            f"{self.cycles} cycles, {self.late_cycles} late (worst "
            f"{self.max_lateness_s * 1e3:.1f} ms), {self.overruns} overruns, longest cycle "
            f"{self.max_cycle_s * 1e3:.1f} ms, at most {self.max_backlog} frames per cycle "
            f"from one bus, {self.dropped_frames} frames dropped, {self.send_errors} send "
            f"errors, {self.step_errors} failed steps, {self.store_drops} store drops"
        )


class Hysteresis:
    """Set after ``count`` events within ``window`` seconds (or at once), cleared after
    ``quiet`` seconds without one."""

    def __init__(self, count: int, window: float, quiet: float) -> None:
        self.count, self.window, self.quiet = count, window, quiet
        self.active = False
        self._times: deque[float] = deque()
        self._last = -math.inf

    def update(self, now: float, event: bool, at_once: bool = False) -> Kind | None:
        if event:
            self._last = now
            self._times.append(now)
            while self._times[0] <= now - self.window:
                self._times.popleft()
            if not self.active and (at_once or len(self._times) >= self.count):
                self.active = True
                return "set"
        elif self.active and now - self._last >= self.quiet:
            self.active = False
            self._times.clear()
            return "cleared"
        return None


Span = Literal["frame", "summary"]


class Supervisor:
    """Judges each measured cycle; keeps the tallies the health frame, the summary line and
    the store read."""

    def __init__(
        self,
        config: SupervisionConfig,
        buses: tuple[str, ...],
        restored: RuntimeStats | None = None,
    ) -> None:
        self.config = config
        self.buses = buses
        self.restored = restored or RuntimeStats()  # every earlier run, from the store
        self.run = RuntimeStats()
        self._spans: dict[Span, RuntimeStats] = {"frame": RuntimeStats(), "summary": RuntimeStats()}
        n, window, quiet = config.count, config.window_ms / 1e3, config.quiet_ms / 1e3
        self._late = Hysteresis(n, window, quiet)
        self._overrun = Hysteresis(n, window, quiet)
        self._store = Hysteresis(n, window, quiet)
        self._backlog = {bus: Hysteresis(n, window, quiet) for bus in buses}
        self._summary_started: float | None = None

    @property
    def total(self) -> RuntimeStats:
        """This run and every earlier one: what the store keeps."""
        return self.restored.merged(self.run)

    def take(self, span: Span) -> RuntimeStats:
        """The tally since the last call for ``span``, and start a new one."""
        tally, self._spans[span] = self._spans[span], RuntimeStats()
        return tally

    def observe(self, cycle: Cycle) -> list[Event]:
        """Add ``cycle`` to the tallies; the diagnoses it sets or clears."""
        late_s = self.config.late_ms / 1e3
        late = cycle.lateness > late_s
        for tally in (self.run, *self._spans.values()):
            tally.add(cycle, late)
        now = cycle.began
        events = []
        if kind := self._late.update(now, late):
            detail = (
                f"{self.config.count} cycles started late within {self.config.window_ms:g} ms"
                if kind == "set"
                else f"none late for {self.config.quiet_ms:g} ms"
            )
            events.append(self._event(now, LATE, kind, cycle.lateness * 1e3, late_s * 1e3, detail))
        if kind := self._overrun.update(now, cycle.overrun):
            detail = (
                f"{self.config.count} cycles ended after the next deadline within "
                f"{self.config.window_ms:g} ms"
                if kind == "set"
                else f"none for {self.config.quiet_ms:g} ms"
            )
            past = (cycle.ended - cycle.deadline) * 1e3  # from its deadline to its end
            events.append(self._event(now, OVERRUN, kind, past, cycle.period * 1e3, detail))
        for index, bus in enumerate(self.buses):
            dropped, waiting = cycle.dropped.get(bus, 0), cycle.waiting.get(bus, 0)
            if kind := self._backlog[bus].update(now, bool(dropped or waiting), bool(dropped)):
                detail = (
                    f"{bus!r} {dropped} frames dropped, {waiting} waiting for the next cycle"
                    if kind == "set"
                    else f"{bus!r} keeps up again"
                )
                taken = float(cycle.taken.get(bus, 0))
                events.append(
                    self._event(
                        now, BACKLOG, kind, taken, self.config.max_frames_per_cycle, detail, index
                    )
                )
        if kind := self._store.update(now, cycle.store_drops > 0, at_once=True):
            detail = (
                f"{cycle.store_drops} writes dropped or failed"
                if kind == "set"
                else f"writing again for {self.config.quiet_ms:g} ms"
            )
            events.append(self._event(now, STORE, kind, math.nan, None, detail))
        return events

    def summary(self, now: float) -> str | None:
        """The summary line, when its period ended and something was late, lost or failed."""
        if self._summary_started is None:
            self._summary_started = now
        if now - self._summary_started < self.config.summary_every_s:
            return None
        self._summary_started = now
        tally = self.take("summary")
        if not tally.troubled:
            return None
        return f"runtime, last {self.config.summary_every_s:g} s: {tally.summary()}"

    @staticmethod
    def _event(
        now: float,
        diagnosis: str,
        kind: Kind,
        value: float,
        threshold: float | None,
        detail: str,
        bus: int | None = None,
    ) -> Event:
        return Event(
            now,
            diagnosis,
            Level.WARNING,
            kind,
            value=value,
            threshold=threshold,
            elements=None if bus is None else np.array([bus]),
            element_kind=None if bus is None else "bus",
            detail=detail,
        )
