"""Ingest diagnoses per source from the decoder's cumulative counters: a pure function.

``source_silent``: no frame of a source accepted for the set delay (a source never heard
counts from the first step). It clears once frames are accepted again for the clear delay.
``e2e_reject_rate``: the share of a source's frames rejected between two steps (CRC, alive
counter, DLC, unknown multiplexer) above the threshold, held for the set delay; it clears
after the share stayed at or below it for the clear delay. A step without frames from a
source keeps that source's last verdict. Both are debounced like protection levels
(`controller.protection.debounce`: integer microseconds, the same set and clear rules), one
level over every source at once; while no source violates and nothing is pending, a step
costs a few comparisons.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from controller.diagnosis.catalogue import Catalogue, Diagnosis
from controller.diagnosis.events import Event, Kind
from controller.ingest.mapping import DEFAULT_SOURCE

SILENT = "source_silent"
REJECTS = "e2e_reject_rate"
NAMES_SHOWN = 3  # sources named in an event's detail, then the count


@dataclass(frozen=True)
class SourceDebounce:
    """One debounced verdict per source; arrays are replaced, never changed."""

    counter: np.ndarray  # (sources,) int64 us, set counter
    clear_counter: np.ndarray  # (sources,) int64 us, time the clear condition has held
    active: np.ndarray  # (sources,) bool, set
    prev_violated: np.ndarray  # (sources,) bool
    prev_clear_ok: np.ndarray  # (sources,) bool
    quiet: bool  # nothing set, counted or violated: a step without a violation keeps it

    @classmethod
    @functools.cache
    def initial(cls, sources: int) -> SourceDebounce:
        zeros, false = np.zeros(sources, np.int64), np.zeros(sources, bool)
        for array in (zeros, false):
            array.flags.writeable = False
        return cls(zeros, zeros, false, false, false, quiet=True)


@dataclass(frozen=True)
class IngestDiagnosisState:
    """Counters seen at the last step and the debounce of both diagnoses, per source."""

    time_us: int | None
    started: float | None
    accepted: np.ndarray  # (sources,) int64, cumulative at the last step
    rejected: np.ndarray  # (sources,) int64, cumulative over every reason
    over_rate: np.ndarray  # (sources,) bool, last judged verdict of the reject rate
    silent: SourceDebounce
    rejects: SourceDebounce

    @classmethod
    def initial(cls, sources: int) -> IngestDiagnosisState:
        return cls(
            time_us=None,
            started=None,
            accepted=np.zeros(sources, np.int64),
            rejected=np.zeros(sources, np.int64),
            over_rate=np.zeros(sources, bool),
            silent=SourceDebounce.initial(sources),
            rejects=SourceDebounce.initial(sources),
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
        expected = _expected(sources)
        heard = last_seen.min() if expected.all() else last_seen[expected].min(initial=np.inf)
        oldest = (now - max(heard, started)) * 1000.0  # ms: the age of the longest silence
        if not (silent.quiet and oldest < silent_d.set_delay_ms - 1e-6):
            age = now - np.maximum(last_seen, started)
            quiet = age * 1000.0 >= silent_d.set_delay_ms - 1e-6  # the age is the set delay
            quiet &= expected
            silent = _judge(silent_d, 0.0, silent, quiet, dt_us, now, age, sources, events)

    rate_d = catalogue[REJECTS]
    if rate_d.enabled:
        new_rejects = total_rejected - state.rejected
        threshold = rate_d.threshold if rate_d.threshold is not None else 0.0
        clean = threshold >= 0.0 and not new_rejects.any()  # a rate of 0 where frames came
        if not (clean and rejects.quiet and not over_rate.any()):
            frames = accepted - state.accepted + new_rejects
            rate = new_rejects / np.maximum(frames, 1)
            over_rate = np.where(frames > 0, rate > threshold, state.over_rate)
            rejects = _judge(
                rate_d, rate_d.set_delay_ms, rejects, over_rate, dt_us, now, rate, sources, events
            )

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


def _judge(
    d: Diagnosis,
    set_ms: float | None,
    old: SourceDebounce,
    violated: np.ndarray,
    dt_us: int,
    now: float,
    value: np.ndarray,
    sources: tuple[str, ...],
    events: list[Event],
) -> SourceDebounce:
    """Debounce one verdict per source (clear condition: not violated), appending its events;
    ``set_ms`` 0 where the verdict already holds the delay."""
    if old.quiet and not violated.any():
        return old
    assert set_ms is not None and d.clear_delay_ms is not None
    set_us, clear_us = round(set_ms * 1000), round(d.clear_delay_ms * 1000)
    clear_ok = ~violated
    counter = np.where(old.prev_violated, dt_us, -dt_us)
    counter += old.counter
    np.clip(counter, 0, set_us, out=counter)
    set_now = (counter >= set_us) & violated & ~old.active
    clear_counter = old.clear_counter + dt_us
    clear_counter *= old.prev_clear_ok & clear_ok
    np.minimum(clear_counter, clear_us, out=clear_counter)
    cleared = (clear_counter >= clear_us) & old.active & clear_ok
    if d.latching:  # never reset here: a latched verdict stays
        cleared[:] = False
    active = (old.active | set_now) ^ cleared
    counter *= ~cleared
    clear_counter *= active
    for kind, mask in (("cleared", cleared), ("set", set_now)):
        if mask.any():
            events.append(_event(d, kind, np.flatnonzero(mask), now, value, sources))
    quiet = not (active.any() or violated.any() or counter.any())
    return SourceDebounce(counter, clear_counter, active, violated, clear_ok & active, quiet)


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
