"""CCL/DCL/CVL/DVL: each table, their minimum, fault and invalid data, cuts, hold and ramp."""

from __future__ import annotations

import math
import timeit

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from controller.limits import Derating, LimitInputs, parse_limits
from controller.measurements import ArrayStats

TABLES = {
    "charge": {
        "temperature": {"x": [0, 10, 40, 50], "y": [0, 1, 1, 0]},
        "cell_voltage": {"x": [4.0, 4.2], "y": [1, 0]},
        "soc": {"x": [80, 100], "y": [1, 0.2]},
    },
    "discharge": {
        "temperature": {"x": [-20, 0, 45, 55], "y": [0, 1, 1, 0]},
        "cell_voltage": {"x": [3.0, 3.4], "y": [0, 1]},
        "soc": {"x": [0, 10], "y": [0, 1]},
    },
}
RAW = {
    "cells_in_series": 96,
    "max_charge_current_a": 100.0,
    "max_discharge_current_a": 200.0,
    "charge_cell_voltage_v": 4.15,
    "discharge_cell_voltage_v": 3.0,
    "alarm_factor": 0.5,
    "ramp_rate_a_per_s": 5.0,
    "hold_s": 10.0,
    **TABLES,
}
CFG = parse_limits(RAW)
NOMINAL = LimitInputs(
    cell_voltage_min=3.7,
    cell_voltage_max=3.8,
    temperature_min=20.0,
    temperature_max=25.0,
    soc_min=50.0,
    soc_max=55.0,
    pack_voltage=360.0,
)


def ref_interp(points: dict, x: float) -> float:
    """Independent linear interpolation, clamped at both ends."""
    xs, ys = points["x"], points["y"]
    if x <= xs[0]:
        return ys[0]
    for (x0, y0), (x1, y1) in zip(
        zip(xs, ys, strict=True), zip(xs[1:], ys[1:], strict=True), strict=False
    ):
        if x <= x1:
            return y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    return ys[-1]


def with_(**changes) -> LimitInputs:
    return LimitInputs(**{**NOMINAL.__dict__, **changes})


def test_nominal_inputs_give_the_configured_maxima():
    ccl, why_c, dcl, why_d = Derating(CFG).targets(NOMINAL)
    assert (ccl, dcl) == (100.0, 200.0)
    assert why_c == why_d == "none"


@pytest.mark.parametrize(
    ("field", "value", "direction", "table", "reason"),
    [
        ("temperature_min", 5.0, "charge", "temperature", "temperature"),
        ("temperature_max", 45.0, "charge", "temperature", "temperature"),
        ("temperature_min", -10.0, "discharge", "temperature", "temperature"),
        ("temperature_max", 50.0, "discharge", "temperature", "temperature"),
        ("cell_voltage_max", 4.1, "charge", "cell_voltage", "cell_voltage"),
        ("cell_voltage_min", 3.2, "discharge", "cell_voltage", "cell_voltage"),
        ("soc_max", 90.0, "charge", "soc", "soc"),
        ("soc_min", 5.0, "discharge", "soc", "soc"),
    ],
)
def test_each_table_derates_its_direction_only(field, value, direction, table, reason):
    ccl, why_c, dcl, why_d = Derating(CFG).targets(with_(**{field: value}))
    expected = ref_interp(TABLES[direction][table], value)
    assert 0.0 < expected < 1.0
    own, why, other = (
        (ccl / 100.0, why_c, dcl) if direction == "charge" else (dcl / 200.0, why_d, ccl)
    )
    assert own == pytest.approx(expected) and why == reason
    if table != "temperature":  # temperature tables exist for both directions
        assert other == (200.0 if direction == "charge" else 100.0)


