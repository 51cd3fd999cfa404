"""Benchmark traffic: what cantools reads from it, and that the controller accepts all of it."""

from __future__ import annotations

import numpy as np
import pytest

from controller.ingest import compile_decoder, load_mapping
from dbc import e2e
from dbc.slave_protocol import build_database
from dbc.topology import Topology
from hil.benchmarks.core_cycle import controller_for
from hil.benchmarks.decode import targets
from hil.benchmarks.traffic import CELL_DEGC, CELL_VOLTS, Traffic

PACKS = [Topology(3, 7, 4, False), Topology(70, 40, 33, True, extended_ids=True)]


@pytest.mark.parametrize("topology", PACKS, ids=["classic", "fd-29-bit"])
def test_one_second_carries_every_group_once_per_period_in_cantools_terms(topology) -> None:
    db = build_database(topology)
    traffic = Traffic(topology)
    batches = [traffic.next_batch() for _ in range(100)]
    slave = {m.frame_id for m in db.messages}
    sent: dict[str, int] = {}
    for batch in batches:
        assert (np.diff(batch.timestamps) > 0).all()
        for i in np.flatnonzero(np.isin(batch.ids, list(slave))):
            frame_id, payload = int(batch.ids[i]), bytes(batch.data[i, : batch.dlc[i]])
            message = db.get_message_by_frame_id(frame_id)
            decoded = message.decode(payload, decode_choices=False)
            assert e2e.crc8(frame_id, payload) == payload[0]
            for name, value in decoded.items():
                if name.endswith("_Voltage"):
                    assert CELL_VOLTS[0] - 0.001 <= value <= CELL_VOLTS[1] + 0.001
                elif "_Temp" in name and not name.endswith("_Invalid"):
                    assert CELL_DEGC[0] - 0.1 <= value <= CELL_DEGC[1] + 0.1
                elif name.endswith("_Invalid"):
                    assert value == 0
            key = message.name.split("_M")[0]
            sent[key] = sent.get(key, 0) + 1
    t = topology
    assert sent["CellVoltages"] == 10 * t.modules * t.voltage_groups
    assert sent["ModuleStatus"] == 10 * t.modules
    assert sent["Temperatures"] == t.modules * t.temperature_groups


def test_the_decoder_accepts_every_frame_and_fills_every_element() -> None:
    topology = PACKS[1]
    db = build_database(topology)
    params = {"cells_per_module": 40, "sensors_per_module": 33}
    decoder = compile_decoder(db, load_mapping("canbms_slaves", params), targets(topology))
    state = decoder.new_state()
    traffic = Traffic(topology)
    slave = np.array([m.frame_id for m in db.messages])
    for _ in range(250):  # counters wrap many times
        batch = traffic.next_batch()
        decoder.decode(batch.select(np.isin(batch.ids, slave)), state)
    assert state.rejected.sum() == 0
    for name in state.measurements:
        assert state.measurements[name].reported_valid.all(), name
    volts = state.measurements["cell_voltage"].value
    assert abs(volts.sum() - traffic.pack_voltage) < volts.size * 0.0002


def test_a_controller_on_this_traffic_stays_fault_free_and_complete() -> None:
    topology = Topology(4, 12, 4, False)
    controller = controller_for(topology)
    traffic = Traffic(topology)
    state = controller.initial_state(0.0)
    for _ in range(150):
        result = controller.step(state, traffic.next_batch(), traffic.now)
        state = result.state
    assert state.initialised and not state.protection.fault_active
    assert result.view.voltage_stats.count == topology.n_cells
