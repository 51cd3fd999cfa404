"""SOC: OCV table inversion, rest detection, coulomb counting and its direction."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from controller.limits import SocEstimator, SocSource, parse_soc
from controller.measurements import ArrayStats
from controller.presets import load_preset

CHEMISTRIES = ("nmc", "lfp", "lto")
NMC = SocEstimator(parse_soc(load_preset("soc", "nmc")))  # 100 Ah, rest 1 A for 1800 s


def cells(*voltages: float) -> ArrayStats:
    v = np.array(voltages, float)
    return ArrayStats.of(v, np.isfinite(v))


@pytest.mark.parametrize("chemistry", CHEMISTRIES)
@given(soc=st.floats(0.0, 100.0))
def test_ocv_table_round_trip(chemistry, soc):
    est = SocEstimator(parse_soc(load_preset("soc", chemistry)))
    assert est.soc_from_ocv(est.ocv_from_soc(soc)) == pytest.approx(soc, abs=1e-9)


@pytest.mark.parametrize("chemistry", CHEMISTRIES)
def test_ocv_table_points_and_clamping(chemistry):
    table = load_preset("soc", chemistry)["ocv"]
    est = SocEstimator(parse_soc(load_preset("soc", chemistry)))
    np.testing.assert_allclose(est.soc_from_ocv(np.array(table["y"])), table["x"])
    assert est.soc_from_ocv(table["y"][0] - 0.5) == 0.0
    assert est.soc_from_ocv(table["y"][-1] + 0.5) == 100.0


def test_first_estimate_from_ocv_of_min_max_and_mean_cell():
    s = NMC.step(NMC.initial_state(), 0.2, True, cells(3.55, 3.72, 3.97), 0.0)
    assert s.source is SocSource.OCV
    assert (s.soc_min, s.soc_max) == pytest.approx((20.0, 80.0))
    assert s.soc_mean == pytest.approx(float(NMC.soc_from_ocv((3.55 + 3.72 + 3.97) / 3)))


def test_no_estimate_under_load_or_without_cells():
    s = NMC.step(NMC.initial_state(), -50.0, True, cells(3.7, 3.7), 0.0)
    assert not s.valid and math.isnan(s.soc_min)
    s = NMC.step(s, 0.0, True, cells(math.nan), 1.0)
    assert not s.valid


@pytest.mark.parametrize(("current", "sign"), [(25.0, 1), (-25.0, -1)])
def test_coulomb_counting_follows_the_sign_convention(current, sign):
    s = NMC.step(NMC.initial_state(), 0.0, True, cells(3.72, 3.72), 0.0)  # 50 %
    for k in range(1, 3601):  # one hour at 1 s
        s = NMC.step(s, current, True, cells(3.72, 3.72), float(k))
    # 25 A for 1 h on 100 Ah is 25 % of capacity; cells under load are not read as OCV
    assert s.soc_mean == pytest.approx(50.0 + sign * 25.0, abs=1e-6)
    assert s.source is SocSource.COUNTED


def test_counting_clips_at_the_ends():
    s = NMC.step(NMC.initial_state(), 0.0, True, cells(4.07, 4.18), 0.0)  # 90 / 100 %
    s = NMC.step(s, 100.0, True, cells(4.1, 4.2), 360.0)  # +10 %
    assert (s.soc_min, s.soc_max) == pytest.approx((100.0, 100.0))


def test_rest_resets_the_estimate_only_after_the_rest_time():
    rest = NMC.config.rest_time_s
    s = NMC.step(NMC.initial_state(), 0.0, True, cells(3.72, 3.72), 0.0)  # 50 %
    s = NMC.step(s, -100.0, True, cells(3.6, 3.6), 360.0)  # -10 % counted
    assert s.soc_mean == pytest.approx(40.0)
    # at rest the cells relax to the OCV of 30 %: nothing changes until the rest time passed
    t = 360.0
    while t < 360.0 + rest - 10.0:
        t += 10.0
        s = NMC.step(s, 0.5, True, cells(3.62, 3.62), t)
        assert s.source is SocSource.COUNTED
    s = NMC.step(s, 0.5, True, cells(3.62, 3.62), 370.0 + rest)
    assert s.source is SocSource.OCV and s.soc_mean == pytest.approx(30.0)


def test_invalid_current_holds_the_estimate_and_restarts_the_rest():
    rest = NMC.config.rest_time_s
    s = NMC.step(NMC.initial_state(), 0.0, True, cells(3.72, 3.72), 0.0)
    s = NMC.step(s, -100.0, True, cells(3.6, 3.6), 36.0)  # -1 %
    s = NMC.step(s, 0.0, True, cells(3.62, 3.62), 40.0)  # rest starts
    s = NMC.step(s, math.nan, False, cells(3.62, 3.62), rest - 10.0)
    assert s.rest_since is None and s.soc_mean == pytest.approx(49.0)
    s = NMC.step(s, 0.0, True, cells(3.62, 3.62), rest + 40.0)
    assert s.source is SocSource.COUNTED  # rest restarted at rest + 40 s
