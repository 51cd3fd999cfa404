"""Slave frames as the master sees them: decoded by cantools, checked by an own CRC."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sim_support import by_id, counter, crc_ok, decode

from dbc.e2e import COUNTER_MODULO
from dbc.topology import Topology
from slaves.simulator import PackSimulator


@st.composite
def topologies(draw: st.DrawFn) -> Topology:
    fd = draw(st.booleans())
    return Topology(
        modules=draw(st.integers(1, 4)),
        cells_per_module=draw(st.integers(1, 64 if fd else 48)),
        sensors_per_module=draw(st.integers(1, 40)),
        fd=fd,
    )


def _check_step_frames(sim: PackSimulator, frames: list) -> None:
    """Every frame of the step carries exactly what the modules sampled in that step."""
    mods = sim.modules
    for msg in frames:
        assert crc_ok(msg), msg
        values = decode(sim, msg)
        name = sim.db.get_message_by_frame_id(msg.arbitration_id).name
        kind, module = name.rsplit("_M", 1)
        m = int(module)
        assert msg.is_fd == sim.topology.fd
        if kind == "CellVoltages":
            res = 0.0004 if sim.topology.fd else 0.0002
            for key, value in values.items():
                if key.endswith("_Voltage"):
                    c = int(key[-10:-8])
                    assert abs(value - mods.reported_voltage[m, c]) <= res / 2 + 1e-9
                    assert values[key.replace("_Voltage", "_Invalid")] == 0
        elif kind == "Temperatures":
            for key, value in values.items():
                if key[-6:-2] == "Temp":
                    s = int(key[-2:])
                    assert abs(value - mods.reported_temperature[m, s]) <= 0.05 + 1e-9
                    assert values[key + "_Invalid"] == 0
        else:
            status = mods.reported_status[m]
            assert abs(values[f"M{m:02}_ModuleVoltage"] - status[0]) <= 0.005 + 1e-9
            assert abs(values[f"M{m:02}_BoardTemperature"] - status[1]) <= 0.5 + 1e-9
            assert values[f"M{m:02}_CellsBalancing"] == 0
            assert values[f"M{m:02}_OpenWire"] == 0


@given(
    topology=topologies(),
    seed=st.integers(0, 2**32 - 1),
    soc=st.floats(0.05, 0.95),
    amps=st.floats(-150.0, 100.0),
    ambient=st.floats(-20.0, 45.0),
    dt=st.sampled_from([0.001, 0.01, 0.02, 0.05]),
)
def test_every_frame_decodes_to_the_sampled_values(
    topology: Topology, seed: int, soc: float, amps: float, ambient: float, dt: float
) -> None:
    sim = PackSimulator(topology, seed=seed, initial_soc=soc, ambient=ambient, current=amps)
    sent = []
    for _ in range(round(1.2 / dt)):
        frames = sim.step(dt)
        _check_step_frames(sim, frames)
        sent += frames
    # sampled values sit near the truth: noise (0.5 mV sigma) plus half a step of ADC
    true = sim.cell_voltages.reshape(topology.modules, -1)
    assert np.all(np.abs(sim.modules.reported_voltage - true) < 0.004 + abs(amps) * 2e-4 * dt)
    # counters: +1 per frame of each ID, all mux groups share one counter
    for frames in by_id(sent).values():
        steps = {
            (counter(b) - counter(a)) % COUNTER_MODULO
            for a, b in zip(frames, frames[1:], strict=False)
        }
        assert steps <= {1}
    ids = {m.arbitration_id for m in sent}
    expected = {0x200 + m for m in range(topology.modules)} | {
        0x280 + m for m in range(topology.modules)
    }
    expected |= {0x300 + m for m in range(topology.modules)}
    assert ids == expected


@pytest.mark.parametrize("fd", [False, True])
@pytest.mark.parametrize("dt", [0.001, 0.01, 0.03])
def test_frame_periods_match_gen_msg_cycle_time(fd: bool, dt: float) -> None:
    topo = Topology(modules=5, cells_per_module=40, sensors_per_module=35, fd=fd)
    sim = PackSimulator(topo, seed=2)
    sent = sim.run(5.0, dt)
    for frame_id, frames in by_id(sent).items():
        period = sim.db.get_message_by_frame_id(frame_id).cycle_time / 1000.0
        groups: dict[int, list[float]] = {}
        for msg in frames:
            groups.setdefault(msg.data[1] >> 4, []).append(msg.timestamp)
        for stamps in groups.values():
            intervals = np.diff(stamps)
            assert np.all(np.abs(intervals - period) <= dt + 1e-9), (hex(frame_id), intervals)
            assert len(stamps) == pytest.approx(5.0 / period, abs=1)
        # all groups of one ID go out in every period
        assert len({len(v) for v in groups.values()}) == 1


def test_modules_are_phase_shifted_and_stamps_are_virtual_time() -> None:
    sim = PackSimulator(Topology(modules=8), seed=0)
    sent = sim.run(0.2, 0.001)
    first = {}
    for msg in sent:
        first.setdefault(msg.arbitration_id, msg.timestamp)
    starts = sorted(first[0x200 + m] for m in range(8))
    assert len(set(np.round(starts, 6))) == 8  # no two modules burst together
    assert max(starts) < 0.1
    stamps = [m.timestamp for m in sent]
    assert stamps == sorted(stamps) and 0.0 <= stamps[0] and stamps[-1] <= 0.2


def test_same_seed_same_frames_other_seed_other_noise() -> None:
    a = PackSimulator(seed=5).run(0.5)
    b = PackSimulator(seed=5).run(0.5)
    c = PackSimulator(seed=6).run(0.5)
    assert [bytes(m.data) for m in a] == [bytes(m.data) for m in b]
    assert [bytes(m.data) for m in a] != [bytes(m.data) for m in c]


def test_cell_temperatures_follow_the_thermal_model_under_current() -> None:
    sim = PackSimulator(seed=1, current=-150.0)
    sim.run(600.0, 0.5)
    assert np.all(sim.module_temperatures > 25.5)
    sim.set_current(0.0)
    hot = sim.module_temperatures.copy()
    sim.run(600.0, 0.5)
    assert np.all(sim.module_temperatures < hot)
    decoded = [decode(sim, m) for m in sim.step(1.0) if 0x280 <= m.arbitration_id < 0x288]
    assert decoded  # a 1 s step always sends temperatures
