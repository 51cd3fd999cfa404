"""Supervision of the control loop, in virtual time: normal jitter raises nothing, trouble
raises one warning when it starts and one when it has been quiet, losses are reported at once.
"""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from controller.diagnosis import shipped
from controller.shell.supervision import (
    BACKLOG,
    LATE,
    OVERRUN,
    STORE,
    Cycle,
    Hysteresis,
    RuntimeStats,
    SupervisionConfig,
    Supervisor,
)

PERIOD = 1 / 128  # exact in binary: virtual time adds up without rounding
CONFIG = SupervisionConfig(late_ms=5.0, count=5, window_ms=1000.0, quiet_ms=10_000.0)


def _cycle(k: int, late_s: float = 0.0, work_s: float = 0.001, **counts: object) -> Cycle:
    deadline = 1024.0 + k * PERIOD
    began = deadline + late_s
    return Cycle(deadline, began, began + work_s, PERIOD, **counts)  # type: ignore[arg-type]


def _run(supervisor: Supervisor, cycles: list[Cycle]) -> list[tuple[int, str, str]]:
    """(cycle index, diagnosis, kind) of every event, in order."""
    return [
        (k, e.diagnosis, e.kind)
        for k, cycle in enumerate(cycles)
        for e in supervisor.observe(cycle)
    ]


def test_the_supervision_diagnoses_are_in_the_catalogue() -> None:
    for diagnosis in (LATE, OVERRUN, BACKLOG, STORE):
        entry = shipped()[diagnosis]
        assert 920 <= entry.code <= 929 and entry.configured_in == "supervision"


@given(st.lists(st.integers(0, 999), max_size=60, unique=True))
def test_fewer_late_cycles_than_count_in_any_window_raise_nothing(late: list[int]) -> None:
    # keep at most count - 1 late cycles in every window of 128 cycles (1 s)
    kept: list[int] = []
    for k in sorted(late):
        if sum(k - j < 128 for j in kept) < CONFIG.count - 1:
            kept.append(k)
    cycles = [_cycle(k, 0.006 if k in kept else 0.004) for k in range(1000)]
    supervisor = Supervisor(CONFIG, ("internal",))
    assert _run(supervisor, cycles) == []
    assert supervisor.run.late_cycles == len(kept) and supervisor.run.cycles == 1000


def test_late_cycles_set_once_and_clear_after_the_quiet_time() -> None:
    late = set(range(100, 240, 20))  # 7 late cycles, 5 of them within 1 s from cycle 180
    cycles = [_cycle(k, 0.006 if k in late else 0.0) for k in range(2000)]
    events = _run(Supervisor(CONFIG, ("internal",)), cycles)
    quiet = round(CONFIG.quiet_ms / 1e3 / PERIOD)
    # quiet counts from the start of the last late cycle, 6 ms after its deadline
    assert events == [(180, LATE, "set"), (220 + quiet + 1, LATE, "cleared")]


def test_overruns_set_their_own_warning() -> None:
    slow = set(range(300, 320, 2))  # ten cycles whose work outlasts the period
    cycles = [_cycle(k, work_s=0.015 if k in slow else 0.001) for k in range(400)]
    supervisor = Supervisor(CONFIG, ("internal",))
    events = _run(supervisor, cycles)
    assert events == [(308, OVERRUN, "set")]
    assert supervisor.run.overruns == 10
    assert math.isclose(supervisor.run.max_cycle_s, 0.015)


def test_dropped_frames_set_at_once_on_their_bus_and_a_backlog_after_count() -> None:
    buses = ("internal", "vehicle")
    cycles = [_cycle(k) for k in range(50)]
    cycles[10] = _cycle(10, dropped={"vehicle": 17}, taken={"vehicle": 1024})
    for k in range(20, 25):
        cycles[k] = _cycle(k, waiting={"internal": 300}, taken={"internal": 1024})
    supervisor = Supervisor(CONFIG, buses)
    events = [e for c in cycles for e in supervisor.observe(c)]
    assert [(e.diagnosis, e.kind, e.elements.tolist()) for e in events] == [
        (BACKLOG, "set", [1]),
        (BACKLOG, "set", [0]),
    ]
    assert "'vehicle' 17 frames dropped" in str(events[0])
    assert supervisor.run.dropped_frames == 17 and supervisor.run.max_backlog == 1024


def test_store_drops_set_at_once() -> None:
    cycles = [_cycle(k, store_drops=3 if k == 5 else 0) for k in range(10)]
    assert _run(Supervisor(CONFIG, ()), cycles) == [(5, STORE, "set")]


def test_the_summary_comes_once_per_period_and_only_with_trouble() -> None:
    config = SupervisionConfig(summary_every_s=60.0)
    supervisor = Supervisor(config, ("internal",))
    lines = []
    for k in range(round(200 / PERIOD)):  # 200 s: trouble only in the second minute
        trouble = k == round(90 / PERIOD)
        cycle = _cycle(k, send_errors=2 if trouble else 0)
        supervisor.observe(cycle)
        if (line := supervisor.summary(cycle.began)) is not None:
            lines.append((k, line))
    assert len(lines) == 1
    k, line = lines[0]
    assert k == round(120 / PERIOD)
    assert line.startswith("runtime, last 60 s: 7680 cycles") and "2 send errors" in line


def test_the_frame_tally_starts_again_after_each_take() -> None:
    supervisor = Supervisor(CONFIG, ("internal",))
    for k in range(10):
        supervisor.observe(_cycle(k, 0.02 if k < 3 else 0.0))
    first = supervisor.take("frame")
    supervisor.observe(_cycle(10))
    assert first.late_cycles == 3 and first.cycles == 10
    assert supervisor.take("frame").late_cycles == 0
    assert supervisor.run.late_cycles == 3 and supervisor.run.cycles == 11


@given(
    st.builds(
        RuntimeStats,
        cycles=st.integers(0, 10**9),
        overruns=st.integers(0, 10**6),
        max_cycle_s=st.floats(0, 100),
        dropped_frames=st.integers(0, 10**9),
    ),
    st.builds(RuntimeStats, cycles=st.integers(0, 10**9), max_cycle_s=st.floats(0, 100)),
)
def test_counters_round_trip_and_accumulate(a: RuntimeStats, b: RuntimeStats) -> None:
    assert RuntimeStats.from_record(a.as_record()) == a
    both = a.merged(b)
    assert both.cycles == a.cycles + b.cycles
    assert both.max_cycle_s == max(a.max_cycle_s, b.max_cycle_s)
    assert RuntimeStats.from_record({**a.as_record(), "from_a_later_version": 1.0}) == a


def test_hysteresis_counts_only_inside_the_window() -> None:
    h = Hysteresis(count=3, window=1.0, quiet=5.0)
    assert [h.update(t, True) for t in (0.0, 0.9, 1.8, 2.7)] == [None, None, None, None]
    assert h.update(2.75, True) == "set"  # 1.8, 2.7, 2.75 within 1 s
    assert h.update(7.7, False) is None and h.update(7.75, False) == "cleared"
