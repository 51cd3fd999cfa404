"""Closed loop: an aged pack with spread, cycled between rests, is measured cell by cell, and
the SOH the BMS puts on the vehicle bus is its weakest cell's.

24 cells (2 modules of 12), aged by 800 full cycles at typical NMC rates with a seeded spread
of each cell's rate (capacity 80-93 % of new, resistance +30-66 %), time compressed 50x (1 Ah
cells, RC pair of 3 s) so that a rest of 20 s and a 40 s leg at 25/55 A pulses swing every cell
by 45-60 % of its charge. Three legs (discharge, charge, discharge) between four rests give
every cell three capacity pairs and dozens of current steps.
"""

from __future__ import annotations

import numpy as np
import pytest
from soh_support import Cycles

from controller.persisted import Persisted
from controller.shell.store import Store

CAPACITY_TOLERANCE = 0.03  # relative, per cell
RESISTANCE_TOLERANCE = 0.10  # relative, per cell, against R0 at the cell's temperature
SOH_RESOLUTION = 0.1  # %, BMS_SOH


@pytest.fixture(scope="module")
def cycled():
    with_load = Cycles(efc=800.0, legs=3)
    with_load.run()
    yield with_load
    with_load.close()


def test_every_cell_capacity_and_resistance_is_measured_within_tolerance(cycled):
    health = cycled.result.state.soh.health
    true_capacity = cycled.true_capacity_ah()
    assert health.capacity_measured == true_capacity.size
    np.testing.assert_allclose(health.capacity_ah, true_capacity, rtol=CAPACITY_TOLERANCE)
    assert np.ptp(true_capacity) > 3 * CAPACITY_TOLERANCE * true_capacity.mean()  # spread seen
    np.testing.assert_allclose(
        health.resistance_ohm, cycled.true_resistance_ohm(), rtol=RESISTANCE_TOLERANCE
    )
    assert health.weakest_cell == int(np.argmin(true_capacity))


def test_the_soh_on_the_bus_is_the_weakest_cells_measured_capacity(cycled):
    health = cycled.result.state.soh.health
    nominal = cycled.controller.config.soc.capacity_ah
    true_soh = 100.0 * cycled.true_capacity_ah().min() / nominal
    published = cycled.published_soh()
    assert published == pytest.approx(health.pack_soh, abs=SOH_RESOLUTION)
    assert published == pytest.approx(true_soh, rel=CAPACITY_TOLERANCE)
    assert published < 95.0  # measured, not the assumed 100 %


def test_before_the_first_pair_the_assumed_soh_goes_out_and_never_a_non_number(cycled):
    decoded = [
        float(cycled.master.decode_message(m.arbitration_id, m.data)["BMS_SOH"])
        for m in cycled.tap.frames
    ]
    assert decoded[0] == cycled.controller.config.soh.initial_soh_percent
    assert all(0.0 <= soh <= 100.0 for soh in decoded)
    changes = np.flatnonzero(np.diff(decoded))
    assert changes.size >= 1  # a new value when a rest point measures the cells


def test_the_estimate_survives_a_restart_through_the_state_store(cycled, tmp_path):
    controller = cycled.controller
    stored = controller.persisted(cycled.result.state)
    store = Store.open(tmp_path / "state.sqlite")
    store.save(stored)
    store.close()
    reopened = Store.open(tmp_path / "state.sqlite")
    loaded = reopened.load()
    reopened.close()
    assert isinstance(loaded, Persisted) and loaded == stored
    restarted = controller.initial_state(0.0, loaded).soh.health
    health = cycled.result.state.soh.health
    np.testing.assert_array_equal(restarted.capacity_ah, health.capacity_ah)
    np.testing.assert_array_equal(restarted.resistance_ohm, health.resistance_ohm)
    assert restarted.pack_soh == health.pack_soh
