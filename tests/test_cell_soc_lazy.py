"""A large pack's SOC filter (`controller.estimation.deferred`: the prediction applied to a
cell when it is corrected or read) against the filter that predicts every cell at every
step: the same estimate, covariance and published SOC at every step, for random currents,
step lengths, temperatures, readings, capacity changes and lost currents, and old states
that read and step as they did when they were made."""

from __future__ import annotations

import math
from dataclasses import replace
from unittest import mock

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.estimation import deferred
from controller.estimation.cell_soc import CellSocFilter
from controller.limits import SocEstimator, SocInputs, parse_soc
from controller.measurements import ArrayStats
from controller.presets import load_preset

CELLS = 10
NOMINAL_AH = 50.0
TOLERANCE = 1e-9  # relative, to each value's scale
STATE_SCALE = np.array([1.0, 1e-3, 1e-2, 1e-5, 1e-2])  # SOC %, V1 V, q, R0 Ohm, h


def estimators(chemistry: str, settle_ms: float) -> tuple[SocEstimator, SocEstimator]:
    """The predicting-every-cell estimator and the deferring one, for ``CELLS`` cells."""
    config = parse_soc(
        {**load_preset("soc", chemistry), "capacity_ah": NOMINAL_AH, "settle_ms": settle_ms}
    )
    every, deferring = SocEstimator(config, CELLS), SocEstimator(config, CELLS)
    every.filter = CellSocFilter(config, CELLS, deferred=False)
    deferring.filter = CellSocFilter(config, CELLS, deferred=True)
    return every, deferring


step_strategy = st.fixed_dictionaries(
    {
        "dt": st.one_of(st.just(0.0), st.just(0.01), st.floats(0.001, 5.0)),
        "current": st.one_of(st.just(0.0), st.floats(-0.2, 0.2), st.floats(-250.0, 150.0)),
        "lost": st.integers(0, 9).map(lambda n: n == 0),  # one step in ten without a current
        "temperature": st.one_of(st.just(math.nan), st.floats(-20.0, 55.0)),
        "fresh": st.lists(st.integers(0, 3).map(lambda n: n == 0), min_size=CELLS, max_size=CELLS),
        "offset_mv": st.lists(st.floats(-40.0, 40.0), min_size=CELLS, max_size=CELLS),
        "capacity": st.one_of(
            st.none(),
            st.tuples(st.integers(0, CELLS - 1), st.floats(0.7 * NOMINAL_AH, 1.1 * NOMINAL_AH)),
        ),
        "invalid": st.integers(0, CELLS),  # a cell whose reading is invalid (CELLS: none)
    }
)


def assert_same(ours, reference) -> None:
    """The deferring filter's state reads as the reference's, to rounding."""
    f, g = ours.filter, reference.filter
    assert np.array_equal(np.isnan(f.soc), np.isnan(g.soc))
    k = g.x.shape[0]
    scale = np.abs(g.x) + STATE_SCALE[:k, None]
    both_unknown = np.isnan(f.x) & np.isnan(g.x)
    assert np.all((np.abs(f.x - g.x) <= TOLERANCE * scale) | both_unknown)
    rows, cols = np.triu_indices(k)
    variance = np.abs(g.cov_packed[rows == cols])  # (states, cells)
    entry_scale = np.sqrt(variance[rows] * variance[cols])
    assert np.all(np.abs(f.cov_packed - g.cov_packed) <= TOLERANCE * entry_scale + 1e-300)
    assert np.array_equal(f.soc_variance, f.cov_packed[0])
    assert np.array_equal(f.measured_at, g.measured_at)
    assert f.last_current == g.last_current
    for name in ("soc_min", "soc_max", "soc_mean", "pack"):
        a, b = getattr(ours, name), getattr(reference, name)
        assert (math.isnan(a) and math.isnan(b)) or abs(a - b) <= TOLERANCE * 100.0
    assert ours.valid == reference.valid


def inputs_of(filter_: CellSocFilter, step: dict, now: float, capacity, soc_guess) -> SocInputs:
    """Readings near the OCV of a plausible SOC, under the step's current."""
    voltage = filter_.ocv(soc_guess) + step["current"] * 1e-3 + np.array(step["offset_mv"]) / 1e3
    valid = np.ones(CELLS, bool)
    if step["invalid"] < CELLS:
        valid[step["invalid"]] = False
        voltage[step["invalid"]] = math.nan
    updated_at = np.where(step["fresh"], now, now - 1.0)
    return SocInputs(
        voltage,
        valid,
        updated_at,
        ArrayStats.of(voltage, valid),
        step["current"],
        not step["lost"],
        step["temperature"],
        capacity,
        np.where(np.arange(CELLS) % 3 == 0, 1.2e-3, math.nan),
    )


@settings(max_examples=200, deadline=None)
@given(
    chemistry=st.sampled_from(["nmc", "lfp"]),
    settle_ms=st.sampled_from([0.0, 200.0]),
    stored=st.booleans(),
    slots=st.sampled_from([2, 3, deferred.SLOTS]),
    steps=st.lists(step_strategy, min_size=1, max_size=40),
    soc_guess=st.lists(st.floats(5.0, 95.0), min_size=CELLS, max_size=CELLS),
    branch_at=st.integers(0, 39),
)
def test_deferring_the_prediction_reads_and_steps_as_predicting_every_cell(
    chemistry, settle_ms, stored, slots, steps, soc_guess, branch_at
):
    every, deferring = estimators(chemistry, settle_ms)
    soc_guess = np.array(soc_guess)
    start = soc_guess + 3.0 if stored else ()
    reference, ours = every.initial_state(start), deferring.initial_state(start)
    capacity = np.full(CELLS, NOMINAL_AH)
    now = 100.0
    kept = None  # an early state, read only at the end, and what it must read as
    with mock.patch.object(deferred, "SLOTS", slots):
        for n, step in enumerate(steps):
            now += step["dt"]
            if step["capacity"] is not None:
                capacity = capacity.copy()
                capacity[step["capacity"][0]] = step["capacity"][1]
            i = inputs_of(every.filter, step, now, capacity, soc_guess)
            reference, ours = every.step(reference, i, now), deferring.step(ours, i, now)
            if n == branch_at:  # a twin that has not been read yet
                kept = (replace(ours, filter=replace(ours.filter)), reference, i, now)
            assert_same(ours, reference)
        if kept is not None:
            old, old_reference, i, then = kept
            # read first after newer states were made from it, then stepped again from it
            assert_same(old, old_reference)
            again = deferring.step(old, i, then + 0.5)
            assert_same(again, every.step(old_reference, i, then + 0.5))
