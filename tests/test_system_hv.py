"""The pack and its HV side coupled: precharge, load, sensor readings, fail-safe opening.

The test plays the master: it encodes ContactorCommand frames with cantools from the DBC
file and decodes the sensor's and the driver's frames the same way.
"""

from __future__ import annotations

import math

import can
import cantools
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import dbc
from dbc import master_e2e
from dbc.topology import Topology
from slaves.hv_circuit import HvCircuitConfig
from slaves.profiles import Scripted
from slaves.system import INTERNAL, SimulatedSystem

MASTER = cantools.database.load_file(dbc.path("canbms_master.dbc"))
IVT = cantools.database.load_file(dbc.path("ivt_s.dbc"))
HV = HvCircuitConfig()
DT = 0.01
COMMAND_PERIOD = 0.02
LOAD_AT = 1.0
LOAD_A = 100.0
SMALL = Topology(modules=1, cells_per_module=12, sensors_per_module=2)


class Master:
    """Sends ContactorCommand every 20 ms following a plan of (from time, minus, pre, plus)."""

    def __init__(self, plan: list[tuple[float, bool, bool, bool]], stop_at: float = math.inf):
        self.plan = plan
        self.stop_at = stop_at
        self.counter = 0
        self.next_send = 0.0

    def frames(self, t: float) -> list[can.Message]:
        if t + 1e-9 < self.next_send or t >= self.stop_at:
            return []
        self.next_send += COMMAND_PERIOD
        _, minus, pre, plus = [p for p in self.plan if p[0] <= t + 1e-9][-1]
        data = MASTER.encode_message(
            "ContactorCommand",
            {
                "ContactorCmd_MinusClose": int(minus),
                "ContactorCmd_PrechargeClose": int(pre),
                "ContactorCmd_PlusClose": int(plus),
                "ContactorCmd_Counter": 0,
                "ContactorCmd_CRC": 0,
            },
        )
        data = master_e2e.seal(0x0E8, data, self.counter)
        self.counter = master_e2e.next_counter(self.counter)
        return [can.Message(arbitration_id=0x0E8, data=data, is_extended_id=False)]


PRECHARGE_THEN_CLOSE = [
    (0.0, True, True, False),  # minus + precharge
    (0.6, True, True, True),  # plus
    (0.7, True, False, True),  # precharge open
]


def run(system: SimulatedSystem, master: Master, duration: float, dt: float = DT):
    """Step with the master in the loop; per step (t, cells' current, link voltage, sum of
    the cells' terminal voltages), and every internal frame."""
    trace, frames = [], []
    for _ in range(round(duration / dt)):
        system.receive(INTERNAL, master.frames(system.t))
        frames.extend(system.step(dt)[INTERNAL])
        cells_v = float(system.pack.cell_voltages.sum())
        trace.append((system.t, system.pack_current, system.link_voltage, cells_v))
    return np.array(trace), frames


def decoded(frames: list[can.Message], name: str) -> list[tuple[float, dict]]:
    """(timestamp, signals) of every frame of message ``name``, decoded by cantools."""
    db = IVT if name.startswith("IVT") else MASTER
    frame_id = db.get_message_by_name(name).frame_id
    return [
        (m.timestamp, db.decode_message(frame_id, bytes(m.data), decode_choices=False))
        for m in frames
        if m.arbitration_id == frame_id
    ]


def source_of(system: SimulatedSystem) -> tuple[float, float]:
    """(EMF, series resistance) of the pack from its cells, computed here independently."""
    cells = system.pack.plant.cells
    chem = system.pack.chemistry
    r0 = cells.r0_25 * chem.resistance_factor(cells.temperature)
    return float((chem.ocv(cells.soc) + cells.v_rc).sum()), float(r0.sum())


def precharge_curve(t: np.ndarray, emf: float, r_pack: float, closed_at: float) -> np.ndarray:
    g = 1.0 / (HV.precharge_resistance_ohm + r_pack)
    g_total = g + 1.0 / HV.bleed_resistance_ohm
    final = g * emf / g_total
    elapsed = np.maximum(t - closed_at, 0.0)
    return final * (1.0 - np.exp(-elapsed * g_total / HV.capacitance_f))


@pytest.fixture(scope="module")
def closed_run():
    system = SimulatedSystem(
        seed=3, initial_soc=0.6, load=Scripted([(0.0, 0.0), (LOAD_AT, LOAD_A)])
    )
    emf, r_pack = source_of(system)
    soc0 = system.pack.soc.copy()
    trace, frames = run(system, Master(PRECHARGE_THEN_CLOSE), 3.0)
    return system, emf, r_pack, soc0, trace, frames


