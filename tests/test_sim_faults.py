"""Each injected fault shows on the bus as specified, and goes away when cleared."""

from __future__ import annotations

import numpy as np
import pytest
from sim_support import by_id, counter, crc_ok, decode

from dbc.e2e import COUNTER_MODULO
from dbc.topology import Topology
from slaves import faults as F
from slaves.simulator import PackSimulator


def _sim(**kw) -> PackSimulator:
    return PackSimulator(Topology(modules=3, cells_per_module=12, sensors_per_module=4), **kw)


def _raw(sim: PackSimulator, msg) -> dict:
    return sim.db.decode_message(msg.arbitration_id, bytes(msg.data), scaling=False)


def _cell_values(sim: PackSimulator, frames, module: int, cell: int, raw: bool = False):
    key = f"M{module:02}_Cell{cell:02}_Voltage"
    out = []
    for msg in frames:
        if msg.arbitration_id == 0x200 + module:
            values = _raw(sim, msg) if raw else decode(sim, msg)
            if key in values:
                out.append((values[key], values[key.replace("_Voltage", "_Invalid")]))
    return out


def test_cell_voltage_offset_shifts_only_that_cell() -> None:
    sim = _sim(seed=3)
    fault = sim.faults.inject(F.CellVoltageOffset(module=1, cell=4, volts=0.25))
    frames = sim.run(0.5)
    true = sim.cell_voltages.reshape(3, 12)
    faulty = _cell_values(sim, frames, 1, 4)
    assert all(abs(v - true[1, 4] - 0.25) < 0.005 and not bad for v, bad in faulty)
    healthy = _cell_values(sim, frames, 1, 5)
    assert all(abs(v - true[1, 5]) < 0.005 for v, _ in healthy)
    sim.faults.clear(fault)
    later = _cell_values(sim, sim.run(0.3), 1, 4)
    assert all(abs(v - true[1, 4]) < 0.005 for v, _ in later)


@pytest.mark.parametrize("volts", [None, 3.1])
def test_cell_voltage_stuck_stops_following_the_cell(volts: float | None) -> None:
    sim = _sim(seed=4, current=-200.0)
    sim.run(0.3)
    sim.faults.inject(F.CellVoltageStuck(module=0, cell=2, volts=volts))
    frames = sim.run(3.0)
    stuck = {v for v, _ in _cell_values(sim, frames, 0, 2)}
    moving = [v for v, _ in _cell_values(sim, frames, 0, 3)]
    assert len(stuck) == 1
    if volts is not None:
        assert stuck.pop() == pytest.approx(volts, abs=1e-4)
    assert max(moving) - min(moving) > 0.002  # its neighbour sags under 200 A


def test_open_wire_reports_invalid_raw_zero_and_status_bit() -> None:
    sim = _sim(seed=5)
    fault = sim.faults.inject(F.OpenWire(module=2, cell=11))
    frames = sim.run(0.5)
    assert _cell_values(sim, frames, 2, 11, raw=True) and all(
        v == 0 and bad == 1 for v, bad in _cell_values(sim, frames, 2, 11, raw=True)
    )
    assert all(bad == 0 for _, bad in _cell_values(sim, frames, 2, 10))
    status = [decode(sim, m) for m in frames if m.arbitration_id == 0x302]
    assert status and all(s["M02_OpenWire"] == 1 for s in status)
    other = [decode(sim, m) for m in frames if m.arbitration_id == 0x301]
    assert all(s["M01_OpenWire"] == 0 for s in other)
    sim.faults.clear(fault)
    frames = sim.run(0.5)
    assert all(bad == 0 for _, bad in _cell_values(sim, frames, 2, 11))
    assert all(decode(sim, m)["M02_OpenWire"] == 0 for m in frames if m.arbitration_id == 0x302)


@pytest.mark.parametrize(
    ("fault", "raw_value"), [(F.SensorOpen, -(2**14)), (F.SensorShort, 2**14 - 1)]
)
def test_temperature_sensor_open_and_short(fault, raw_value: int) -> None:
    sim = _sim(seed=6)
    sim.faults.inject(fault(module=1, sensor=3))
    decoded = [_raw(sim, m) for m in sim.run(2.0) if m.arbitration_id == 0x281]
    group1 = [raw for raw in decoded if "M01_Temp03" in raw]
    group0 = [raw for raw in decoded if "M01_Temp02" in raw]
    assert len(group0) == len(group1) == 2
    for raw in group1:
        assert raw["M01_Temp03"] == raw_value and raw["M01_Temp03_Invalid"] == 1
    for raw in group0:
        assert raw["M01_Temp02_Invalid"] == 0 and abs(raw["M01_Temp02"] - 250) < 20


def test_module_silent_and_back() -> None:
    sim = _sim(seed=7)
    fault = sim.faults.inject(F.ModuleSilent(module=1))
    ids = set(by_id(sim.run(2.0)))
    assert not ids & {0x201, 0x281, 0x301}
    assert {0x200, 0x202, 0x280, 0x300} <= ids
    sim.faults.clear(fault)
    assert {0x201, 0x281, 0x301} <= set(by_id(sim.run(1.1)))


def test_crc_corruption_of_one_module() -> None:
    sim = _sim(seed=8)
    sim.faults.inject(F.CrcCorruption(module=0))
    frames = sim.run(1.5)
    for msg in frames:
        module = msg.arbitration_id & 0x3F
        assert crc_ok(msg) == (module != 0), hex(msg.arbitration_id)
    sim.faults.clear()
    assert all(crc_ok(m) for m in sim.run(1.5))


