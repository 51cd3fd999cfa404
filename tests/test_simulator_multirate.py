"""The plant at its own long physics step sends the frames of the finely stepped plant.

The reference steps the physics so that every send instant is the end of a step, where the
plant's state is the one the step computed. The multi-rate run steps by
`PackSimulator.physics_step` (1 s, ten voltage frames per module) and evaluates the cells and
temperatures at each instant in closed form. Both must send the same frames at the same
instants, with the same counters and CRC validity, and values (decoded by cantools) that
agree within one ADC step plus what the longer step holds (the cell temperature in the
resistances, the heat and bleed currents), through fault injections and balancing.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from e2e_reference import frame_crc
from hypothesis import given, settings
from hypothesis import strategies as st
from sim_support import balancing_command

from dbc.topology import Topology
from slaves import faults as f
from slaves.cells import CellArray
from slaves.chemistry import get
from slaves.frames import SlaveFrames
from slaves.module import ModuleParams
from slaves.simulator import PackSimulator, SimConfig

SECONDS = 5
QUIET = SimConfig(
    modules=ModuleParams(voltage_noise_v=0.0, module_voltage_noise_v=0.0, temperature_noise_k=0.0)
)


@st.composite
def injections(draw: st.DrawFn, topology: Topology) -> list[tuple[int, int, f.Fault]]:
    """``(inject at s, clear at s, fault)``, at whole seconds: step boundaries of both runs."""
    m = st.integers(0, topology.modules - 1)
    c = st.integers(0, topology.cells_per_module - 1)
    s = st.integers(0, topology.sensors_per_module - 1)
    fault = st.one_of(
        st.builds(f.CellVoltageOffset, m, c, st.floats(-0.05, 0.05)),
        st.builds(f.CellVoltageStuck, m, c, st.none() | st.floats(2.5, 4.2)),
        st.builds(f.OpenWire, m, c),
        st.builds(f.SensorOpen, m, s),
        st.builds(f.SensorShort, m, s),
        st.builds(f.SensorStuck, m, st.none() | s, st.none() | st.floats(-20.0, 80.0)),
        st.builds(f.ModuleSilent, m),
        st.builds(f.CrcCorruption, m),
        st.builds(f.CounterFrozen, m),
        st.builds(f.CounterJump, m, st.integers(2, 15)),
    )
    out = []
    for _ in range(draw(st.integers(0, 4))):
        start = draw(st.integers(0, SECONDS - 1))
        end, drawn = draw(st.integers(start + 1, SECONDS + 1)), draw(fault)
        if all(drawn != other for _, _, other in out):  # an active fault is injected once
            out.append((start, end, drawn))
    return out


@st.composite
def cases(draw: st.DrawFn) -> dict:
    fd = draw(st.booleans())
    topology = Topology(
        modules=draw(st.sampled_from([1, 2, 4, 5, 8])),
        cells_per_module=draw(st.integers(1, 64 if fd else 48)),
        sensors_per_module=draw(st.integers(1, 40)),
        fd=fd,
    )
    chemistry = get(draw(st.sampled_from(["NMC", "LFP"])))
    # a short RC time constant: a frame sampled at the wrong instant reads millivolts off
    tau = draw(st.floats(0.3, 5.0))
    chemistry = dataclasses.replace(chemistry, c1_farad=tau / chemistry.r1_ohm)
    amps = draw(st.lists(st.floats(-150.0, 150.0), min_size=SECONDS, max_size=SECONDS))
    mask = draw(st.lists(st.integers(0, topology.cells_per_module - 1), max_size=3))
    return {
        "topology": topology,
        "chemistry": chemistry,
        "seed": draw(st.integers(0, 2**16)),
        "soc": draw(st.floats(0.1, 0.9)),
        "amps": amps,  # load changes at whole seconds
        "balance": sorted(set(mask)),
        "faults": draw(injections(topology)),
    }


def _run(case: dict, dt: float, reference: bool) -> list[SlaveFrames]:
    """Every slave frame of ``SECONDS`` s, stepping the plant by ``dt``."""
    sim = PackSimulator(
        case["topology"],
        case["chemistry"],
        seed=case["seed"],
        initial_soc=case["soc"],
        # the fine run's clock sums its steps: read whole seconds through the rounding
        current=lambda t: case["amps"][min(int(t + 1e-6), SECONDS - 1)],
        config=QUIET,
    )
    sent = []
    for second in range(SECONDS):
        for start, end, fault in case["faults"]:
            if start == second:
                sim.faults.inject(fault)
            if end == second:
                sim.faults.clear(fault)
        if case["balance"]:
            sim.receive([balancing_command(sim, 0, case["balance"], second)])
        for _ in range(round(1.0 / dt)):
            frames, _ = sim.step_frames(dt)
            if frames is None:
                continue
            if reference:
                _sent_at_step_end(sim, frames)
            sent.append(frames)
    return sent


def _sent_at_step_end(sim: PackSimulator, frames: SlaveFrames) -> None:
    """The reference samples at its step ends, from the state the step computed (the
    instants at 0 go out with the first step, sampled at its start)."""
    at_end = np.abs(frames.stamps - sim.t) < 1e-9
    assert np.all(at_end | (frames.stamps == 0.0))
    due = np.flatnonzero(np.isin(sim.modules.voltages.ids, frames.ids[at_end]))
    cells = sim.cell_voltages.reshape(sim.topology.modules, -1)[due]
    held = sim.faults.masks.voltage_stuck[due] | sim.faults.masks.open_wire[due]
    offset = sim.faults.masks.voltage_offset[due]
    reported = sim.modules.reported_voltage[due]
    np.testing.assert_allclose(np.where(held, cells, reported - offset), cells, atol=1e-9)


def _concatenated(frames: list[SlaveFrames]) -> tuple[np.ndarray, ...]:
    width = max(x.data.shape[1] for x in frames)
    data = np.concatenate(
        [np.pad(x.data, ((0, 0), (0, width - x.data.shape[1]))) for x in frames]
    )
    return (
        np.concatenate([x.stamps for x in frames]),
        np.concatenate([x.ids for x in frames]),
        np.concatenate([x.dlc for x in frames]),
        data,
    )


def _tolerance(name: str, fd: bool, cells: int) -> float:
    """One ADC step plus what the longer physics step holds, per decoded signal."""
    if name.endswith("_Voltage"):
        return (0.0004 if fd else 0.0002) + 0.5e-3
    if name.endswith("ModuleVoltage"):
        return 0.01 + cells * 0.5e-3
    if name.endswith("BoardTemperature"):
        return 1.0
    if "_Temp" in name and not name.endswith("_Invalid"):
        return 0.1 + 0.01
    return 0.0  # mux, counters, flags, counts: exact


@settings(max_examples=25)
@given(case=cases())
def test_long_physics_step_sends_the_frames_of_the_fine_one(case: dict) -> None:
    topology = case["topology"]
    fine = 0.1 / topology.modules  # every module's send instants fall on step ends
    sim = PackSimulator(topology, config=QUIET)
    ref = _concatenated(_run(case, fine, reference=True))
    ours = _concatenated(_run(case, sim.physics_step, reference=False))
    stamps, ids, dlc, data = ref
    np.testing.assert_allclose(ours[0], stamps, atol=1e-9)
    np.testing.assert_array_equal(ours[1], ids)
    np.testing.assert_array_equal(ours[2], dlc)
    for k in range(ids.size):
        a, b = bytes(data[k, : dlc[k]]), bytes(ours[3][k, : dlc[k]])
        assert a[1] == b[1]  # counter and mux
        frame_id = int(ids[k])
        assert (frame_crc(frame_id, a) == a[0]) == (frame_crc(frame_id, b) == b[0])
        want = sim.db.decode_message(frame_id, a, decode_choices=False)
        got = sim.db.decode_message(frame_id, b, decode_choices=False)
        assert want.keys() == got.keys()
        for name, value in want.items():
            if name.endswith("_CRC"):
                continue  # follows the payload; its validity is compared above
            tol = _tolerance(name, topology.fd, topology.cells_per_module)
            assert abs(got[name] - value) <= tol + 1e-9, (name, stamps[k], got[name], value)


@settings(max_examples=50)
@given(
    chemistry=st.sampled_from(["NMC", "LFP", "LTO"]),
    amps=st.floats(-300.0, 300.0),
    dt=st.floats(0.01, 30.0),
    fraction=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**16),
)
def test_voltage_inside_a_step_is_the_voltage_of_a_step_to_that_instant(
    chemistry: str, amps: float, dt: float, fraction: float, seed: int
) -> None:
    def cells() -> CellArray:
        array = CellArray(get(chemistry), 6, np.random.default_rng(seed), 0.5)
        array.step(5.0, -amps / 2, 30.0)  # some RC voltage and hysteresis to start from
        return array

    whole, part = cells(), cells()
    whole.step(dt, amps, 30.0)
    elapsed = max(fraction * dt, 1e-6)
    part.step(elapsed, amps, 30.0)
    inside = whole.voltage_at(np.full((3, 1), elapsed), np.arange(3), 2)
    # ageing is held over the whole step: microvolts, far below an ADC step
    np.testing.assert_allclose(inside.ravel(), part.voltage, rtol=0, atol=1e-5)
    at_end = whole.voltage_at(np.full((2, 1), dt), np.arange(2), 3)
    np.testing.assert_allclose(at_end.ravel(), whole.voltage, rtol=0, atol=1e-9)