def test_link_voltage_rises_with_the_precharge_time_constant(closed_run):
    system, emf, r_pack, _, trace, frames = closed_run
    # first command handled at the end of the first step, contacts close after the delay
    closed_at = DT + HV.close_delay_s
    t, link = trace[:, 0], trace[:, 2]
    window = t < 0.6
    expected = precharge_curve(t[window], emf, r_pack, closed_at)
    np.testing.assert_allclose(link[window], expected, atol=0.05)
    tau = HV.capacitance_f * (HV.precharge_resistance_ohm + r_pack)
    one_tau = np.interp(closed_at + tau, t, link)
    assert one_tau == pytest.approx((1 - math.exp(-1)) * emf, rel=2e-3)
    # the sensor's U2 frames show the same curve, in mV, stamped when measured
    u2 = decoded(frames, "IVT_Result_U2")
    stamps = np.array([s for s, _ in u2 if s < 0.6])
    volts = np.array([d["IVT_U2_Value"] / 1000.0 for s, d in u2 if s < 0.6])
    assert len(stamps) >= 5 and np.all(np.diff(stamps) == pytest.approx(0.1))
    np.testing.assert_allclose(volts, precharge_curve(stamps, emf, r_pack, closed_at), atol=0.05)


def test_cells_see_the_inrush_then_the_load(closed_run):
    system, emf, r_pack, _, trace, _ = closed_run
    t, current, link, _ = trace.T
    peak = emf / (HV.precharge_resistance_ohm + r_pack)
    pre = t < 0.6
    assert np.all(current[t <= DT + HV.close_delay_s] == 0.0)  # open: nothing flows
    assert -peak <= current[pre].min() < -0.6 * peak  # inrush, the mean of a step below peak
    # the capacitor's charge came out of the cells (bleed adds a few mA)
    inrush_c = -np.sum(current[pre]) * DT
    assert inrush_c == pytest.approx(HV.capacitance_f * link[pre][-1], rel=0.01)
    assert abs(current[(t > 0.5) & (t < LOAD_AT)]).max() < 0.05
    loaded = t > LOAD_AT + 0.05
    bleed = link[loaded] / HV.bleed_resistance_ohm
    # the link follows the slowly falling pack voltage: its capacitor gives back a fraction
    # of a mA
    np.testing.assert_allclose(current[loaded], -(LOAD_A + bleed), atol=1e-3)


def test_sensor_voltages_match_the_cells_under_load(closed_run):
    *_, trace, frames = closed_run
    t, _, _, cells_v = trace.T
    u1 = decoded(frames, "IVT_Result_U1")
    u2 = decoded(frames, "IVT_Result_U2")
    loaded = [k for k, (s, _) in enumerate(u1) if s > LOAD_AT + 0.05]
    assert len(loaded) >= 15
    for k in loaded:
        stamp, values = u1[k]
        pack_v = values["IVT_U1_Value"] / 1000.0
        link_v = u2[k][1]["IVT_U2_Value"] / 1000.0
        # U1 is the sum of the cell model's terminal voltages to the sensor's 1 mV, as the
        # cells were when the step began (the circuit is coupled to them then)
        assert pack_v == pytest.approx(np.interp(stamp - DT, t, cells_v), abs=0.001)
        drop = (LOAD_A + link_v / HV.bleed_resistance_ohm) * HV.path_resistance_ohm
        assert pack_v - link_v == pytest.approx(drop, abs=0.002)


def test_soc_falls_under_discharge_and_charge_is_conserved(closed_run):
    system, _, _, soc0, trace, frames = closed_run
    t, current, *_ = trace.T
    cells = system.pack.plant.cells
    drawn_c = -float(cells.throughput_c.mean())
    soc_drop = soc0 - system.pack.soc
    assert np.all(soc_drop > 0)
    leaked = cells.self_discharged_c / cells.capacity_c
    np.testing.assert_allclose(soc_drop, drawn_c / cells.capacity_c + leaked, rtol=1e-9)
    # the sensor's current frames, integrated over their 20 ms period, and its As counter
    currents = decoded(frames, "IVT_Result_I")
    stamps = np.array([s for s, _ in currents])
    assert np.allclose(np.diff(stamps), 0.02)
    integrated = -sum(d["IVT_I_Value"] for _, d in currents) / 1000.0 * 0.02
    assert integrated == pytest.approx(drawn_c, rel=0.005)
    # the As counter sent at t holds the charge up to the step before
    cells_drawn = -np.cumsum(current) * DT
    for stamp, values in decoded(frames, "IVT_Result_As"):
        before = np.interp(stamp - DT, t, cells_drawn, left=0.0)
        assert -values["IVT_As_Value"] == pytest.approx(before, abs=0.5 + 1e-6)
    assert drawn_c == pytest.approx(LOAD_A * (t[-1] - LOAD_AT), rel=0.01)


