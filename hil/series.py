"""What a run looked like from the controller's side, step by step, for a plot.

`Series.add` takes the ``(now, StepResult)`` of each controller step, whether it came from a
replayed log or from a scenario of the simulated pack, and keeps the quantities an engineer
reads a run by: the cell-voltage envelope, current against the limits, SOC, temperatures,
the contactor state, every warning, alarm and fault the controller reported and the fault
resets it accepted.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from controller.adapters.base import Level
from controller.core import StepResult

RESET = "fault_reset_accepted"  # the one informational event a reader of a run needs


@dataclass(frozen=True)
class Marked:
    """A diagnosis the controller set or cleared at ``time``, at ``level``."""

    time: float
    level: Level
    kind: str
    diagnosis: str
    text: str


@dataclass
class Series:
    time: list[float] = field(default_factory=list)
    cell_min: list[float] = field(default_factory=list)
    cell_mean: list[float] = field(default_factory=list)
    cell_max: list[float] = field(default_factory=list)
    current: list[float] = field(default_factory=list)  # A, + charges
    ccl: list[float] = field(default_factory=list)
    dcl: list[float] = field(default_factory=list)
    soc: list[float] = field(default_factory=list)  # %, NaN while unknown
    temp_min: list[float] = field(default_factory=list)
    temp_mean: list[float] = field(default_factory=list)
    temp_max: list[float] = field(default_factory=list)
    contactors: list[str] = field(default_factory=list)
    marks: list[Marked] = field(default_factory=list)

    def add(self, now: float, result: StepResult) -> None:
        state, view = result.state, result.view
        v, t = view.voltage_stats, view.temperature_stats
        self.time.append(now)
        self.cell_min.append(v.minimum)
        self.cell_mean.append(v.mean)
        self.cell_max.append(v.maximum)
        self.current.append(view.current.value if view.current.valid else np.nan)
        self.ccl.append(state.published.ccl)
        self.dcl.append(state.published.dcl)
        self.soc.append(state.soc.pack if state.soc.valid else np.nan)
        self.temp_min.append(t.minimum)
        self.temp_mean.append(t.mean)
        self.temp_max.append(t.maximum)
        self.contactors.append(state.contactors.state.name)
        self.marks += [
            Marked(now, e.level, e.kind, e.diagnosis, str(e))
            for e in result.events
            if e.level >= Level.WARNING or e.diagnosis == RESET
        ]

    def array(self, name: str) -> np.ndarray:
        return np.asarray(getattr(self, name), float)

    def closed_spans(self) -> list[tuple[float, float, str]]:
        """Stretches with the contactors closed: (from, to, ``discharge``/``charge``)."""
        spans: list[tuple[float, float, str]] = []
        start, mode = 0.0, ""
        for now, name in zip(self.time, self.contactors, strict=True):
            closed = name.removeprefix("CLOSED_").lower() if name.startswith("CLOSED_") else ""
            if closed != mode:
                if mode:
                    spans.append((start, now, mode))
                start, mode = now, closed
        if mode and self.time:
            spans.append((start, self.time[-1], mode))
        return spans
