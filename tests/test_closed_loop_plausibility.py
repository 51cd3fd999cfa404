"""Valid but wrong readings in the closed loop: each is caught within its configured time.

Plant and controller run in lock-step virtual time (`hil.scenarios.plausibility`). Each
bound is the check's set delay plus what the check needs to see the fault: the slaves'
cell voltage period for a step to reach every cell, the plausibility evaluation period,
one control cycle; the rest time or the temperature window where the check waits for one.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from controller.adapters.base import Level
from controller.protection.checks import PLAUSIBILITY, Check
from hil.scenarios.plausibility import PlausibilityRun, demand, request
from hil.scenarios.session import Action, demo_config
from slaves.ageing import Ageing
from slaves.current_sensor import IvtResult, SensorFault
from slaves.ems import EmsRequest
from slaves.faults import CellVoltageOffset, CellVoltageStuck, SensorStuck

CONFIG = demo_config()
PROTECTION = CONFIG.protection
MODEL = PROTECTION.plausibility
CYCLE = CONFIG.cycle_s
CELL_PERIOD = 0.1  # s, the slaves' cell voltage frames
CURRENT_PERIOD = 0.02  # s, the IVT-S current frames
# until a load step shows in every reading: the load acts at its next step, then one
# period of each sensor
RESPONSE = CYCLE + CURRENT_PERIOD + CELL_PERIOD
INJECT, STEP = 10.0, 12.0  # s: the fault, then the load step that reveals it
MODULE, CELL, SENSOR = 3, 5, 1
NAMES = {c.value for c in PLAUSIBILITY}
PLAUSIBILITY_OUTLIER = Check.CELL_RESISTANCE_OUTLIER


def _start() -> list[Action]:
    return [
        Action(0.0, "standby with reset", request(EmsRequest.STANDBY, True)),
        Action(1.0, "discharge", request(EmsRequest.DISCHARGE)),
        Action(3.0, "50 A", demand(50.0)),
    ]


def _fault(apply) -> Action:
    return Action(INJECT, "fault", apply, True)


def _delay_clear(check: str) -> float:
    return PROTECTION.checks[check].levels[Level.FAULT].clear_delay_ms / 1000.0


def _delay(check: str, level: Level) -> float:
    return PROTECTION.checks[check].levels[level].set_delay_ms / 1000.0


def _run(actions: list[Action], duration: float) -> PlausibilityRun:
    with PlausibilityRun(_start() + actions, duration) as run:
        run.run()
    return run


def test_a_current_reading_stuck_at_50_a_while_200_a_flow_opens_the_contactors() -> None:
    run = _run(
        [
            _fault(lambda s, _: s.sensor.inject(SensorFault.STUCK_VALUE, [IvtResult.I])),
            Action(STEP, "load steps to the DCL (200 A)", demand(300.0)),
        ],
        16.0,
    )
    assert -min(run.plant_current) > 190.0  # the plant did carry the step
    bound = STEP + RESPONSE + _delay("current_sensor_stuck", Level.FAULT) + 2 * CYCLE
    detected = run.set_at("current_sensor_stuck", Level.FAULT)
    assert detected is not None and STEP < detected <= bound
    assert run.milestones.contactors_open is not None
    assert run.set_at("current_voltage_consistency", Level.FAULT) <= bound


def test_a_current_gain_error_is_an_alarm_at_the_next_load_step() -> None:
    run = _run(
        [
            _fault(lambda s, _: s.sensor.miscalibrate(gain=1.5)),
            Action(STEP, "150 A", demand(150.0)),
        ],
        16.0,
    )
    bound = STEP + RESPONSE + _delay("current_voltage_consistency", Level.ALARM) + 2 * CYCLE
    detected = run.set_at("current_voltage_consistency", Level.ALARM)
    assert detected is not None and STEP < detected <= bound
    assert run.set_at("current_sensor_stuck", Level.WARNING) is None


def test_a_current_offset_at_open_contactors_is_an_alarm() -> None:
    actions = [
        Action(0.0, "standby with reset", request(EmsRequest.STANDBY, True)),
        _fault(lambda s, _: s.sensor.miscalibrate(offset_a=8.0)),
    ]
    with PlausibilityRun(actions, 14.0) as run:
        run.run()
    bound = INJECT + _delay("current_at_open_contactors", Level.ALARM) + 0.02 + 2 * CYCLE
    detected = run.set_at("current_at_open_contactors", Level.ALARM)
    assert detected is not None and INJECT < detected <= bound


def test_a_held_cell_reading_under_150_a_is_a_fault_and_a_resistance_outlier() -> None:
    run = _run(
        [
            _fault(lambda s, _: s.faults.inject(CellVoltageStuck(MODULE, CELL))),
            Action(STEP, "150 A", demand(150.0)),
        ],
        15.0,
    )
    element = MODULE * 12 + CELL
    slack = RESPONSE + MODEL.evaluation_period_s + 2 * CYCLE
    detected = run.set_at("cell_voltage_stuck", Level.FAULT)
    assert detected is not None
    assert STEP < detected <= STEP + _delay("cell_voltage_stuck", Level.FAULT) + slack
    outlier = run.set_at("cell_resistance_outlier", Level.ALARM)
    assert outlier is not None
    assert outlier <= STEP + _delay("cell_resistance_outlier", Level.ALARM) + slack
    assert run.elements["cell_voltage_stuck"] == {element}
    assert run.elements["cell_resistance_outlier"] == {element}


def test_a_cell_offset_of_minus_80_mv_is_an_alarm_once_the_pack_has_rested() -> None:
    run = _run(
        [
            _fault(lambda s, _: s.faults.inject(CellVoltageOffset(MODULE, CELL, -0.08))),
            Action(STEP, "load off: rest", demand(0.0)),
        ],
        STEP + MODEL.rest_settle_s + 8.0,
    )
    rest = STEP + 2 * CYCLE  # the load follows at its next step, the sensor after
    bound = (
        rest
        + MODEL.rest_settle_s
        + _delay("cell_voltage_deviation", Level.ALARM)
        + MODEL.evaluation_period_s
        + 2 * CYCLE
    )
    detected = run.set_at("cell_voltage_deviation", Level.ALARM)
    assert detected is not None and rest + MODEL.rest_settle_s < detected <= bound
    assert run.set_at("cell_voltage_deviation", Level.FAULT) is None
    assert run.elements["cell_voltage_deviation"] == {MODULE * 12 + CELL}


def _temperature_bound(run: PlausibilityRun, healthy: np.ndarray, level: Level) -> float:
    """First time the healthy sensors' module rose by the threshold (plus the noise band)
    within half a window, plus the delays: the older snapshot is at least that old."""
    check = PROTECTION.checks["temperature_stuck"].levels[level]
    t = np.asarray(run.times)
    temp = np.asarray(run.module_temperature)[:, healthy].mean(axis=1)
    lag = round(MODEL.temperature_window_s / 2.0 / CYCLE)
    rise = temp[lag:] - temp[:-lag]
    reached = np.flatnonzero(rise >= check.threshold + 2 * MODEL.temperature_band_k)
    assert reached.size, "the plant never warmed enough"
    first = float(t[lag + reached[0]])
    return first + check.set_delay_ms / 1000.0 + MODEL.evaluation_period_s + 2 * CYCLE


@pytest.mark.parametrize("sensor", [None, SENSOR], ids=["all-four", "one-of-four"])
def test_stuck_temperature_sensors_are_found_while_the_pack_warms(sensor) -> None:
    run = _run(
        [
            _fault(lambda s, _: s.faults.inject(SensorStuck(MODULE, sensor, 25.0))),
            Action(STEP, "150 A", demand(150.0)),
        ],
        60.0,
    )
    stuck = {MODULE * 4 + k for k in range(4)} if sensor is None else {MODULE * 4 + sensor}
    healthy = np.array([m for m in range(8) if m != MODULE]) if sensor is None else [MODULE]
    detected = run.set_at("temperature_stuck", Level.FAULT)
    assert detected is not None
    assert detected <= _temperature_bound(run, healthy, Level.FAULT)
    assert run.elements["temperature_stuck"] == stuck
    true_module = np.asarray(run.module_temperature)[run.times.index(detected), MODULE]
    assert true_module < 40.0  # found long before the module could reach 70 degC unseen


def test_healthy_charge_discharge_rest_and_warming_raise_no_plausibility_diagnosis() -> None:
    actions = [
        Action(0.0, "standby with reset", request(EmsRequest.STANDBY, True)),
        Action(1.0, "discharge", request(EmsRequest.DISCHARGE)),
        Action(3.0, "150 A", demand(150.0)),
        Action(20.0, "40 A", demand(40.0)),
        Action(30.0, "200 A", demand(250.0)),
        Action(45.0, "rest", demand(0.0)),
        Action(50.0, "standby", request(EmsRequest.STANDBY)),
        Action(62.0, "charge", request(EmsRequest.CHARGE)),
        Action(63.0, "charge 100 A", demand(-100.0)),
        Action(90.0, "charge 30 A", demand(-30.0)),
        Action(100.0, "rest", demand(0.0)),
        Action(170.0, "discharge steps", demand(80.0)),
    ]
    with PlausibilityRun(actions, 180.0, initial_soc=0.5) as run:
        run.run()
    temp = np.asarray(run.module_temperature)
    assert temp.max() - temp.min() > 5.0  # the pack did warm (and cool)
    raised = {
        (d, lv) for (d, lv) in run.first_set if d in NAMES or d == "pack_voltage_plausibility"
    }
    assert raised == set()
    assert run.milestones.closed_charge is not None and run.milestones.closed_discharge is not None


def _aged(run: PlausibilityRun, growth: float) -> None:
    """Every cell of the plant aged to ``growth`` times its new R0 and R1."""
    cells = run.system.pack.plant.cells
    efc = 1000.0
    cells.chemistry = replace(
        cells.chemistry, ageing=Ageing(resistance_growth_per_efc=(growth - 1.0) / efc)
    )
    cells.ageing_rate = np.ones(cells.n)
    cells.age(efc=efc)


@pytest.mark.parametrize("gain", [1.0, 1.5], ids=["healthy", "gain-1.5"])
def test_a_pack_aged_to_1_8_times_its_resistance_is_judged_by_its_learnt_resistance(gain) -> None:
    """Steps up to the DCL while the pack warms raise nothing; a gain error is still found."""
    injected, step = 27.0, 30.0
    actions = [
        Action(8.0, "200 A (DCL)", demand(300.0)),
        Action(14.0, "40 A", demand(40.0)),
        Action(20.0, "200 A", demand(250.0)),
        Action(26.0, "50 A", demand(50.0)),
        Action(step, "120 A", demand(120.0)),
    ]
    if gain != 1.0:
        actions.append(Action(injected, "gain", lambda s, _: s.sensor.miscalibrate(gain=gain)))
    with PlausibilityRun(_start() + actions, 34.0) as run:
        _aged(run, 1.8)
        run.run()
    grown = run.system.pack.plant.cells.r0_25 / run.system.pack.plant.cells.new_r0_25
    np.testing.assert_allclose(grown, 1.8, rtol=1e-3)
    assert -min(run.plant_current) > 190.0
    temp = np.asarray(run.module_temperature)
    assert temp.max() - temp[0].max() > 4.0  # the resistance fell as the pack warmed
    for check in ("current_voltage_consistency", "current_sensor_stuck"):
        found = run.set_at(check, Level.WARNING)
        assert found is None or found > injected, check
    detected = run.set_at("current_voltage_consistency", Level.ALARM)
    if gain == 1.0:
        assert detected is None
    else:
        bound = step + RESPONSE + _delay("current_voltage_consistency", Level.ALARM) + 2 * CYCLE
        assert detected is not None and step < detected <= bound


class _Contactors(PlausibilityRun):
    """The run, with the contactor state and the outlier's fault level at every step."""

    def __init__(self, actions: list[Action], duration: float) -> None:
        super().__init__(actions, duration)
        self.closed: list[bool] = []
        self.outlier_fault: list[bool] = []

    def observe(self, now: float, result) -> None:
        super().observe(now, result)
        self.closed.append(result.state.contactors.state.name.startswith("CLOSED_"))
        level = result.state.protection.levels[PLAUSIBILITY_OUTLIER]
        self.outlier_fault.append(level >= Level.FAULT)


