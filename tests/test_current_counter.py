"""The current readings against the current sensor's own charge counter (IVT-S As result).

Closed loop in virtual time (`hil.scenarios.plausibility`): the counter and the readings
are made to disagree while a steady current flows, where no current step reveals anything
to the checks that compare the current with the cells.
"""

from __future__ import annotations

import numpy as np
import pytest

from controller.adapters.base import Level
from controller.measurements import Measurements
from controller.protection.counter_plausibility import COUNTER, counter_inputs
from hil.scenarios.plausibility import PlausibilityRun, demand, request
from hil.scenarios.session import Action, demo_config
from slaves.current_sensor import IvtResult, SensorFault
from slaves.ems import EmsRequest

CONFIG = demo_config()
MODEL = CONFIG.protection.plausibility
CHECK = "current_counter_disagreement"
INJECT = 20.0
COUNTER_PERIOD = 0.1  # s, the IVT-S As result


def _delay(level: Level) -> float:
    return CONFIG.protection.checks[CHECK].levels[level].set_delay_ms / 1000.0


def _run(fault: list[Action], duration: float) -> PlausibilityRun:
    actions = [
        Action(0.0, "standby with reset", request(EmsRequest.STANDBY, True)),
        Action(1.0, "discharge", request(EmsRequest.DISCHARGE)),
        Action(3.0, "50 A", demand(50.0)),
        Action(8.0, "200 A (DCL)", demand(300.0)),
        Action(14.0, "40 A", demand(40.0)),
        Action(17.0, "100 A", demand(100.0)),
        *fault,
    ]
    with PlausibilityRun(actions, duration) as run:
        run.run()
    return run


def _bound(disagreement_a: float, read_a: float, level: Level) -> float:
    """When the mean disagreement over a window crosses the level's threshold: the injected
    disagreement (A) fills the older snapshot's span (at most one window) up to the
    threshold in accuracies (at the mean current read); then a counter period, the set
    delay and two cycles."""
    threshold = CONFIG.protection.checks[CHECK].levels[level].threshold
    accuracy = MODEL.counter_accuracy_a + MODEL.counter_accuracy_fraction * read_a
    filled = MODEL.counter_window_s * threshold * accuracy / disagreement_a
    return INJECT + filled + COUNTER_PERIOD + _delay(level) + 2 * CONFIG.cycle_s


def test_a_counter_that_stops_while_100_a_flow_is_a_fault() -> None:
    stuck = Action(
        INJECT,
        "As stuck",
        lambda s, _: s.sensor.inject(SensorFault.STUCK_VALUE, [IvtResult.As]),
        True,
    )
    run = _run([stuck], 26.0)
    t, current = np.asarray(run.times), np.asarray(run.plant_current)
    steady = current[(t > INJECT - 1.0) & (t < INJECT + 1.0)]
    assert np.allclose(steady, -100.0, atol=1.0)  # a steady 100 A flowed
    detected = run.set_at(CHECK, Level.FAULT)
    assert detected is not None and INJECT < detected <= _bound(100.0, 100.0, Level.FAULT)
    assert run.milestones.contactors_open is not None
    for other in ("current_sensor_stuck", "current_voltage_consistency"):
        assert run.set_at(other, Level.WARNING) is None  # no step: only the counter sees it


def test_a_current_reading_frozen_at_100_a_while_the_load_creeps_to_125_a_is_an_alarm() -> None:
    """A change below the step the current/voltage comparison judges (30 A): only the
    counter shows the 25 A the reading no longer follows; the alarm's derating then keeps the
    disagreement below the fault level."""
    frozen = Action(
        INJECT,
        "I stuck",
        lambda s, _: s.sensor.inject(SensorFault.STUCK_VALUE, [IvtResult.I]),
        True,
    )
    run = _run([frozen, Action(INJECT, "125 A", demand(125.0))], 28.0)
    detected = run.set_at(CHECK, Level.ALARM)
    assert detected is not None and INJECT < detected
    t, current = np.asarray(run.times), np.asarray(run.plant_current)
    missed = -current[(t > INJECT + 0.1) & (t < detected)].max() - 100.0  # A the reading missed
    assert 20.0 < missed < 30.0
    assert detected <= _bound(missed, 100.0, Level.ALARM) + 0.1  # + the load's own step
    assert run.set_at("current_voltage_consistency", Level.WARNING) is None


def test_healthy_steps_keep_the_counter_and_the_readings_within_their_accuracy() -> None:
    run = _run([], 26.0)
    assert -min(run.plant_current) > 190.0
    assert run.set_at(CHECK, Level.WARNING) is None


@pytest.mark.parametrize("available", [(), (COUNTER,)], ids=["no-counter", "stale"])
def test_a_sensor_without_a_valid_counter_leaves_the_check_unjudged(available) -> None:
    """A mapping without a counter (the target not available) or a counter that stopped
    arriving gives no counter at all: the inputs keep their NaN default."""
    measurements = Measurements({COUNTER: 1}, available=available)
    measurements[COUNTER].value[:] = 12.0
    measurements[COUNTER].reported_valid[:] = True
    measurements[COUNTER].updated_at[:] = 1.0
    assert counter_inputs(measurements, 2.0, 0.35) == {}
    if available:
        fresh = counter_inputs(measurements, 1.1, 0.35)
        assert fresh["charge_counter"] == 12.0 and fresh["charge_counter_at"] == 1.0
