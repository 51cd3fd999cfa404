"""The simulated cells age: capacity fades and resistance grows with full cycles and time, each
cell at its own seeded rate, and the charge books still balance."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from slaves.ageing import SECONDS_PER_YEAR, Ageing
from slaves.cells import CellArray, CellSpread
from slaves.chemistry import NMC

FAST = Ageing(capacity_fade_per_efc=0.01, resistance_growth_per_efc=0.02)


def cells(ageing: Ageing, seed: int = 1, spread: float = 0.2, n: int = 24) -> CellArray:
    chemistry = replace(NMC, capacity_ah=1.0, ageing=ageing)
    rng = np.random.default_rng(seed)
    return CellArray(chemistry, n, rng, 0.5, CellSpread(ageing=spread))


@given(cycles=st.integers(1, 5), amps=st.floats(5.0, 50.0))
def test_full_cycles_fade_capacity_and_grow_resistance_at_each_cells_rate(cycles, amps):
    pack = cells(FAST)
    new_capacity, new_r0 = pack.capacity_c.copy(), pack.r0_25.copy()
    seconds = 3600.0 / amps  # 1 Ah out and back in: a full cycle of a 1 Ah cell
    for _ in range(cycles):
        for current in (-amps, amps):
            for _ in range(20):
                pack.step(seconds / 20, current, 25.0)
    efc = pack.efc
    np.testing.assert_allclose(efc, cycles * 3600.0 / pack.new_capacity_c, rtol=1e-9)
    np.testing.assert_allclose(
        pack.capacity_c, new_capacity * (1 - pack.ageing_rate * 0.01 * efc), rtol=1e-6
    )
    np.testing.assert_allclose(pack.r0_25, new_r0 * (1 + pack.ageing_rate * 0.02 * efc), rtol=1e-9)
    books = pack.charge_c - pack.initial_charge_c
    np.testing.assert_allclose(books, pack.throughput_c - pack.self_discharged_c, atol=1e-6)


def test_the_spread_of_rates_is_seeded_and_the_mean_rate_is_the_chemistrys():
    a, b = cells(FAST, seed=7, n=2000), cells(FAST, seed=7, n=2000)
    np.testing.assert_array_equal(a.ageing_rate, b.ageing_rate)
    assert a.ageing_rate.mean() == pytest.approx(1.0, abs=0.02)
    assert a.ageing_rate.std() == pytest.approx(0.2, rel=0.1)
    np.testing.assert_array_equal(cells(Ageing(), seed=7, n=2000).capacity_c, a.capacity_c)


def test_jumping_ahead_keeps_the_soc_and_the_books():
    pack = cells(Ageing(0.0, 0.0, capacity_fade_per_year=0.05, resistance_growth_per_year=0.1))
    soc = pack.soc.copy()
    new_capacity = pack.capacity_c.copy()
    pack.age(years=2.0)
    np.testing.assert_allclose(pack.soc, soc, rtol=1e-12)
    np.testing.assert_allclose(
        pack.capacity_c, new_capacity * (1 - pack.ageing_rate * 0.1), rtol=1e-12
    )
    pack.step(SECONDS_PER_YEAR / 12, 0.0, 25.0)  # a month on the shelf ages it further
    assert (pack.capacity_c < new_capacity * (1 - pack.ageing_rate * 0.1) + 1e-9).all()
    books = pack.charge_c - pack.initial_charge_c
    np.testing.assert_allclose(books, pack.throughput_c - pack.self_discharged_c, atol=1e-9)


def test_a_chemistry_without_ageing_rates_keeps_its_cells_new():
    pack = cells(Ageing())
    capacity, r0 = pack.capacity_c.copy(), pack.r0_25.copy()
    for _ in range(50):
        pack.step(60.0, 50.0, 25.0)
    np.testing.assert_array_equal(pack.capacity_c, capacity)
    np.testing.assert_array_equal(pack.r0_25, r0)