def _connection(factor: float):
    """One cell's resistance times ``factor`` (a poor connection; 1: repaired)."""

    def apply(system, _) -> None:
        cells = system.pack.plant.cells
        cells.r0_25[MODULE * 12 + CELL] = cells.new_r0_25[MODULE * 12 + CELL] * factor

    return apply


@pytest.mark.parametrize("repaired", [True, False], ids=["repaired", "not-repaired"])
def test_a_resistance_outlier_fault_is_reset_at_rest_and_judged_again_at_the_next_step(
    repaired,
) -> None:
    poor, step = 6.0, 8.0
    rest = step + 4.0  # the fault opened the contactors well before
    reset = rest + MODEL.rest_settle_s + _delay_clear("cell_resistance_outlier") + 1.0
    again = reset + 5.0
    actions = [
        Action(poor, "poor connection", _connection(4.0), True),
        Action(step, "100 A", demand(100.0)),
        Action(rest, "load off", demand(0.0)),
        Action(reset, "standby with reset, at rest", request(EmsRequest.STANDBY, True)),
        Action(reset + 2.0, "discharge", request(EmsRequest.DISCHARGE)),
        Action(again, "100 A", demand(100.0)),
    ]
    if repaired:
        actions.append(Action(rest, "repaired", _connection(1.0)))
    with _Contactors(_start() + actions, again + 4.0) as run:
        run.run()
    t = np.asarray(run.times)
    fault = np.asarray(run.outlier_fault)
    closed = np.asarray(run.closed)
    slack = RESPONSE + MODEL.evaluation_period_s + 2 * CYCLE
    delay = _delay("cell_resistance_outlier", Level.FAULT)
    first = run.set_at("cell_resistance_outlier", Level.FAULT)
    assert first is not None and step < first <= step + delay + slack
    assert run.elements["cell_resistance_outlier"] == {MODULE * 12 + CELL}
    resting = (t > first + 1.0) & (t < reset)
    assert fault[resting].all() and not closed[resting].any()  # latched at rest
    assert not fault[(t > reset + 1.0) & (t < again)].any()  # the reset was accepted
    assert closed[(t > reset + 3.0) & (t < again)].all()
    late = fault[t > again + delay + slack]
    if repaired:
        assert not late.any()
    else:
        tripped = t[(t > again) & fault]
        assert tripped.size and tripped[0] <= again + delay + slack
        assert late.all()
