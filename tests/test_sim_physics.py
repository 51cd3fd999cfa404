"""Plant physics: OCV tables, the equivalent-circuit cells and the module thermal model."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from slaves.cells import CellArray, CellSpread
from slaves.chemistry import CHEMISTRIES, get
from slaves.profiles import Constant, Scripted, as_profile
from slaves.thermal import ModuleThermal, ThermalParams

ALL = sorted(CHEMISTRIES)


@pytest.mark.parametrize("name", ALL)
def test_ocv_strictly_increasing_including_overrun(name: str) -> None:
    chem = CHEMISTRIES[name]
    soc = np.linspace(-0.2, 1.2, 2001)
    v = chem.ocv(soc)
    assert np.all(np.diff(v) > 0)
    assert chem.v_min <= chem.ocv(0.0) < chem.ocv(1.0) <= chem.v_max
    # a 5 % over-charge must be visible, not flattened at the table end
    assert chem.ocv(1.05) - chem.ocv(1.0) > 0.02


@pytest.mark.parametrize("name", ALL)
@given(soc=st.floats(0.0, 1.0))
def test_soc_from_ocv_inverts_the_table(name: str, soc: float) -> None:
    chem = CHEMISTRIES[name]
    assert chem.soc_from_ocv(chem.ocv(soc)) == pytest.approx(soc, abs=1e-9)


def test_chemistry_registry_rejects_unknown_name() -> None:
    assert get("lfp") is CHEMISTRIES["LFP"]
    with pytest.raises(ValueError, match="unknown chemistry 'NCA'"):
        get("NCA")


def _cells(name: str = "NMC", n: int = 96, seed: int = 1, soc: float = 0.5) -> CellArray:
    return CellArray(CHEMISTRIES[name], n, np.random.default_rng(seed), initial_soc=soc)


@pytest.mark.parametrize("name", ALL)
def test_charge_conservation_over_a_long_run_with_overcharge(name: str) -> None:
    """12 h of steps, pushed past full and back: the coulomb books match the inputs."""
    cells = _cells(name, soc=0.7)
    cap_ah = CHEMISTRIES[name].capacity_ah
    profile = Scripted(
        [(0, 0.5 * cap_ah), (3600, -1.0 * cap_ah), (5400, 0.0), (7200, 0.25 * cap_ah)]
    )
    rng = np.random.default_rng(7)
    bleed = np.where(rng.random(cells.n) < 0.3, 0.1, 0.0)  # some cells bleed through resistors
    dt, steps = 2.0, 21_600
    expected = np.zeros(cells.n)
    peak_soc = 0.0
    for k in range(steps):
        amps = profile(k * dt)
        cells.step(dt, amps - bleed, 25.0)
        expected += (amps - bleed) * dt
        peak_soc = max(peak_soc, float(cells.soc.max()))
    leak = cells.self_discharge_a * dt * steps
    assert peak_soc > 1.0  # charged past full and not clipped
    change = cells.charge_c - cells.initial_charge_c
    assert np.all(np.abs(change - (expected - leak)) < 1e-3 * cells.capacity_c)
    assert np.all(leak > 0)


def test_self_discharge_lowers_soc_at_rest() -> None:
    cells = _cells()
    before = cells.soc.copy()
    for _ in range(30):
        cells.step(86_400.0, 0.0, 25.0)  # a month at rest
    lost = before - cells.soc
    assert np.all(lost > 0)
    assert np.median(lost) == pytest.approx(0.02, rel=0.2)


def test_rc_update_is_exact_for_any_step_size() -> None:
    fine, coarse = _cells(), _cells()
    for _ in range(1000):
        fine.step(0.01, -100.0, 25.0)
    coarse.step(10.0, -100.0, 25.0)
    np.testing.assert_allclose(fine.v_rc, coarse.v_rc, rtol=1e-9)
    np.testing.assert_allclose(fine.charge_c, coarse.charge_c, rtol=1e-12)


def test_terminal_voltage_sags_under_discharge_and_recovers() -> None:
    cells = _cells()
    ocv0 = cells.ocv.copy()
    cells.step(0.01, -100.0, 25.0)
    instant = cells.voltage.copy()
    np.testing.assert_allclose(ocv0 - instant, 100.0 * cells.r0, rtol=0.05)
    for _ in range(300):
        cells.step(1.0, -100.0, 25.0)
    # after ten time constants the RC pair holds I * R1
    np.testing.assert_allclose(cells.v_rc, -100.0 * cells.r1_25, rtol=1e-3)
    for _ in range(600):
        cells.step(1.0, 0.0, 25.0)
    np.testing.assert_allclose(cells.voltage, cells.ocv, atol=1e-5)


def test_cold_cells_have_higher_resistance_and_sag_more() -> None:
    warm, cold = _cells(), _cells()
    warm.step(0.01, -100.0, 25.0)
    cold.step(0.01, -100.0, -10.0)
    assert np.all(cold.voltage < warm.voltage - 1e-3)
    assert np.all(cold.heat_w > 2 * warm.heat_w)


def test_spread_is_seeded_and_deterministic() -> None:
    a, b, c = _cells(seed=3), _cells(seed=3), _cells(seed=4)
    np.testing.assert_array_equal(a.capacity_c, b.capacity_c)
    assert not np.array_equal(a.capacity_c, c.capacity_c)
    assert np.std(a.capacity_c) > 0
    with pytest.raises(ValueError, match="spread.capacity"):
        CellSpread(capacity=-0.1)


def _thermal(ambient: float = 25.0) -> ModuleThermal:
    return ModuleThermal(8, 4, 900.0, 12, np.random.default_rng(0), ambient=ambient)


def test_temperature_rises_under_heat_and_relaxes_at_rest() -> None:
    th = _thermal()
    g = th.params.conductance_w_per_k
    tau = th.time_constant_s
    heat = np.linspace(1.0, 8.0, 8)
    th.step(tau, heat)
    rise = th.temperature - 25.0
    np.testing.assert_allclose(rise, heat / g * (1 - np.exp(-1)), rtol=1e-9)
    th.step(20 * tau, heat)
    np.testing.assert_allclose(th.temperature, 25.0 + heat / g, rtol=1e-6)
    hot = th.temperature.copy()
    th.step(tau, np.zeros(8))
    np.testing.assert_allclose(th.temperature - 25.0, (hot - 25.0) * np.exp(-1), rtol=1e-9)


def test_sensors_follow_module_temperature_with_fixed_offsets() -> None:
    th = _thermal(ambient=10.0)
    offsets = th.sensor_temperatures - th.temperature[:, None]
    th.step(100.0, np.full(8, 5.0))
    np.testing.assert_allclose(th.sensor_temperatures - th.temperature[:, None], offsets)
    assert 0 < np.std(offsets) < 1.0
    with pytest.raises(ValueError, match="conductance"):
        ThermalParams(conductance_w_per_k=0.0)


def test_profiles() -> None:
    step = Scripted([(1.0, 10.0), (2.0, -5.0)])
    assert [step(t) for t in (0.0, 1.0, 1.5, 2.0, 99.0)] == [0.0, 10.0, 10.0, -5.0, -5.0]
    ramp = Scripted([(0.0, 0.0), (2.0, 10.0)], interpolate=True)
    assert ramp(0.5) == pytest.approx(2.5)
    cyc = Scripted([(0.0, 1.0), (1.0, 2.0), (3.0, 0.0)], repeat=True)
    assert cyc(4.5) == 2.0
    assert as_profile(3)(5.0) == Constant(3.0)(5.0) == 3.0
    assert as_profile(lambda t: 2 * t)(4.0) == 8.0
    with pytest.raises(ValueError, match="strictly increasing"):
        Scripted([(1.0, 0.0), (1.0, 1.0)])
