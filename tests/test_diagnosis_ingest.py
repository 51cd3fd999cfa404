"""Ingest diagnoses judged from the decoder's counters, step by step in virtual time."""

from __future__ import annotations

import numpy as np

from controller.adapters.base import Level
from controller.diagnosis import apply_overrides, shipped
from controller.diagnosis.ingest import IngestDiagnosisState, diagnose
from controller.ingest.decoder import RejectReason

SOURCES = ("slave_0", "slave_1", "current_sensor")
REASONS = len(RejectReason)
CAT = apply_overrides(
    shipped(),
    {
        "source_silent": {"set_delay_ms": 300, "clear_delay_ms": 100},
        "e2e_reject_rate": {"set_delay_ms": 200, "clear_delay_ms": 500},
    },
)


class Feed:
    """Cumulative counters as the decoder keeps them, advanced 10 ms at a time."""

    def __init__(self) -> None:
        self.state = IngestDiagnosisState.initial(len(SOURCES))
        self.accepted = np.zeros(len(SOURCES), np.int64)
        self.rejected = np.zeros((len(SOURCES), REASONS), np.int64)
        self.last_seen = np.full(len(SOURCES), -np.inf)
        self.now = 0.0
        self.events: list = []

    def run(self, seconds: float, ok=(1, 1, 1), bad=(0, 0, 0), reason=RejectReason.CRC) -> None:
        for _ in range(round(seconds / 0.01)):
            self.now = round(self.now + 0.01, 6)
            ok_a, bad_a = np.array(ok), np.array(bad)
            self.accepted += ok_a
            self.rejected[:, reason] += bad_a
            self.last_seen[ok_a > 0] = self.now
            self.state, events = diagnose(
                self.state, SOURCES, self.accepted, self.rejected, self.last_seen, self.now, CAT
            )
            self.events += events

    def of(self, diagnosis: str) -> list:
        return [e for e in self.events if e.diagnosis == diagnosis]


def test_a_healthy_feed_raises_nothing() -> None:
    feed = Feed()
    feed.run(2.0)
    assert feed.events == []


def test_a_silent_source_sets_after_its_delay_and_clears_when_heard_again() -> None:
    feed = Feed()
    feed.run(0.5)
    feed.run(1.0, ok=(1, 0, 1))
    (event,) = feed.of("source_silent")
    assert event.kind == "set" and event.level is Level.WARNING
    assert event.elements.tolist() == [1] and event.element_kind == "source"
    assert event.time == 0.5 + 0.3 and "slave_1" in event.detail
    feed.run(0.5)
    kinds = [(e.kind, round(e.time, 2)) for e in feed.of("source_silent")]
    assert kinds == [("set", 0.8), ("cleared", 1.61)]  # heard from 1.51 on, for 100 ms


def test_sources_never_heard_count_from_the_first_step_in_one_event() -> None:
    feed = Feed()
    feed.run(0.5, ok=(0, 0, 1))
    (event,) = feed.of("source_silent")
    assert event.elements.tolist() == [0, 1] and event.time == 0.31


def test_a_high_reject_rate_sets_after_its_delay_and_clears_after_a_clean_period() -> None:
    feed = Feed()
    feed.run(0.2)
    feed.run(0.5, ok=(1, 1, 9), bad=(0, 0, 1), reason=RejectReason.COUNTER_JUMP)  # 10 %
    (event,) = feed.of("e2e_reject_rate")
    assert event.kind == "set" and event.elements.tolist() == [2]
    assert event.value == 0.1 and event.threshold == 0.05
    assert round(event.time, 2) == 0.41
    feed.run(1.0)
    kinds = [e.kind for e in feed.of("e2e_reject_rate")]
    assert kinds == ["set", "cleared"]
    assert feed.of("e2e_reject_rate")[1].time >= 0.7 + 0.5


def test_a_rate_at_the_threshold_or_without_frames_does_not_set() -> None:
    feed = Feed()
    feed.run(1.0, ok=(19, 0, 1), bad=(1, 0, 0))  # exactly 5 % on slave_0, nothing on slave_1
    assert feed.of("e2e_reject_rate") == []


def test_a_disabled_diagnosis_stays_quiet() -> None:
    cat = apply_overrides(CAT, {"source_silent": {"enabled": False}})
    state = IngestDiagnosisState.initial(1)
    nothing = (np.zeros(1, np.int64), np.zeros((1, REASONS), np.int64), np.full(1, -np.inf))
    for now in (0.0, 5.0):  # five seconds without a single frame
        state, events = diagnose(state, ("x",), *nothing, now, cat)
        assert events == ()


def test_the_step_is_pure() -> None:
    feed = Feed()
    feed.run(0.4, ok=(1, 0, 1))
    args = (SOURCES, feed.accepted, feed.rejected, feed.last_seen, feed.now + 0.01, CAT)
    first = diagnose(feed.state, *args)
    second = diagnose(feed.state, *args)
    assert repr(first[1]) == repr(second[1])
