"""What the per-cell SOC filter learns of each cell (capacity, resistance, hysteresis branch)
and what that buys: plant cells that differ from the model as real cells do."""

from __future__ import annotations

import numpy as np
import pytest
from test_limits_soc import inputs, model_config

from controller.limits import SocEstimator
from controller.limits.soc import pack_soc
from slaves.cells import CellArray, CellSpread
from slaves.chemistry import LFP, NMC

CELLS = 48


def _run(estimator, plant, legs, dt, state=None, t=0.0):  # noqa: ANN001, ANN202
    """Plant and estimator through ``legs`` of (seconds, A) from time ``t``; the last state,
    per step (current, the estimate, the true pack SOC), and the time at the end."""
    state = state or estimator.initial_state()
    capacity = np.full(plant.n, estimator.config.capacity_ah)
    seen = []
    for duration, current in legs:
        for _ in range(round(duration / dt)):
            plant.step(dt, current, 25.0)
            t += dt
            state = estimator.step(state, inputs(plant.voltage.copy(), current, t, capacity), t)
            truth = np.clip(plant.soc * 100.0, 0.0, 100.0)
            seen.append((current, state, pack_soc(truth, plant.capacity_c / 3600.0)))
    return state, seen, t


def test_a_discharge_near_full_never_raises_the_pack_soc():
    """Cells whose resistances differ by 5 % (the plant's spread) at 3C near full: a filter
    that took the resistance error for noise read the low-resistance cells as fuller and the
    pack SOC, which the fullest cell decides near full, rose while the pack discharged."""
    plant = CellArray(NMC, CELLS, np.random.default_rng(3), initial_soc=0.93)
    estimator = SocEstimator(model_config(), CELLS)
    _, seen, _ = _run(estimator, plant, [(30.0, 0.0), (60.0, -3.0 * NMC.capacity_ah)], 0.1)
    under_load = [(s.pack, truth) for current, s, truth in seen if current < 0 and s.valid]
    published = np.array([p for p, _ in under_load])
    assert np.all(np.diff(published) <= 1e-3)
    assert max(abs(p - truth) for p, truth in under_load) < 0.3


def test_it_learns_each_cells_capacity_and_resistance():
    """10 % capacity and 10 % resistance spread, no [soh] measurement: after two hours of
    current steps with rests the filter's capacity and resistance of every cell are close to
    the plant's, and the pack SOC weighed with them is right."""
    spread = CellSpread(capacity=0.10, resistance=0.10)
    plant = CellArray(NMC, CELLS, np.random.default_rng(4), initial_soc=0.9, spread=spread)
    estimator = SocEstimator(model_config(), CELLS)
    c = NMC.capacity_ah
    legs = [(600.0, 0.0)] + [(300.0, -0.8 * c), (120.0, -0.2 * c), (60.0, 0.0)] * 6
    legs += [(300.0, 0.5 * c), (60.0, -0.5 * c)] * 4
    state, seen, _ = _run(estimator, plant, legs, 1.0)
    f = state.filter
    capacity_error = f.capacity_ah / (plant.capacity_c / 3600.0) - 1.0
    resistance_error = f.resistance_ohm / plant.r0_25 - 1.0
    assumed_error = NMC.capacity_ah / (plant.capacity_c / 3600.0) - 1.0
    assert np.max(np.abs(capacity_error)) < 0.04 < np.max(np.abs(assumed_error)) / 3.0
    assert np.sqrt(np.mean(capacity_error**2)) < 0.02
    assert np.max(np.abs(resistance_error)) < 0.05
    last_hour = [s.pack - truth for _, s, truth in seen[-3600:]]
    assert max(abs(e) for e in last_hour) < 1.0


@pytest.mark.parametrize("branch", [-1.0, 1.0])
def test_an_lfp_restart_on_the_plateau_waits_for_the_branch(branch):
    """LFP rested on the plateau after charging or discharging: its rest voltage fits either
    branch 12 points apart, so a restart publishes no SOC; once charge has flowed one way the
    branch is known and the SOC is published and right."""
    plant = CellArray(LFP, CELLS, np.random.default_rng(5), 0.5, initial_hysteresis=branch)
    estimator = SocEstimator(model_config("lfp"), CELLS)
    state, seen, t = _run(estimator, plant, [(1800.0, 0.0)], 1.0)
    assert not any(s.valid for _, s, _ in seen)
    _, seen, _ = _run(estimator, plant, [(1800.0, -0.3 * LFP.capacity_ah)], 1.0, state, t)
    assert seen[-1][1].valid
    assert np.all(np.abs(seen[-1][1].filter.h + 1.0) < 0.05)
    assert abs(seen[-1][1].pack - seen[-1][2]) < 2.0
