"""A state at rest steps exactly as the general debounce: same events, levels, counters."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from protection_support import CELL, healthy, preset

from controller.adapters.base import Level
from controller.protection import Check, Protection, ProtectionState, parse_protection

SPREAD_CELL = CELL + 3  # the cell that widens the spread


def _short_delays():
    """The NMC table with the watched checks' delays short enough for a few steps each."""
    data = preset()
    for name, set_ms, clear_ms in (
        ("cell_voltage_spread", 300, 400),
        ("cell_overvoltage", 100, 200),
        ("overcurrent_charge", 50, 150),
    ):
        for level in data[name].values():
            level["set_delay_ms"], level["clear_delay_ms"] = set_ms, clear_ms
    return parse_protection(data)


PROTECTION = Protection(_short_delays())
NAN = float("nan")

highs = st.sampled_from([3.7, 3.7, 4.18, 4.18, 4.21, 4.3, NAN])
lows = st.sampled_from([3.7, 3.64, 3.64, 3.55, 3.55, 3.3])
currents = st.sampled_from([0.0, 20.0, 20.0, -20.0, 105.0, 120.0, 140.0, NAN])


@st.composite
def held(draw):
    """Inputs held for a few steps: the violation pattern repeats, so states come to rest."""
    inputs = healthy()
    v = inputs.cell_voltage.copy()
    v[CELL], v[SPREAD_CELL] = draw(highs), draw(lows)
    current = draw(currents)
    inputs = replace(
        inputs,
        cell_voltage=v,
        pack_voltage=float(np.nansum(v)),
        cell_voltage_sum=float(np.nansum(v)),
        pack_current=current,
        pack_current_valid=not np.isnan(current),
    )
    repeats = draw(st.integers(1, 12))
    dt = draw(st.integers(0, 150)) / 1000
    reset = draw(st.integers(0, 5)) == 0
    return inputs, repeats, dt, reset


def _same(fast: ProtectionState, general: ProtectionState) -> None:
    assert dict(fast.levels) == dict(general.levels)
    assert dict(fast.worst) == dict(general.worst)
    assert fast.highest is general.highest
    for check, ds in fast.debounce.items():
        other = general.debounce[check]
        for name in ("cols", "counter", "clear_counter", "active", "prev_violated"):
            assert np.array_equal(getattr(ds, name), getattr(other, name)), (check, name)
        assert np.array_equal(ds.prev_clear_ok, other.prev_clear_ok), check


@given(st.lists(held(), min_size=1, max_size=10))
def test_a_state_at_rest_steps_as_the_general_debounce(sequence) -> None:
    fast = general = PROTECTION.initial_state()
    now = 0.0
    for inputs, repeats, dt, reset in sequence:
        for _ in range(repeats):
            now += dt
            fast, fast_events = PROTECTION.step(fast, inputs, now, reset)
            general, general_events = PROTECTION.step(
                replace(general, rest=None), inputs, now, reset
            )
            assert repr(fast_events) == repr(general_events)  # NaN values compare by text
            _same(fast, general)


def test_a_held_warning_rests_until_its_value_moves() -> None:
    inputs = healthy()
    v = inputs.cell_voltage.copy()
    v[SPREAD_CELL] = 3.64  # spread 0.06 V: a warning, below the alarm
    inputs = replace(inputs, cell_voltage=v)
    state, now = PROTECTION.initial_state(), 0.0
    while state.levels[Check.CELL_VOLTAGE_SPREAD] is Level.OK:
        now += 0.1
        state, _ = PROTECTION.step(state, inputs, now)
    assert state.rest is not None
    held, events = PROTECTION.step(state, inputs, now + 0.1)
    assert held.tracked is state.tracked and not events
    v = v.copy()
    v[SPREAD_CELL] = 3.55  # spread 0.15 V: the alarm starts counting
    moved, events = PROTECTION.step(held, replace(inputs, cell_voltage=v), now + 0.2)
    assert moved.rest is None and not events
    counting, _ = PROTECTION.step(moved, replace(inputs, cell_voltage=v), now + 0.3)
    assert counting.debounce[Check.CELL_VOLTAGE_SPREAD].counter[1].tolist() == [100_000]
