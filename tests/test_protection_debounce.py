"""Occurrence counters count time, not cycles: flicker, step size, reset, sparse state."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from protection_support import CELL, Driver, config, disturb, healthy, preset

from controller.adapters.base import Level
from controller.protection import Check, Protection, parse_protection

OV = Check.CELL_OVERVOLTAGE


def _one_level(set_ms: float, clear_ms: float = 0.0) -> Protection:
    """NMC preset whose over-voltage check has only a fault level with the given delays."""
    data = preset()
    data["cell_overvoltage"] = {
        "fault": {
            "threshold": 4.25,
            "set_delay_ms": set_ms,
            "clear_delay_ms": clear_ms,
            "hysteresis": 0.05,
        }
    }
    return Protection(parse_protection(data))


def _set_time(protection: Protection, pattern: list[tuple[bool, float]], period: float):
    """Drive a pattern of (violated, seconds) phases; the time the fault set, or None."""
    d = Driver(protection, period)
    bad = disturb(healthy(), OV, 4.3)
    for violated, seconds in pattern:
        for _ in range(round(seconds / period)):
            events = d.step(bad if violated else healthy())
            if any(e.diagnosis == OV and e.kind == "set" for e in events):
                return d.now
    return None


def test_flicker_counts_up_while_violated_and_down_while_not() -> None:
    # +300 ms, -100 ms, then 300 ms more reaches 500 ms: set 700 ms after the first sight.
    p = _one_level(500)
    pattern = [(False, 0.1), (True, 0.3), (False, 0.1), (True, 1.0)]
    assert _set_time(p, pattern, 0.01) == pytest.approx(0.1 + 0.01 + 0.7)


def test_flicker_shorter_than_delay_with_longer_gaps_never_sets() -> None:
    p = _one_level(500)
    pattern = [(False, 0.1)] + [(True, 0.2), (False, 0.3)] * 20
    assert _set_time(p, pattern, 0.01) is None


@pytest.mark.parametrize("set_ms", [0.0, 100.0, 500.0, 740.0])
def test_same_reaction_with_1_ms_and_20_ms_steps(set_ms: float) -> None:
    # Phases and delays on the 20 ms grid: the coarse steps see each onset up to one step
    # later than the fine ones and must not add anything on top of that.
    p = _one_level(set_ms)
    pattern = [(False, 0.2), (True, 0.2), (False, 0.1), (True, 2.0)]
    fine = _set_time(p, pattern, 0.001)
    coarse = _set_time(p, pattern, 0.02)
    assert fine is not None and coarse is not None
    assert abs(fine - coarse) <= 0.02 + 1e-9


@given(
    set_ms=st.integers(0, 2000),
    period_ms=st.integers(1, 50),
    start_ms=st.integers(0, 500),
)
def test_never_earlier_than_the_delay_nor_later_than_one_step(set_ms, period_ms, start_ms) -> None:
    period = period_ms / 1000
    quiet = round(start_ms / period_ms) * period
    t = _set_time(_one_level(set_ms), [(False, quiet), (True, set_ms / 1000 + 1.0)], period)
    first_seen = quiet + period
    assert t is not None
    assert first_seen + set_ms / 1000 - 1e-9 <= t <= first_seen + set_ms / 1000 + period + 1e-9


def test_irregular_steps_count_elapsed_time() -> None:
    p = _one_level(500)
    state = p.initial_state()
    bad = disturb(healthy(), OV, 4.3)
    times = [0.0, 0.013, 0.2, 0.21, 0.45, 0.499, 0.5, 0.52]
    levels = []
    for t in times:
        state, _ = p.step(state, bad, t)
        levels.append(state.levels[OV])
    assert levels.index(Level.FAULT) == times.index(0.5)


def test_healthy_pack_keeps_no_per_element_state() -> None:
    p = Protection(config())
    state = p.initial_state()
    for k in range(1, 50):
        state, events = p.step(state, healthy(), k * 0.01)
        assert events == ()
    assert all(s.quiet for s in state.debounce.values())
    assert state.highest is Level.OK and state.fault_bits == 0


def test_state_is_not_mutated_by_a_step() -> None:
    p = _one_level(100)
    bad = disturb(healthy(), OV, 4.3)
    state, _ = p.step(p.initial_state(), bad, 0.0)
    for k in range(1, 5):
        state, _ = p.step(state, bad, k * 0.01)
    snapshot = {c: s.counter.copy() for c, s in state.debounce.items()}
    later, _ = p.step(state, bad, 0.2)
    assert later.levels[OV] is Level.FAULT
    assert state.levels[OV] is Level.OK
    assert all(np.array_equal(state.debounce[c].counter, snapshot[c]) for c in snapshot)
    again, _ = p.step(state, bad, 0.2)
    assert again.levels == later.levels


def test_time_going_backwards_does_not_count() -> None:
    p = _one_level(100)
    bad = disturb(healthy(), OV, 4.3)
    state = p.initial_state()
    for t in (10.0, 10.05, 0.0, 0.01, 10.08):
        state, _ = p.step(state, bad, t)
        assert state.levels[OV] is Level.OK
    state, _ = p.step(state, bad, 10.13)
    assert state.levels[OV] is Level.FAULT


def test_each_cell_counts_on_its_own() -> None:
    p = _one_level(500)
    d = Driver(p)
    v = healthy().cell_voltage.copy()
    d.run(healthy(), 0.1)
    v[CELL] = 4.3
    first = replace(healthy(), cell_voltage=v.copy())
    d.run(first, 0.3)
    v[CELL + 3] = 4.3
    d.run(replace(healthy(), cell_voltage=v.copy()), 0.25)
    sets = [
        (e.elements.tolist(), round(e.time, 3))
        for e in d.events
        if e.diagnosis == OV and e.kind == "set"
    ]
    assert sets == [([CELL], 0.61)]
    d.run(replace(healthy(), cell_voltage=v.copy()), 0.3)
    sets = [
        (e.elements.tolist(), round(e.time, 3))
        for e in d.events
        if e.diagnosis == OV and e.kind == "set"
    ]
    assert sets == [([CELL], 0.61), ([CELL + 3], 0.91)]
