"""The ingest diagnoses debounce each source like a protection level: for random counters the
events are those `controller.protection.debounce.advance` gives for the same verdicts."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from controller.diagnosis import apply_overrides, shipped
from controller.diagnosis.catalogue import Catalogue
from controller.diagnosis.ingest import REJECTS, SILENT, IngestDiagnosisState, diagnose
from controller.ingest.decoder import RejectReason
from controller.protection.debounce import DebounceState, Timing, advance

SOURCES = ("slave_0", "slave_1", "ivt", "slave_3")
N = len(SOURCES)


class Reference:
    """One protection debounce per diagnosis, over every source, never pruned away."""

    def __init__(self, set_ms: float, clear_ms: float, latching: bool) -> None:
        self.timing = Timing(
            set_us=np.array([round(set_ms * 1000)], np.int64),
            clear_us=np.array([round(clear_ms * 1000)], np.int64),
            latch=np.array([latching]),
        )
        self.state = DebounceState.empty(1).aligned(np.arange(N))

    def step(self, violated: np.ndarray, dt_us: int) -> list[tuple[str, list[int]]]:
        new, tr = advance(self.state, violated[None], ~violated[None], self.timing, dt_us, False)
        self.state = new.aligned(np.arange(N))
        return [
            (kind, tr.cols[mask[0]].tolist())
            for kind, mask in (("cleared", tr.cleared), ("set", tr.set_now))
            if mask.any()
        ]


@given(
    seed=st.integers(0, 2**32 - 1),
    silent_ms=st.tuples(st.sampled_from([0.0, 30.0, 300.0]), st.sampled_from([0.0, 20.0, 100.0])),
    rate_ms=st.tuples(st.sampled_from([0.0, 20.0, 200.0]), st.sampled_from([0.0, 50.0, 500.0])),
    latching=st.booleans(),
)
def test_events_are_those_of_the_protection_debounce(seed, silent_ms, rate_ms, latching):
    rng = np.random.default_rng(seed)
    delays = {
        SILENT: {"set_delay_ms": silent_ms[0], "clear_delay_ms": silent_ms[1]},
        REJECTS: {"set_delay_ms": rate_ms[0], "clear_delay_ms": rate_ms[1]},
    }
    catalogue = Catalogue(
        tuple(
            replace(d, latching=latching) if d.id == REJECTS else d
            for d in apply_overrides(shipped(), delays)
        )
    )
    silent_d, rate_d = catalogue[SILENT], catalogue[REJECTS]
    silent_ref = Reference(0.0, silent_d.clear_delay_ms, silent_d.latching)
    rate_ref = Reference(rate_d.set_delay_ms, rate_d.clear_delay_ms, rate_d.latching)
    state = IngestDiagnosisState.initial(N)
    accepted = np.zeros(N, np.int64)
    rejected = np.zeros((N, len(RejectReason)), np.int64)
    last_seen = np.full(N, -np.inf)
    over_rate = np.zeros(N, bool)
    now, now_us, started = 0.0, None, None
    p_ok, p_bad = rng.random(N), rng.random(N) * 0.3
    for _ in range(150):
        now = round(now + float(rng.choice([0.0, 0.001, 0.01, 0.05, 0.2])), 6)
        if rng.random() < 0.1:
            p_ok, p_bad = rng.random(N), rng.random(N) * rng.choice([0.0, 0.1, 0.5])
        ok = (rng.random(N) < p_ok) * rng.integers(1, 4, N)
        bad = (rng.random(N) < p_bad) * rng.integers(1, 3, N)
        new_frames, new_rejects = ok + bad, bad
        accepted = accepted + ok
        rejected[:, rng.integers(0, len(RejectReason))] += bad
        last_seen = np.where(ok > 0, now, last_seen)
        state, events = diagnose(state, SOURCES, accepted, rejected, last_seen, now, catalogue)

        started = now if started is None else started
        dt_us = 0 if now_us is None else round(now * 1e6) - now_us
        now_us = round(now * 1e6)
        age = now - np.maximum(last_seen, started)
        quiet = age * 1000.0 >= silent_d.set_delay_ms - 1e-6
        rate = new_rejects / np.maximum(new_frames, 1)
        over_rate = np.where(new_frames > 0, rate > rate_d.threshold, over_rate)
        expected = [(SILENT, *e) for e in silent_ref.step(quiet, dt_us)]
        expected += [(REJECTS, *e) for e in rate_ref.step(over_rate, dt_us)]
        assert [(e.diagnosis, e.kind, e.elements.tolist()) for e in events] == expected