@given(
    t_low=st.floats(-30, 60),
    t_span=st.floats(0, 30),
    v_low=st.floats(2.8, 4.3),
    v_span=st.floats(0, 0.5),
    soc_low=st.floats(0, 100),
    soc_span=st.floats(0, 20),
    alarm=st.booleans(),
)
def test_targets_are_the_minimum_of_every_table(
    t_low, t_span, v_low, v_span, soc_low, soc_span, alarm
):
    i = LimitInputs(
        cell_voltage_min=v_low,
        cell_voltage_max=v_low + v_span,
        temperature_min=t_low,
        temperature_max=t_low + t_span,
        soc_min=soc_low,
        soc_max=min(100.0, soc_low + soc_span),
        pack_voltage=350.0,
        alarm=alarm,
    )
    ccl, _, dcl, _ = Derating(CFG).targets(i)
    c, d = TABLES["charge"], TABLES["discharge"]
    factor = 0.5 if alarm else 1.0
    want_c = min(
        ref_interp(c["temperature"], i.temperature_min),
        ref_interp(c["temperature"], i.temperature_max),
        ref_interp(c["cell_voltage"], i.cell_voltage_max),
        ref_interp(c["soc"], i.soc_max),
    )
    want_d = min(
        ref_interp(d["temperature"], i.temperature_min),
        ref_interp(d["temperature"], i.temperature_max),
        ref_interp(d["cell_voltage"], i.cell_voltage_min),
        ref_interp(d["soc"], i.soc_min),
    )
    assert ccl == pytest.approx(100.0 * factor * want_c, abs=1e-9)
    assert dcl == pytest.approx(200.0 * factor * want_d, abs=1e-9)


def test_alarm_halves_both_limits():
    ccl, why_c, dcl, why_d = Derating(CFG).targets(with_(alarm=True))
    assert (ccl, dcl) == (50.0, 100.0) and why_c == why_d == "alarm"


@pytest.mark.parametrize(
    "field", ["temperature_min", "temperature_max", "cell_voltage_min", "cell_voltage_max"]
)
def test_unknown_statistics_zero_both_currents(field):
    ccl, why_c, dcl, why_d = Derating(CFG).targets(with_(**{field: math.nan}))
    assert ccl == dcl == 0.0 and why_c == why_d == "invalid"


def test_unknown_soc_zeroes_only_directions_with_a_soc_table():
    assert Derating(CFG).targets(with_(soc_min=math.nan, soc_max=math.nan))[::2] == (0.0, 0.0)
    no_soc = {k: {t: v for t, v in tbl.items() if t != "soc"} for k, tbl in TABLES.items()}
    cfg = parse_limits({**RAW, **no_soc})
    assert Derating(cfg).targets(with_(soc_min=math.nan, soc_max=math.nan))[::2] == (100.0, 200.0)


def test_fault_zeroes_currents_and_lowers_cvl_to_the_pack_voltage():
    d = Derating(CFG)
    state, lim = d.step(d.initial_state(), NOMINAL, 0.0)
    assert lim.cvl == pytest.approx(96 * 4.15) and lim.dvl == pytest.approx(96 * 3.0)
    _, lim = d.step(state, with_(fault=True), 0.1)
    assert (lim.ccl, lim.dcl, lim.cvl) == (0.0, 0.0, 360.0)
    assert lim.charge_limited_by == "fault"
    _, lim = d.step(state, with_(fault=True, pack_voltage=math.nan), 0.1)
    assert lim.cvl == pytest.approx(96 * 3.0) and lim.cvl > 0.0
    _, lim = d.step(state, with_(fault=True, pack_voltage=420.0), 0.1)
    assert lim.cvl == pytest.approx(96 * 4.15)  # never above the configured CVL


def test_disabled_zeroes_currents_but_keeps_cvl():
    d = Derating(CFG)
    _, lim = d.step(d.initial_state(), with_(enabled=False), 0.0)
    assert (lim.ccl, lim.dcl) == (0.0, 0.0) and lim.cvl == pytest.approx(96 * 4.15)