@pytest.mark.parametrize(
    ("fault", "delta"), [(F.CounterFrozen(module=2), 0), (F.CounterJump(module=2, step=5), 5)]
)
def test_counter_frozen_and_jumping(fault, delta: int) -> None:
    sim = _sim(seed=9)
    sim.faults.inject(fault)
    for frame_id, frames in by_id(sim.run(2.5)).items():
        diffs = {
            (counter(b) - counter(a)) % COUNTER_MODULO
            for a, b in zip(frames, frames[1:], strict=False)
        }
        assert diffs == ({delta} if frame_id & 0x3F == 2 else {1}), hex(frame_id)
        assert all(crc_ok(m) for m in frames)  # the CRC still covers the bad counter


def test_random_frame_burst_is_seeded_and_stops_when_cleared() -> None:
    def burst(seed: int) -> list:
        sim = _sim(seed=seed)
        fault = sim.faults.inject(F.RandomFrames(rate_hz=1000.0))
        frames = sim.run(1.0)
        sim.faults.clear(fault)
        known = {0x200, 0x201, 0x202, 0x280, 0x281, 0x282, 0x300, 0x301, 0x302}
        after = [m for m in sim.run(1.0) if m.arbitration_id not in known]
        assert after == []
        return [m for m in frames if not (m.arbitration_id in known and crc_ok(m))]

    a, b, c = burst(1), burst(1), burst(2)
    assert 850 < len(a) < 1150
    assert [(m.arbitration_id, bytes(m.data)) for m in a] == [
        (m.arbitration_id, bytes(m.data)) for m in b
    ]
    assert [bytes(m.data) for m in a] != [bytes(m.data) for m in c]
    assert len({m.arbitration_id for m in a}) > 500
    assert {len(m.data) for m in a} == set(range(9))
    assert all(not m.is_extended_id and m.arbitration_id <= 0x7FF for m in a)


def test_random_frames_on_fd_use_fd_lengths() -> None:
    sim = PackSimulator(Topology(modules=1, cells_per_module=40, fd=True), seed=1)
    sim.faults.inject(F.RandomFrames(rate_hz=2000.0, max_id=0xFF))
    frames = [m for m in sim.run(0.5) if m.arbitration_id <= 0xFF]
    assert {len(m.data) for m in frames} <= {0, 1, 2, 3, 4, 5, 6, 7, 8, 12, 16, 20, 24, 32, 48, 64}
    assert max(len(m.data) for m in frames) == 64 and all(m.is_fd for m in frames)


def test_overlapping_faults_clear_independently() -> None:
    sim = _sim(seed=10)
    a = sim.faults.inject(F.CellVoltageOffset(0, 0, 0.1))
    sim.faults.inject(F.CellVoltageOffset(0, 0, 0.2))
    assert sim.faults.masks.voltage_offset[0, 0] == pytest.approx(0.3)
    sim.faults.clear(a)
    assert sim.faults.masks.voltage_offset[0, 0] == pytest.approx(0.2)
    sim.faults.clear()
    assert np.all(sim.faults.masks.voltage_offset == 0)


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        (F.OpenWire(module=3, cell=0), "OpenWire.module: 3 is not in 0..2"),
        (F.SensorShort(module=0, sensor=4), "SensorShort.sensor: 4 is not in 0..3"),
        (F.CellVoltageStuck(module=0, cell=12), "CellVoltageStuck.cell: 12"),
        (F.CounterJump(module=0, step=16), "CounterJump.step"),
        (F.RandomFrames(rate_hz=0.0), "rate_hz"),
    ],
)
def test_invalid_faults_are_rejected_naming_the_field(fault, message: str) -> None:
    sim = _sim()
    with pytest.raises(ValueError, match=message):
        sim.faults.inject(fault)
    with pytest.raises(ValueError, match="not active"):
        sim.faults.clear(F.ModuleSilent(0))


@pytest.mark.parametrize(("sensor", "stuck"), [(None, {0, 1, 2, 3}), (2, {2})])
def test_temperature_sensors_stuck_hold_their_value(sensor, stuck: set[int]) -> None:
    sim = _sim(seed=8, current=-300.0)  # heats the modules
    sim.faults.inject(F.SensorStuck(module=1, sensor=sensor, celsius=25.0))
    frames = [decode(sim, m) for m in sim.run(30.0) if m.arbitration_id == 0x281]
    for k in range(4):
        values = [f[f"M01_Temp{k:02}"] for f in frames if f"M01_Temp{k:02}" in f]
        assert bool(np.ptp(values) == 0.0) is (k in stuck), k
        if k in stuck:
            assert values[0] == pytest.approx(25.0, abs=0.1)


def test_current_sensor_offset_and_gain_apply_to_the_reading() -> None:
    from slaves.current_sensor import CurrentSensor, IvtResult
    from slaves.hv_bus import ivt_database
    from slaves.hv_circuit import HvCircuit

    class Circuit(HvCircuit):
        pack_current = -100.0

    sensor = CurrentSensor(Circuit())
    sensor.miscalibrate(offset_a=3.0, gain=1.2)
    frames = [m for m in sensor.step(0.0, 0.02) if m.arbitration_id == IvtResult.I.frame_id]
    value = ivt_database().decode_message(frames[0].arbitration_id, frames[0].data)
    assert value["IVT_I_Value"] == pytest.approx((-120.0 + 3.0) * 1000.0)
    sensor.miscalibrate()
    frames = [m for m in sensor.step(0.02, 0.02) if m.arbitration_id == IvtResult.I.frame_id]
    value = ivt_database().decode_message(frames[0].arbitration_id, frames[0].data)
    assert value["IVT_I_Value"] == pytest.approx(-100.0 * 1000.0)
