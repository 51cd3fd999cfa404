"""The per-cell estimate through the persisted record and the SQLite store, by any version."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from controller.config.loader import default_config
from controller.core import Controller
from controller.persisted import Persisted
from controller.shell.store import Store

CONTROLLER = Controller(default_config())
CELLS = CONTROLLER.config.pack.cells
estimates = st.lists(st.one_of(st.just(0.0), st.floats(1e-4, 1e4)), min_size=CELLS, max_size=CELLS)


@given(capacity=estimates, resistance=estimates)
def test_capacity_and_resistance_of_every_cell_survive_the_store(
    tmp_path_factory, capacity, resistance
):
    before = replace(
        CONTROLLER.initial_state(), soh=CONTROLLER.soh.initial_state(capacity, resistance)
    )
    stored = CONTROLLER.persisted(before)
    path = tmp_path_factory.mktemp("store") / "state.sqlite"
    store = Store.open(path)
    store.save(stored)
    store.close()
    store = Store.open(path)
    loaded = store.load()
    store.close()
    assert loaded == stored
    after = CONTROLLER.initial_state(0.0, loaded).soh.health
    health = before.soh.health
    np.testing.assert_array_equal(after.capacity_ah, health.capacity_ah)
    np.testing.assert_array_equal(after.resistance_ohm, health.resistance_ohm)
    np.testing.assert_array_equal(np.isnan(after.capacity_ah), np.array(capacity) == 0.0)
    assert after.pack_soh == health.pack_soh


def test_a_record_from_before_the_estimate_loads_with_the_initial_soh():
    record = Persisted(("slave_timeout",), 40.0, 60.0, 50.0).to_record()
    for key in ("cell_capacity_ah", "cell_resistance_ohm"):
        del record[key]
    loaded = Persisted.from_record(json.loads(json.dumps(record)))
    health = CONTROLLER.initial_state(0.0, loaded).soh.health
    assert health.capacity_measured == 0
    assert health.pack_soh == CONTROLLER.config.soh.initial_soh_percent


def test_an_estimate_stored_for_another_pack_size_is_not_used():
    record = Persisted(cell_capacity_ah=(50.0,) * (CELLS + 1)).to_record()
    loaded = Persisted.from_record(json.loads(json.dumps(record)))
    assert CONTROLLER.initial_state(0.0, loaded).soh.health.capacity_measured == 0
