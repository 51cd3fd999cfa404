"""Bus plumbing shared by the HV-side plant devices: DBC access and cyclic schedules."""

from __future__ import annotations

import math
from functools import cache
from typing import Any

import can
import cantools

import dbc
from dbc import master_e2e


@cache
def master_database() -> cantools.database.can.Database:
    """``dbc/canbms_master.dbc``, loaded once."""
    return cantools.database.load_file(dbc.path("canbms_master.dbc"), strict=True)


@cache
def ivt_database() -> cantools.database.can.Database:
    """``dbc/ivt_s.dbc``, loaded once."""
    return cantools.database.load_file(dbc.path("ivt_s.dbc"), strict=True)


def encode(
    db: cantools.database.can.Database, frame_id: int, signals: dict[str, Any], t: float
) -> can.Message:
    """A classic 11-bit frame stamped ``t`` carrying ``signals`` encoded by cantools."""
    return can.Message(
        arbitration_id=frame_id,
        data=db.encode_message(frame_id, signals),
        timestamp=t,
        is_extended_id=False,
    )


def encode_sealed(
    db: cantools.database.can.Database,
    frame_id: int,
    signals: dict[str, Any],
    counter: int,
    t: float,
) -> can.Message:
    """A protected master frame: ``signals`` encoded, then the E2E Profile 11 header sealed."""
    msg = encode(db, frame_id, signals, t)
    msg.data = bytearray(master_e2e.seal(frame_id, msg.data, counter))
    return msg


class Cyclic:
    """Send instants ``start + n * period``, computed from ``n`` so they never drift.

    Devices are stepped at the end of each step (``step(t, dt)`` covers ``(t - dt, t]``).
    The schedule starts at the first step unless ``restart`` anchors it, and ``due(t)``
    returns every instant not yet sent up to ``t``: one frame per period whatever the step
    size, each stamped at its true instant.
    """

    EPS = 1e-9  # float slack so an instant equal to a step end is due in that step

    def __init__(self, period_s: float) -> None:
        if not math.isfinite(period_s) or period_s <= 0:
            raise ValueError(f"period_s: expected a number > 0, got {period_s!r}")
        self.period_s = period_s
        self._start: float | None = None
        self._n = 0

    def restart(self, start_s: float) -> None:
        """Next instant at ``start_s``, then every period."""
        self._start = start_s
        self._n = 0

    @property
    def next_instant(self) -> float:
        """The next send instant; minus infinity before the schedule has started."""
        return -math.inf if self._start is None else self._start + self._n * self.period_s

    def due(self, t: float) -> list[float]:
        if self._start is None:
            self.restart(t)
        out = []
        while (instant := self._start + self._n * self.period_s) <= t + self.EPS:
            out.append(instant)
            self._n += 1
        return out
