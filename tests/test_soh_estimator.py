"""SOH estimator on synthetic cells: capacity and resistance recovered from consistent data,
nothing measured without two rests, invalid current voids a pair, never NaN published."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from controller.config.declare import load
from controller.estimation import SohConfig, SohEstimator, SohState
from controller.limits import parse_soc
from controller.presets import load_preset

DT = 0.1  # s per step
LONG = 10.0  # s per step while nothing but the charge changes
REST_S = 10.0
SOC = parse_soc({**load_preset("soc", "nmc"), "rest_current_a": 0.1, "rest_time_s": REST_S})
CONFIG = load(SohConfig, {"settle_ms": 200.0, "max_sample_interval_ms": 500.0}, "soh")


class Cells:
    """Ideal cells: the OCV table of ``SOC`` plus an ohmic resistance, readings every step."""

    def __init__(self, capacity_ah: np.ndarray, resistance_ohm: np.ndarray, soc: np.ndarray):
        self.capacity_ah, self.resistance_ohm, self.soc = capacity_ah, resistance_ohm, soc

    def step(self, current: float, dt: float) -> np.ndarray:
        """Carry ``current`` for ``dt``; the voltages read at the end of it."""
        self.soc = self.soc + 100.0 * current * dt / 3600.0 / self.capacity_ah
        return np.interp(self.soc, SOC.ocv.x, SOC.ocv.y) + current * self.resistance_ohm


class Run:
    """Estimator and cells stepped together; ``valid`` false hides the current from the
    estimator (the cells still carry it)."""

    def __init__(self, cells: Cells, config: SohConfig = CONFIG) -> None:
        self.cells = cells
        self.n = cells.soc.size
        self.estimator = SohEstimator(config, SOC, self.n)
        self.state: SohState = self.estimator.initial_state()
        self.now = 0.0
        self.published: list[float] = []

    def hold(self, current: float, seconds: float, valid: bool = True, dt: float = DT) -> None:
        for _ in range(round(seconds / dt)):
            self.step(current, valid, dt=dt)

    def step(
        self, current: float, valid: bool = True, bleed=None, voltage=None, dt: float = DT
    ) -> None:
        carried = dt if self.now > 0 else 0.0
        self.now += dt
        measured = self.cells.step(current, carried) if voltage is None else voltage
        self.state = self.estimator.step(
            self.state,
            measured,
            np.isfinite(measured),
            np.full(self.n, self.now),
            current,
            valid,
            np.zeros(self.n, bool) if bleed is None else bleed,
            self.now,
        )
        self.published.append(self.state.health.pack_soh)


def pack(capacity_ah, ratios, soc):
    n = len(ratios)
    return Cells(
        capacity_ah * np.array(ratios), np.full(n, 1e-3), np.array(soc[:n], float) + np.zeros(n)
    )


ratios = st.lists(st.floats(1.0, 2.0), min_size=1, max_size=16)
AMPS = 14.0  # for half an hour: 35-70 % of cells of 10 to 20 Ah
start_soc = st.lists(st.floats(92.0, 98.0), min_size=16, max_size=16)


@given(
    capacity=st.floats(1.0, 200.0),
    ratios=ratios,
    soc=start_soc,
    depth=st.floats(0.35, 0.45),
    hours=st.floats(0.5, 3.0),
)
def test_capacity_of_every_cell_is_recovered_across_two_rests_and_stays_through_a_third(
    capacity, ratios, soc, depth, hours
):
    run = Run(pack(capacity, ratios, soc))
    true = run.cells.capacity_ah
    amps = depth * 2.0 * capacity / hours  # the smallest cell swings 70-90 %, the largest 35-45
    run.hold(0.0, REST_S + 1)
    run.hold(-amps, hours * 3600.0, dt=LONG)
    run.hold(0.0, REST_S + 1)
    np.testing.assert_allclose(run.state.health.capacity_ah, true, rtol=1e-9)
    run.hold(+amps, hours * 3600.0, dt=LONG)
    run.hold(0.0, REST_S + 1)
    np.testing.assert_allclose(run.state.health.capacity_ah, true, rtol=1e-9)
    soh = 100.0 * true.min() / SOC.capacity_ah
    assert run.state.health.pack_soh == pytest.approx(min(soh, 100.0), rel=1e-9)
    assert true[run.state.health.weakest_cell] == pytest.approx(true.min(), rel=1e-9)


@given(capacity=st.floats(1.0, 50.0), soc=start_soc, swing=st.floats(5.0, 29.0))
def test_a_swing_below_the_minimum_measures_nothing(capacity, soc, swing):
    run = Run(pack(capacity, [1.0, 1.0], soc))
    run.hold(0.0, REST_S + 1)
    run.hold(-capacity * swing / 100.0 * 36.0, 100.0)  # `swing` % in 100 s
    run.hold(0.0, REST_S + 1)
    assert np.isnan(run.state.health.capacity_ah).all()
    assert run.state.health.pack_soh == CONFIG.initial_soh_percent


@given(ratios=ratios, soc=start_soc, rest=st.floats(0.0, REST_S - 2 * DT))
def test_no_capacity_without_two_full_rests(ratios, soc, rest):
    run = Run(pack(10.0, ratios, soc))
    run.hold(-10.0, 10.0)  # under load from the start: no rest point yet
    run.hold(0.0, rest)  # too short to count
    run.hold(-20.0, 900.0, dt=LONG)
    run.hold(0.0, REST_S + 1)  # the first rest point: still only one
    assert np.isnan(run.state.health.capacity_ah).all()
    assert run.state.health.capacity_measured == 0
    assert set(run.published) == {CONFIG.initial_soh_percent}


@given(ratios=ratios, soc=start_soc, invalid_at=st.floats(0.0, 1.0))
def test_invalid_current_between_two_rests_voids_the_pair(ratios, soc, invalid_at):
    run = Run(pack(10.0, ratios, soc))
    run.hold(0.0, REST_S + 1)
    before = round(invalid_at * 180.0) * LONG
    run.hold(-AMPS, before, dt=LONG)
    run.step(-AMPS, valid=False, dt=LONG)
    run.hold(-AMPS, 1800.0 - before, dt=LONG)
    run.hold(0.0, REST_S + 1)
    assert np.isnan(run.state.health.capacity_ah).all()
    run.hold(+AMPS, 1800.0, dt=LONG)  # the rest after the invalid current is a new start
    run.hold(0.0, REST_S + 1)
    np.testing.assert_allclose(run.state.health.capacity_ah, run.cells.capacity_ah, rtol=1e-9)


@given(ratios=ratios, soc=start_soc, data=st.data())
def test_a_cell_bled_between_two_rests_is_not_measured(ratios, soc, data):
    run = Run(pack(10.0, ratios, soc))
    bled = np.array(data.draw(st.lists(st.booleans(), min_size=run.n, max_size=run.n)))
    run.hold(0.0, REST_S + 1)
    run.hold(-AMPS, 900.0, dt=LONG)
    run.step(-AMPS, bleed=bled, dt=LONG)
    run.hold(-AMPS, 900.0, dt=LONG)
    run.hold(0.0, REST_S + 1)
    measured = ~np.isnan(run.state.health.capacity_ah)
    np.testing.assert_array_equal(measured, ~bled)


levels = st.lists(st.floats(-300.0, 300.0), min_size=2, max_size=12)


@given(
    resistance=st.lists(st.floats(1e-4, 5e-3), min_size=1, max_size=16),
    levels=levels,
    hold=st.floats(0.5, 2.0),
)
def test_resistance_of_every_cell_is_recovered_at_current_steps(resistance, levels, hold):
    r = np.array(resistance)
    n = r.size
    run = Run(Cells(np.full(n, 1e12), r, np.full(n, 50.0)))  # no OCV drift in between
    steps = np.count_nonzero(np.abs(np.diff(levels)) >= CONFIG.min_current_step_a)
    for amps in levels:
        run.hold(amps, hold)
    estimate = run.state.health.resistance_ohm
    if steps == 0:
        assert np.isnan(estimate).all()
    else:
        np.testing.assert_allclose(estimate, r, rtol=1e-6)
        assert run.state.health.highest_resistance_cell == int(np.argmax(r))


def test_resistance_needs_a_steady_current_and_readings_close_in_time():
    r = np.full(3, 2e-3)
    run = Run(Cells(np.full(3, 1e12), r, np.full(3, 50.0)))
    run.hold(0.0, 1.0)
    for k in range(40):  # a current that never settles: no reading is kept
        run.step(50.0 if k % 2 else 0.0)
    assert np.isnan(run.state.health.resistance_ohm).all()
    slow = load(SohConfig, {"settle_ms": 1000.0, "max_sample_interval_ms": 500.0}, "soh")
    run = Run(Cells(np.full(3, 1e12), r, np.full(3, 50.0)), slow)
    run.hold(0.0, 2.0)
    run.hold(50.0, 2.0)  # steady again only 1 s after the step: the readings are too far apart
    assert np.isnan(run.state.health.resistance_ohm).all()


def test_invalid_current_or_cells_give_no_resistance():
    r = np.full(2, 2e-3)
    run = Run(Cells(np.full(2, 1e12), r, np.full(2, 50.0)))
    run.hold(0.0, 1.0)
    run.hold(50.0, 1.0, valid=False)
    assert np.isnan(run.state.health.resistance_ohm).all()
    run.hold(0.0, 1.0)
    for _ in range(10):
        run.step(50.0, voltage=np.array([math.nan, 3.8]))
    assert np.isnan(run.state.health.resistance_ohm[0])
    assert run.state.health.resistance_ohm[1] > 0


@given(
    steps=st.lists(
        st.tuples(
            st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.floats(-500, 500)),
            st.booleans(),
            st.lists(
                st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.floats(2.0, 4.5)),
                min_size=4,
                max_size=4,
            ),
            st.lists(st.booleans(), min_size=4, max_size=4),
        ),
        max_size=60,
    )
)
def test_the_published_soh_is_always_a_number_between_0_and_100(steps):
    fast = parse_soc({**load_preset("soc", "nmc"), "rest_current_a": 1.0, "rest_time_s": 0.0})
    estimator = SohEstimator(load(SohConfig, {"settle_ms": 0.0}, "soh"), fast, 4)
    state = estimator.initial_state()
    for k, (current, valid, volts, bleed) in enumerate(steps):
        v = np.array(volts)
        state = estimator.step(
            state, v, np.isfinite(v), np.full(4, k * DT), current, valid, np.array(bleed), k * DT
        )
        soh = state.health.pack_soh
        assert math.isfinite(soh) and 0.0 <= soh <= 100.0
        assert not np.isinf(state.health.capacity_ah).any()
        assert not (state.health.capacity_ah <= 0).any()
        assert not (state.health.resistance_ohm <= 0).any()


@given(
    capacity=st.lists(st.one_of(st.floats(allow_nan=True), st.none()), min_size=3, max_size=3),
    initial=st.floats(0.0, 100.0),
)
def test_before_any_measurement_the_stored_or_the_initial_soh_is_published(capacity, initial):
    config = load(SohConfig, {"initial_soh_percent": initial}, "soh")
    estimator = SohEstimator(config, SOC, 3)
    stored = [math.nan if c is None else c for c in capacity]
    health = estimator.initial_state(stored).health
    usable = [c for c in stored if math.isfinite(c) and c > 0]
    assumed = SOC.capacity_ah * initial / 100.0
    weakest = min([*usable, *([assumed] * (3 - len(usable)))])
    assert health.pack_soh == pytest.approx(
        min(100.0, max(0.0, 100.0 * weakest / SOC.capacity_ah)), abs=1e-9
    )
    assert estimator.initial_state([90.0] * 4).health.capacity_measured == 0  # other pack size
