"""A violation of a measured quantity counts from the arrival of the sample that shows it.

Cycles of a loaded shell are irregular. Counting the set delay from the step that first saw
a violation would add that step's lateness to the reaction; counting from the sample's
arrival bounds it by the set delay plus one cycle. A sample older than the previous step (a
frame handed over late) is dated at that step, which judged the quantity healthy: never
earlier.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from protection_support import CELL, CELLS, SENSORS, config, healthy, level_value

from controller.adapters.base import Level
from controller.protection import Check, Protection

CFG = config("nmc")
EPS = 1e-6  # the debounce counts whole microseconds


def _dated(inputs, now: float, arrived: float):
    """``inputs`` at ``now`` with every value received at ``arrived``."""
    return replace(
        inputs,
        cell_voltage_at=np.full(CELLS, arrived),
        cell_temperature_at=np.full(SENSORS, arrived),
        current_sensor_age=now - arrived,
    )


def _overvoltage(inputs, value: float):
    v = inputs.cell_voltage.copy()
    v[CELL] = value
    return replace(inputs, cell_voltage=v)


def _overcurrent(inputs, value: float):
    return replace(inputs, pack_current=value)


CASES = [(Check.CELL_OVERVOLTAGE, _overvoltage), (Check.OVERCURRENT_CHARGE, _overcurrent)]


def _set_time(check, level, disturb, gaps, arrival_share) -> tuple[float, float, float]:
    """Steps ``gaps`` apart; the first violating sample arrives ``arrival_share`` of the way
    from the step before the first that judges it (negative: before that step). Returns
    (arrival, the previous step, the time the level set)."""
    protection = Protection(CFG)
    state = protection.initial_state()
    base, now = healthy(20.0), 0.0
    for _ in range(100):  # healthy at 10 ms, every value fresh
        now += 0.01
        state, events = protection.step(state, _dated(base, now, now), now)
        assert events == ()
    bad = disturb(base, level_value(CFG, check, level))
    previous = now
    arrival = previous + arrival_share * gaps[0]
    for gap in gaps:
        now += gap
        state, events = protection.step(state, _dated(bad, now, arrival), now)
        if any((e.diagnosis, e.level, e.kind) == (check, level, "set") for e in events):
            return arrival, previous, now
    raise AssertionError("level never set")


@given(
    case=st.sampled_from(CASES),
    level=st.sampled_from([Level.WARNING, Level.ALARM, Level.FAULT]),
    gaps=st.lists(st.floats(0.002, 0.03), min_size=400, max_size=400),
    share=st.floats(0.0, 1.0),
)
def test_sets_at_the_first_step_a_set_delay_after_the_sample_arrived(case, level, gaps, share):
    check, disturb = case
    delay = CFG.checks[check].levels[level].set_delay_ms / 1000
    arrival, _, t_set = _set_time(check, level, disturb, gaps, share)
    steps = np.cumsum(gaps) + (arrival - share * gaps[0])
    expected = steps[steps >= arrival + delay - EPS][0]
    assert abs(t_set - expected) < 2 * EPS


@given(case=st.sampled_from(CASES), late=st.floats(0.1, 5.0))
def test_a_sample_older_than_the_previous_step_counts_from_that_step(case, late):
    check, disturb = case
    level = Level.FAULT
    delay = CFG.checks[check].levels[level].set_delay_ms / 1000
    gaps = [0.01] * 400
    arrival, previous, t_set = _set_time(check, level, disturb, gaps, -late)
    assert arrival < previous
    assert previous + delay - EPS <= t_set < previous + delay + 0.01 + EPS


def test_a_current_that_is_not_valid_counts_from_the_step_that_found_it():
    """An unknown current violates the over-current checks (fail safe) from the step that
    found it unknown; its last frame's age says nothing of when that began."""
    protection = Protection(CFG)
    state, now, base = protection.initial_state(), 0.0, healthy(20.0)
    for _ in range(100):
        now += 0.01
        state, _ = protection.step(state, _dated(base, now, now), now)
    lost = replace(base, pack_current_valid=False, pack_current=float("nan"))
    first = now + 0.01
    delay = CFG.checks[Check.OVERCURRENT_CHARGE].levels[Level.FAULT].set_delay_ms / 1000
    while True:
        now += 0.01
        state, events = protection.step(state, replace(lost, current_sensor_age=0.5), now)
        if any(
            (e.diagnosis, e.level, e.kind) == (Check.OVERCURRENT_CHARGE, Level.FAULT, "set")
            for e in events
        ):
            break
        assert now < first + 5.0
    assert abs(now - (first + delay)) < 1e-6
