"""The per-cell SOC filter's whole-array step against the textbook extended Kalman filter
written out with one dense matrix per cell: prediction P' = F P F^T + Q, correction
K = P H^T / (H P H^T + R), x' = x + K (V - h(x)), P' = P - K H P, for random states,
covariances, currents and readings."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from controller.estimation.cell_soc import (
    BIAS_HORIZON_S,
    CAP,
    CAPACITY_DRIFT,
    HYS,
    HYSTERESIS_DRIFT,
    LINEARISED_OVER,
    RES,
    SOC,
    V1,
    CellSocFilter,
    FilterState,
    Layout,
)
from controller.limits import parse_soc
from controller.presets import load_preset

CELLS = 6
TOLERANCE = 1e-9  # relative to each entry's scale


def filter_for(chemistry: str) -> CellSocFilter:
    return CellSocFilter(parse_soc({**load_preset("soc", chemistry), "capacity_ah": 50.0}), CELLS)


def random_state(f: CellSocFilter, seed: int) -> FilterState:
    """Cells read before, with plausible states and a random positive definite covariance
    of a plausible scale per state."""
    rng = np.random.default_rng(seed)
    k = f.initial_state().x.shape[0]
    x = np.empty((k, CELLS))
    x[SOC] = rng.uniform(10.0, 90.0, CELLS)
    x[V1] = rng.uniform(-0.05, 0.05, CELLS)
    x[CAP] = rng.uniform(0.9, 1.1, CELLS)
    x[RES] = rng.uniform(0.5e-3, 2e-3, CELLS)
    if k > HYS:
        x[HYS] = rng.uniform(-1.0, 1.0, CELLS)
    scale = np.array([3.0, 5e-3, 0.03, 1e-4, 0.5][:k])
    root = rng.normal(size=(CELLS, k, k)) * scale[None, :, None]
    dense = root @ root.transpose(0, 2, 1) / k + np.diag(scale**2 * 1e-3)
    layout = Layout.of(k)
    packed = dense[:, layout.rows, layout.cols].T.copy()
    start = f.initial_state()
    capacity = np.full(CELLS, f.config.capacity_ah)
    return FilterState.of(
        x, packed, np.zeros(CELLS), capacity, start.nominal_ah, start.start_std, 0.0
    )


def dense(s: FilterState) -> np.ndarray:
    """(cells, states, states)."""
    return np.moveaxis(s.cov, 2, 0)


def predicted(f: CellSocFilter, s: FilterState, current: float, dt: float, r_factor: float):
    """The model's Jacobian F and process noise Q, one dense product per cell."""
    cfg = f.config
    k = s.x.shape[0]
    per_a = 100.0 / (3600.0 * cfg.capacity_ah)
    m = current * dt * per_a
    a = math.exp(-dt / (cfg.tau_s * r_factor))
    r1 = cfg.r1_mohm / 1000.0 * r_factor
    sigma_r = cfg.resistance_accuracy_percent / 100.0
    x = s.x.copy()
    x[SOC] += m * x[CAP]
    x[V1] = a * x[V1] + r1 * (1.0 - a) * current
    jacobian = np.eye(k)
    jacobian[SOC, CAP], jacobian[V1, V1] = m, a
    noise = [
        (per_a * cfg.current_accuracy_a) ** 2 * BIAS_HORIZON_S * dt,
        (1.0 - a * a) * ((cfg.voltage_accuracy_mv / 1000.0) ** 2 + (sigma_r * r1 * current) ** 2),
        CAPACITY_DRIFT**2 * dt / 3600.0,
        (sigma_r * cfg.r0_mohm / 1000.0) ** 2 * dt / BIAS_HORIZON_S,
    ]
    if k > HYS:
        b = math.exp(-cfg.hysteresis_rate * abs(m) / 100.0)
        if abs(current) <= cfg.current_accuracy_a:
            b = 1.0
        x[HYS] = b * x[HYS] + math.copysign(1.0, current) * (1.0 - b)
        jacobian[HYS, HYS] = b
        noise.append(HYSTERESIS_DRIFT**2 * dt / 3600.0)
    cov = jacobian @ dense(s) @ jacobian.T + np.diag(noise)
    return x, cov