def test_driver_opens_everything_when_commands_stop():
    system = SimulatedSystem(topology=SMALL, load=Scripted([(0.0, 0.0), (0.8, 20.0)]))
    stop_at = 1.2
    trace, frames = run(system, Master(PRECHARGE_THEN_CLOSE, stop_at=stop_at), 1.6)
    t, current, link, _ = trace.T
    assert current[(t > 0.9) & (t < stop_at)] == pytest.approx(-20.0, abs=1e-3)
    last_command = stop_at - COMMAND_PERIOD
    # timeout 100 ms after the last fresh command, then the contacts' opening delay
    opened_by = last_command + 0.100 + DT + 0.015 + DT
    assert np.all(current[t >= opened_by] == 0.0)
    assert current[t < last_command + 0.100].min() < -19.0
    assert link[-1] < link[t >= opened_by][0]  # the isolated link only bleeds
    feedback = decoded(frames, "ContactorFeedback")
    late = [d for s, d in feedback if s >= opened_by]
    assert late and all(
        d["ContactorFbk_CommandTimeout"] == 1
        and d["ContactorFbk_MinusClosed"] == 0
        and d["ContactorFbk_PlusClosed"] == 0
        and d["ContactorFbk_PrechargeClosed"] == 0
        for d in late
    )
    closed = [d for s, d in feedback if 0.8 < s < stop_at]
    assert closed and all(d["ContactorFbk_PlusClosed"] == 1 for d in closed)


@given(
    dt=st.sampled_from([0.002, 0.005, 0.01, 0.02, 0.05]),
    soc=st.floats(0.1, 0.9),
    load=st.floats(-50.0, 50.0),
)
def test_precharge_and_charge_books_hold_for_any_step(dt, soc, load):
    """The link follows the exact curve at every step size, and every coulomb the link
    node took while connected left the cells."""
    system = SimulatedSystem(topology=SMALL, initial_soc=soc, load=Scripted([(0.0, 0.0)]))
    emf, r_pack = source_of(system)
    plan = [(0.0, True, True, False), (0.3, True, True, True), (0.34, True, False, True)]
    master = Master(plan)
    trace = []
    for _ in range(round(0.3 / dt)):
        system.receive(INTERNAL, master.frames(system.t))
        system.step(dt)
        trace.append((system.t, system.link_voltage))
    t, link = np.array(trace).T
    closed_at = dt + HV.close_delay_s  # the first command is handled at the first step's end
    np.testing.assert_allclose(link, precharge_curve(t, emf, r_pack, closed_at), atol=0.02)
    system.set_load(load)
    for _ in range(round(0.3 / dt)):
        system.receive(INTERNAL, master.frames(system.t))
        system.step(dt)
    cells = system.pack.plant.cells
    assert -float(cells.throughput_c.mean()) == pytest.approx(system.charge_drawn_c, abs=1e-9)
    # closed now: the cells carry the load plus the bleed, whatever the step
    bleed = system.link_voltage / HV.bleed_resistance_ohm
    assert system.pack_current == pytest.approx(-(load + bleed), abs=1e-3)


def test_a_load_waits_for_the_dc_link_and_stops_when_it_collapses():
    """A constant load requested from the start draws nothing while the link precharges
    (it would pull the link negative through the resistor), runs once closed, and stops
    when the contactors open under it."""
    system = SimulatedSystem(seed=4, initial_soc=0.6, load=LOAD_A)
    emf, _ = source_of(system)
    plan = [*PRECHARGE_THEN_CLOSE, (2.0, False, False, False)]
    trace, _ = run(system, Master(plan), 3.0)
    t, current, link = trace[:, 0], trace[:, 1], trace[:, 2]
    assert link.min() > -1.0  # never driven negative
    precharging = t < 0.6
    assert np.abs(current[precharging]).max() < 1.5 * emf / HV.precharge_resistance_ohm
    closed = (t > 1.0) & (t < 2.0)
    assert current[closed] == pytest.approx(-LOAD_A, abs=1.0)
    opened = t > 2.2
    assert np.abs(current[opened]).max() < 1e-6