def run(d: Derating, state, inputs: LimitInputs, t0: float, seconds: float, dt: float = 0.1):
    trace = []
    for k in range(1, round(seconds / dt) + 1):
        state, lim = d.step(state, inputs, round(t0 + k * dt, 9))
        trace.append((round(t0 + k * dt, 9), lim))
    return state, trace


def test_startup_ramps_from_zero_without_hold():
    d = Derating(CFG)
    state, lim = d.step(d.initial_state(), NOMINAL, 0.0)
    assert lim.ccl == 0.0 and lim.charge_target == 100.0
    state, trace = run(d, state, NOMINAL, 0.0, 45.0)
    times = {
        name: next(t for t, lim in trace if getattr(lim, name) >= target)
        for name, target in (("ccl", 100.0), ("dcl", 200.0))
    }
    assert times["ccl"] == pytest.approx(100.0 / 5.0, abs=0.1 + 1e-9)  # one 0.1 s step
    assert times["dcl"] == pytest.approx(200.0 / 5.0, abs=0.1 + 1e-9)


def test_cut_applies_at_once_then_holds_then_ramps():
    d = Derating(CFG)
    state, _ = d.step(d.initial_state(), NOMINAL, 0.0)
    state, _ = run(d, state, NOMINAL, 0.0, 60.0)
    assert (state.ccl, state.dcl) == (100.0, 200.0)
    hot = with_(temperature_max=45.0)  # charge 0.5, discharge 1.0
    state, lim = d.step(state, hot, 60.1)
    assert lim.ccl == pytest.approx(50.0) and lim.dcl == 200.0
    state, trace = run(d, state, NOMINAL, 60.1, 20.0)
    held = [lim.ccl for t, lim in trace if t - 60.1 < CFG.hold_s - 1e-9]
    assert held and all(c == pytest.approx(50.0) for c in held)
    rising = [(t, lim.ccl) for t, lim in trace if t - 60.1 >= CFG.hold_s]
    for (t0, c0), (t1, c1) in zip(rising, rising[1:], strict=False):
        assert c1 - c0 <= CFG.ramp_rate_a_per_s * (t1 - t0) + 1e-9
    assert trace[-1][1].ccl == pytest.approx(min(100.0, 50.0 + 5.0 * (20.0 - CFG.hold_s)))


@given(
    steps=st.lists(
        st.tuples(st.floats(0.001, 2.0), st.floats(-30, 60), st.floats(2.9, 4.3), st.booleans()),
        min_size=1,
        max_size=60,
    )
)
def test_limits_never_exceed_target_nor_rise_faster_than_the_ramp(steps):
    d = Derating(CFG)
    state = d.initial_state()
    now, last_cut = 0.0, -math.inf
    for dt, temp, volt, fault in steps:
        now += dt
        before = state.ccl
        state, lim = d.step(
            state, with_(temperature_max=temp, cell_voltage_max=volt, fault=fault), now
        )
        assert 0.0 <= lim.ccl <= lim.charge_target + 1e-12
        if lim.charge_target < before:
            assert lim.ccl == lim.charge_target  # cuts are immediate
            last_cut = now
        elif lim.ccl > before:
            assert now - last_cut >= CFG.hold_s
            assert lim.ccl - before <= CFG.ramp_rate_a_per_s * dt + 1e-9


def test_one_step_is_independent_of_the_cell_count_and_fast():
    d = Derating(CFG)
    state = d.initial_state()
    step_s = min(timeit.repeat(lambda: d.step(state, NOMINAL, 1.0), number=2000, repeat=5)) / 2000
    rng = np.random.default_rng(1)
    cells = rng.uniform(3.6, 3.9, 10_000)
    valid = np.ones(10_000, bool)
    stats_s = min(timeit.repeat(lambda: ArrayStats.of(cells, valid), number=200, repeat=5)) / 200
    print(f"limits step {step_s * 1e6:.1f} us; min/max of 10,000 cells {stats_s * 1e6:.1f} us")
    assert step_s < 1e-4
