"""The monitor's model without a terminal: fault bits as the controller sets them, frames the
master DBC defines shown as they come, the state store read without writing, bus load."""

from __future__ import annotations

from pathlib import Path

import can
import cantools
import numpy as np
import pytest
from monitor_support import PackOnBuses

import dbc
from canbms.monitor.load import LoadMeter, frame_bits
from canbms.monitor.model import MonitorModel, history_lines
from canbms.monitor.source import STATE_FILE, read_history
from controller.adapters.base import Level
from controller.config.loader import default_config
from controller.diagnosis import Event
from controller.shell.mqtt.sample import active_diagnoses
from controller.shell.store import Store
from slaves.faults import CrcCorruption

MASTER = cantools.database.load_file(dbc.path("canbms_master.dbc"))


def _tapped(pack: PackOnBuses, model: MonitorModel, steps: int) -> None:
    """Run the pack and feed the model what its buses carried."""
    buses = pack.monitor_buses()
    try:
        pack.run(steps)
        for name, bus in buses.items():
            model.feed(list(iter(lambda b=bus: b.recv(0), None)), name)
    finally:
        for bus in buses.values():
            bus.shutdown()


def test_the_active_fault_bits_name_the_faults_the_controller_latched() -> None:
    pack = PackOnBuses()
    model = MonitorModel(pack.config, {"internal": 500_000, "vehicle": None})
    try:
        _tapped(pack, model, 200)
        pack.system.faults.inject(CrcCorruption(5))
        _tapped(pack, model, 200)
    finally:
        pack.close()
    view = model.view(pack.sent_at)
    latched = {d for d, level in active_diagnoses(pack.state).items() if level is Level.FAULT}
    shown = {d.id for _, d in view.diagnoses}
    assert shown and shown <= latched
    assert "slave_timeout" in shown
    assert [r.source for r in view.rejects if r.total] == ["M05"]
    assert np.isnan(view.cells[5]).all() and np.isfinite(view.cells[:5]).all()
    assert view.loads["vehicle"].percent is None and view.loads["internal"].percent > 0


def test_a_frame_the_master_dbc_defines_is_shown_with_its_signals() -> None:
    model = MonitorModel(default_config(), {"vehicle": None})
    health = MASTER.get_message_by_name("BMS_RuntimeHealth")
    values = {s.name: 0 for s in health.signals} | {"BMS_RtLongestCycle": 7}
    msg = can.Message(
        arbitration_id=health.frame_id, data=health.encode(values), is_extended_id=False,
        timestamp=100.0,
    )  # fmt: skip
    model.feed([msg], "vehicle")
    frames = model.view(100.5).frames
    assert frames["BMS_RuntimeHealth"]["BMS_RtLongestCycle"] == 7
    assert model.view(100.5).units["BMS_RtLongestCycle"] == "ms"
    assert "BMS_RuntimeHealth" not in model.view(104.0).frames, "stale after three periods"


def test_the_state_store_history_is_read_without_writing(tmp_path: Path) -> None:
    assert read_history(tmp_path) == []
    store = Store.open(tmp_path / STATE_FILE)
    store.append([Event(1.0, "cell_overvoltage", Level.FAULT, "set", detail="cell 17")])
    before = (tmp_path / STATE_FILE).stat().st_mtime_ns
    rows = read_history(tmp_path)
    assert history_lines(rows) == ["cell_overvoltage set: cell 17"]
    assert (tmp_path / STATE_FILE).stat().st_mtime_ns == before
    store.close()


@pytest.mark.parametrize("extended", [False, True])
def test_bus_load_counts_worst_case_frame_bits_over_the_last_second(extended: bool) -> None:
    meter = LoadMeter(500_000)
    times = np.linspace(10.005, 11.005, 100, endpoint=False)  # 10 ms apart, inside (10, 11]
    meter.add(times, np.full(100, 8), np.full(100, extended))
    load = meter.load(11.0)
    bits = 8 * 8 + (64 if extended else 44) + ((54 if extended else 34) + 64 - 1) // 4 + 3
    assert load.frames_per_s == 100
    assert load.percent == pytest.approx(100 * 100 * bits / 500_000)
    assert frame_bits(np.array([8]), np.array([False]))[0] == 135  # docs/master-protocol.md
    assert meter.load(12.5).frames_per_s == 0, "a silent bus carries nothing"
