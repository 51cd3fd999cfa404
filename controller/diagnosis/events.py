"""One record type for every transition the controller reports, whatever raised it.

An `Event` is one diagnosis at one level changing state in one step, with every affected
element as one array: a bus loss at 100,000 cells is one event per level, not 100,000.
Building it and its log line costs a few array operations, whatever the element count.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from controller.adapters.base import Level

Kind = Literal["set", "cleared"]
MAX_RANGES = 8  # a log line names at most this many element ranges, then the count
_LEVEL_NAMES = {
    Level.OK: "info",
    Level.WARNING: "warning",
    Level.ALARM: "alarm",
    Level.FAULT: "fault",
}


@dataclass(frozen=True, eq=False)
class Event:
    """A diagnosis set or cleared; ``elements`` None for a pack- or device-level diagnosis."""

    time: float
    diagnosis: str  # catalogue ID
    level: Level  # OK for an informational record
    kind: Kind
    value: float = math.nan  # the worst value among the elements
    threshold: float | None = None
    elements: np.ndarray | None = None  # sorted int indices within ``element_kind``
    element_kind: str | None = None  # "cell", "sensor", "module", "source", "contactor", ...
    detail: str = ""

    @property
    def count(self) -> int:
        """Number of affected elements (0 for a pack- or device-level diagnosis)."""
        return 0 if self.elements is None else int(self.elements.size)

    def __str__(self) -> str:
        head = f"{self.diagnosis} {_LEVEL_NAMES[self.level]} {self.kind}"
        if self.elements is not None and self.element_kind is not None:
            head += f" {describe(self.element_kind, self.elements)}"
        parts = []
        if not math.isnan(self.value):
            limit = "" if self.threshold is None else f" (threshold {self.threshold:g})"
            parts.append(f"value {self.value:g}{limit}")
        if self.detail:
            parts.append(self.detail)
        return f"{head}: {', '.join(parts)}" if parts else head


def describe(kind: str, elements: np.ndarray) -> str:
    """``cells 0-11, 36-47 (24)``; one element reads ``cell 5``. Cost bounded by `MAX_RANGES`."""
    if elements.size == 1:
        return f"{kind} {int(elements[0])}"
    breaks = np.flatnonzero(np.diff(elements) != 1)
    starts = np.concatenate((elements[:1], elements[breaks[:MAX_RANGES] + 1]))
    ends = np.concatenate((elements[breaks[:MAX_RANGES]], elements[-1:]))
    shown = min(starts.size, MAX_RANGES)
    text = ", ".join(
        str(s) if s == e else f"{s}-{e}"
        for s, e in zip(starts[:shown].tolist(), ends[:shown].tolist(), strict=True)
    )
    if breaks.size >= MAX_RANGES:
        text += ", ..."
    return f"{kind}s {text} ({elements.size})"
