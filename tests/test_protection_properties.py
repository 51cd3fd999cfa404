"""Properties over random input sequences: latching, level consistency, event replay."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from protection_support import CELLS, MODULES, SENSORS, preset

from controller.adapters.base import Level
from controller.protection import Check, Protection, ProtectionInputs, parse_protection
from controller.protection.checks import SPECS, Direction, Window
from controller.protection.measures import directions


def _fast_config():
    """The NMC table with every delay cut to a tenth, so short sequences reach every level."""
    data = preset()
    for table in data.values():
        if isinstance(table, dict):
            for level in table.values():
                if isinstance(level, dict):
                    level["set_delay_ms"] = level["set_delay_ms"] / 10
                    level["clear_delay_ms"] = level["clear_delay_ms"] / 10
    return parse_protection(data)


CFG = _fast_config()
PROTECTION = Protection(CFG)
NAN = float("nan")

volts = st.sampled_from([3.7, 3.7, 3.7, 4.16, 4.19, 4.22, 4.3, 3.05, 2.9, 2.75, 2.5, NAN])
temps = st.sampled_from([25.0, 25.0, 42.0, 47.0, 57.0, 63.0, 3.0, -3.0, -15.0, -23.0, -30.0])
ages = st.sampled_from([0.02, 0.05, 0.05, 0.12, 0.18, 0.26, 0.35, math.inf, NAN])
currents = st.sampled_from([0.0, 0.5, 20.0, -20.0, 105.0, 125.0, 140.0, -210.0, -260.0])


@st.composite
def steps(draw):
    v = np.array(draw(st.lists(volts, min_size=CELLS, max_size=CELLS)))
    v_valid = np.array(draw(st.lists(st.booleans(), min_size=CELLS, max_size=CELLS)))
    v_valid |= draw(st.booleans())  # often all valid
    t = np.array(draw(st.lists(temps, min_size=SENSORS, max_size=SENSORS)))
    t_valid = np.array(draw(st.lists(st.booleans(), min_size=SENSORS, max_size=SENSORS)))
    t_valid |= draw(st.booleans())
    total = float(np.sum(np.where(v_valid, v, 0.0)))
    inputs = ProtectionInputs(
        cell_voltage=v,
        cell_voltage_valid=v_valid,
        cell_temperature=t,
        cell_temperature_valid=t_valid,
        pack_current=draw(currents),
        pack_current_valid=draw(st.booleans()) or draw(st.booleans()),
        pack_voltage=total + draw(st.sampled_from([0.0, 0.0, 2.0, 4.0, 12.0])),
        pack_voltage_valid=draw(st.booleans()) or draw(st.booleans()),
        cell_voltage_sum=total,
        all_cells_valid=bool(v_valid.all()),
        module_age=np.array(draw(st.lists(ages, min_size=MODULES, max_size=MODULES))),
        current_sensor_age=draw(ages),
        ems_request_age=draw(ages),
        charge_mode=draw(st.booleans()),
        module_open_wire=np.array(draw(st.lists(st.booleans(), min_size=MODULES, max_size=MODULES)))
        & draw(st.booleans()),
    )
    dt = draw(st.integers(1, 300)) / 1000
    reset = draw(st.integers(0, 4)) == 0
    return inputs, dt, reset


def _window_applies(check: Check, inputs) -> bool:
    """A check of one current direction is not judged (and clears) outside it."""
    charge, discharge = directions(inputs, CFG.charge_detect_current)
    return {Window.CHARGE: charge, Window.DISCHARGE: discharge}.get(SPECS[check].window, True)


def _released(event) -> bool:
    """The event's value lies beyond its level's release point (the cause is gone)."""
    spec = SPECS[Check(event.diagnosis)]
    if spec.direction is Direction.FLAG:
        return event.value == 0.0
    hysteresis = CFG.checks[Check(event.diagnosis)].levels[event.level].hysteresis
    if spec.direction is Direction.HIGH:
        return event.value <= event.threshold - hysteresis + 1e-12
    return event.value >= event.threshold + hysteresis - 1e-12


@given(st.lists(steps(), min_size=1, max_size=40))
def test_random_sequences_keep_faults_latched_and_levels_consistent(sequence) -> None:
    state = PROTECTION.initial_state()
    active: set[tuple] = set()
    now = 0.0
    for inputs, dt, reset in sequence:
        before = state
        now += dt
        state, events = PROTECTION.step(state, inputs, now, reset)
        for e in events:
            elements = [None] if e.elements is None else e.elements.tolist()
            for element in elements:  # the replay tracks every element on its own
                key = (Check(e.diagnosis), e.level, e.element_kind, element)
                if e.kind == "set":
                    assert key not in active, f"set twice: {e}"
                    active.add(key)
                else:
                    assert key in active, f"cleared but never set: {e}"
                    active.discard(key)
            if e.kind == "cleared":
                outside = not _window_applies(Check(e.diagnosis), inputs)
                assert _released(e) or outside, f"cleared while the cause persists: {e}"
                if e.level is Level.FAULT:
                    assert reset, f"fault cleared without a reset: {e}"
        # latching: without a reset no check leaves its fault
        if not reset:
            for check in Check:
                if before.levels[check] is Level.FAULT:
                    assert state.levels[check] is Level.FAULT
        # the summary agrees with the replayed events
        for check in Check:
            replayed = max((lv for c, lv, *_ in active if c is check), default=Level.OK)
            assert state.levels[check] is replayed
        assert state.highest is max(state.levels.values())
        assert state.fault_active <= state.alarm_active <= state.warning_active
        assert state.fault_active == any(lv is Level.FAULT for lv in state.levels.values())
        faulted = {c.bit for c in Check if state.levels[c] is Level.FAULT}
        assert state.fault_bits == sum(1 << bit for bit in faulted)
        for check, (kind, element) in state.worst.items():
            assert (check, state.levels[check], kind, element) in active


@given(st.lists(steps(), min_size=1, max_size=15))
def test_step_is_a_pure_function_of_state_inputs_and_time(sequence) -> None:
    state = PROTECTION.initial_state()
    now = 0.0
    for inputs, dt, reset in sequence:
        now += dt
        first, events_first = PROTECTION.step(state, inputs, now, reset)
        second, events_second = PROTECTION.step(state, inputs, now, reset)  # same old state
        assert repr(events_first) == repr(events_second)  # NaN values compare by text
        assert dict(first.levels) == dict(second.levels)
        for check, ds in first.debounce.items():
            other = second.debounce[check]
            assert np.array_equal(ds.cols, other.cols)
            assert np.array_equal(ds.counter, other.counter)
            assert np.array_equal(ds.active, other.active)
        state = first
