"""Ingest diagnoses per source from the decoder's cumulative counters: a pure function.

``source_silent``: no frame of a source accepted for the set delay (a source never heard
counts from the first step). It clears once frames are accepted again for the clear delay.
``e2e_reject_rate``: the share of a source's frames rejected between two steps (CRC, alive
counter, DLC, unknown multiplexer) above the threshold, held for the set delay; it clears
after the share stayed at or below it for the clear delay. A step without frames from a
source keeps that source's last verdict. Both are debounced like protection levels, over
every source at once.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from controller.diagnosis.catalogue import Catalogue, Diagnosis
from controller.diagnosis.events import Event, Kind
from controller.ingest.mapping import DEFAULT_SOURCE
from controller.protection.debounce import DebounceState, Timing, advance

SILENT = "source_silent"
REJECTS = "e2e_reject_rate"
NAMES_SHOWN = 3  # sources named in an event's detail, then the count


@dataclass(frozen=True)
class IngestDiagnosisState:
    """Counters seen at the last step and the debounce of both diagnoses, per source."""

    time_us: int | None
    started: float | None
    accepted: np.ndarray  # (sources,) int64, cumulative at the last step
    rejected: np.ndarray  # (sources,) int64, cumulative over every reason
    over_rate: np.ndarray  # (sources,) bool, last judged verdict of the reject rate
    silent: DebounceState
    rejects: DebounceState

    @classmethod
    def initial(cls, sources: int) -> IngestDiagnosisState:
        return cls(
            time_us=None,
            started=None,
            accepted=np.zeros(sources, np.int64),
            rejected=np.zeros(sources, np.int64),
            over_rate=np.zeros(sources, bool),
            silent=_dense(sources),
            rejects=_dense(sources),
        )


@functools.lru_cache(maxsize=8)
def _expected(sources: tuple[str, ...]) -> np.ndarray:
    """The sources that owe frames: all but the catch-all for frames no rule names."""
    return np.array([name != DEFAULT_SOURCE for name in sources], bool)


def diagnose(
    state: IngestDiagnosisState,
    sources: tuple[str, ...],
    accepted: np.ndarray,
    rejected: np.ndarray,
    last_seen: np.ndarray,
    now: float,
    catalogue: Catalogue,
) -> tuple[IngestDiagnosisState, tuple[Event, ...]]:
    """Advance both diagnoses to ``now`` from the decoder's counters (`IngestState` fields).

    ``rejected`` is (sources, reasons); ``last_seen`` the time of each source's last
    accepted frame (-inf before the first).
    """
    now_us = round(now * 1_000_000)
    if state.time_us is not None:
        now_us = max(now_us, state.time_us)
    dt_us = 0 if state.time_us is None else now_us - state.time_us
    started = now if state.started is None else state.started
    total_rejected = rejected.sum(axis=1)
    events: list[Event] = []

    silent_d = catalogue[SILENT]
    silent, over_rate, rejects = state.silent, state.over_rate, state.rejects
    if silent_d.enabled:
        age = now - np.maximum(last_seen, started)
        quiet = age * 1000.0 >= silent_d.set_delay_ms - 1e-6  # the age is the set delay
        quiet &= _expected(sources)
        silent, found = _judge(silent_d, 0.0, state.silent, quiet, ~quiet, dt_us, now, age, sources)
        events += found

    rate_d = catalogue[REJECTS]
    if rate_d.enabled:
        new_rejects = total_rejected - state.rejected
        frames = accepted - state.accepted + new_rejects
        seen = frames > 0
        rate = new_rejects / np.maximum(frames, 1)
        threshold = rate_d.threshold if rate_d.threshold is not None else 0.0
        over_rate = np.where(seen, rate > threshold, state.over_rate)
        rejects, found = _judge(
            rate_d,
            rate_d.set_delay_ms,
            state.rejects,
            over_rate,
            ~over_rate,
            dt_us,
            now,
            rate,
            sources,
        )
        events += found

    new = IngestDiagnosisState(
        time_us=now_us,
        started=started,
        accepted=accepted.copy(),
        rejected=total_rejected,
        over_rate=over_rate,
        silent=silent,
        rejects=rejects,
    )
    return new, tuple(events)


def _dense(sources: int) -> DebounceState:
    """One level over every source (a few hundred at most, so no sparse layout)."""
    empty = DebounceState.empty(1)
    return empty.aligned(np.arange(sources))


def _judge(
    d: Diagnosis,
    set_ms: float | None,
    old: DebounceState,
    violated: np.ndarray,
    clear_ok: np.ndarray,
    dt_us: int,
    now: float,
    value: np.ndarray,
    sources: tuple[str, ...],
) -> tuple[DebounceState, list[Event]]:
    """Debounce one verdict per source; ``set_ms`` 0 where the verdict already holds the delay."""
    assert set_ms is not None and d.clear_delay_ms is not None
    timing = Timing(
        set_us=np.array([round(set_ms * 1000)], np.int64),
        clear_us=np.array([round(d.clear_delay_ms * 1000)], np.int64),
        latch=np.array([d.latching]),
    )
    new, tr = advance(old, violated[None, :], clear_ok[None, :], timing, dt_us, reset=False)
    new = new.aligned(old.cols)  # keep every source in place: the layout stays dense
    events = [
        _event(d, kind, tr.cols[mask[0]], now, value, sources)
        for kind, mask in (("cleared", tr.cleared), ("set", tr.set_now))
        if mask.any()
    ]
    return new, events


def _event(
    d: Diagnosis,
    kind: Kind,
    indices: np.ndarray,
    now: float,
    value: np.ndarray,
    sources: tuple[str, ...],
) -> Event:
    names = ", ".join(sources[i] for i in indices[:NAMES_SHOWN].tolist())
    if indices.size > NAMES_SHOWN:
        names += f" and {indices.size - NAMES_SHOWN} more"
    worst = float(value[indices].max())
    return Event(now, d.id, d.severity.level, kind, worst, d.threshold, indices, "source", names)