def corrected(f: CellSocFilter, x, cov, voltage, current: float, r_factor: float):
    """H = dV/dstate with the OCV slope taken over +- the SOC's standard deviation."""
    cfg = f.config
    ox, oy = np.asarray(cfg.ocv.x), np.asarray(cfg.ocv.y)
    hx, hy = np.asarray(cfg.hysteresis.x), np.asarray(cfg.hysteresis.y)
    x, cov = x.copy(), cov.copy()
    for c in range(CELLS):
        soc = x[SOC, c]
        spread = min(max(math.sqrt(max(cov[c, 0, 0], 0.0)), 0.1), LINEARISED_OVER)
        h = np.zeros(x.shape[0])
        h[SOC] = (np.interp(soc + spread, ox, oy) - np.interp(soc - spread, ox, oy)) / (
            2.0 * spread
        )
        h[V1], h[RES] = 1.0, current * r_factor
        model = np.interp(soc, ox, oy) + current * r_factor * x[RES, c] + x[V1, c]
        if x.shape[0] > HYS:
            h[HYS] = np.interp(soc, hx, hy)
            model += x[HYS, c] * h[HYS]
        p = cov[c]
        gain = p @ h / (h @ p @ h + (cfg.voltage_accuracy_mv / 1000.0) ** 2)
        x[:, c] += gain * (voltage[c] - model)
        cov[c] = p - np.outer(gain, h @ p)
    if x.shape[0] > HYS:
        x[HYS] = np.clip(x[HYS], -1.0, 1.0)
    return x, cov


def assert_close(ours: np.ndarray, reference: np.ndarray) -> None:
    scale = np.maximum(np.abs(reference), 1e-12)
    assert np.all(np.abs(ours - reference) <= TOLERANCE * scale + 1e-15)


@given(
    chemistry=st.sampled_from(["nmc", "lfp"]),
    seed=st.integers(0, 2**32 - 1),
    current=st.one_of(st.floats(-300.0, 300.0), st.just(0.0)),
    dt=st.floats(0.001, 30.0),
    r_factor=st.floats(0.5, 3.0),
)
def test_the_prediction_is_f_p_f_transposed_plus_q(chemistry, seed, current, dt, r_factor):
    f = filter_for(chemistry)
    s = random_state(f, seed)
    ours = f.predict(s, current, dt, s.capacity_in, r_factor)
    x, cov = predicted(f, s, current, dt, r_factor)
    assert_close(ours.x, x)
    assert_close(dense(ours), cov)
    assert np.array_equal(ours.cov, ours.cov.transpose(1, 0, 2))


@given(
    chemistry=st.sampled_from(["nmc", "lfp"]),
    seed=st.integers(0, 2**32 - 1),
    current=st.floats(-300.0, 300.0),
    dt=st.floats(0.001, 10.0),
    fresh=st.lists(st.booleans(), min_size=CELLS, max_size=CELLS),
    offset=st.floats(-0.05, 0.05),
)
def test_a_step_is_the_prediction_then_the_correction_of_the_fresh_cells(
    chemistry, seed, current, dt, fresh, offset
):
    f = filter_for(chemistry)
    s = random_state(f, seed)
    fresh = np.array(fresh)
    x, cov = predicted(f, s, current, dt, 1.0)
    branch = x[HYS] if x.shape[0] > HYS else 0.0
    voltage = f.ocv(x[SOC], branch) + current * x[RES] + x[V1] + offset
    xc, covc = corrected(f, x, cov, voltage, current, 1.0)
    ours = f.step(
        s,
        current,
        dt,
        s.capacity_in,
        1.0,
        voltage,
        fresh,
        np.full(CELLS, dt),
        np.full(CELLS, np.nan),
    )
    assert_close(ours.x, np.where(fresh, xc, x))
    assert_close(dense(ours), np.where(fresh[:, None, None], covc, cov))
    assert np.array_equal(ours.measured_at, np.where(fresh, dt, 0.0))
    assert np.array_equal(ours.cov, ours.cov.transpose(1, 0, 2))
    # the halves give the same as the step
    halves = f.update(
        f.predict(s, current, dt, s.capacity_in, 1.0),
        voltage,
        fresh,
        np.full(CELLS, dt),
        current,
        np.full(CELLS, np.nan),
        1.0,
    )
    assert np.array_equal(halves.x, ours.x) and np.array_equal(halves.cov, ours.cov)
