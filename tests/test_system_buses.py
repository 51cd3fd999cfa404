"""The system's two buses: EMS requests, routing of master frames, load devices, real time."""

from __future__ import annotations

import uuid
from collections import Counter

import can
import cantools
import numpy as np
import pytest

import dbc
from canbms.cli import main
from dbc import master_e2e
from dbc.topology import Topology
from slaves.ems import EmsCommand, EmsRequest
from slaves.realtime import RealtimeRunner
from slaves.system import INTERNAL, VEHICLE, SimulatedSystem

MASTER = cantools.database.load_file(dbc.path("canbms_master.dbc"))
SMALL = Topology(modules=2, cells_per_module=12, sensors_per_module=2)
EMS_ID = MASTER.get_message_by_name("EMS_StateRequest").frame_id
IVT_IDS = set(range(0x521, 0x529))


def contactor_command(minus: bool, pre: bool, plus: bool, counter: int) -> can.Message:
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
    data = master_e2e.seal(0x0E8, data, counter)
    return can.Message(arbitration_id=0x0E8, data=data, is_extended_id=False)


def _requested(msg: can.Message) -> int:
    """The requested state of an EMS_StateRequest whose E2E header is intact."""
    assert master_e2e.intact(EMS_ID, msg.data)
    decoded = MASTER.decode_message(EMS_ID, bytes(msg.data), decode_choices=False)
    return int(decoded["EMS_RequestedState"])


def limits_frame(dcl: float) -> can.Message:
    data = MASTER.encode_message(
        "BMS_Limits",
        {
            "BMS_ChargeCurrentLimit": 0.0,
            "BMS_DischargeCurrentLimit": dcl,
            "BMS_ChargeVoltageLimit": 50.0,
            "BMS_DischargeVoltageLimit": 30.0,
            "BMS_LimitsCounter": 0,
            "BMS_LimitsCRC": 0,
        },
    )
    data = master_e2e.seal(0x0F1, data, 0)
    return can.Message(arbitration_id=0x0F1, data=data, is_extended_id=False)


def close_contactors(system: SimulatedSystem, seconds: float, dt: float = 0.01):
    """Precharge for 0.4 s, then plus; a command every other 10 ms step."""
    out: dict[str, list[can.Message]] = {INTERNAL: [], VEHICLE: []}
    for k in range(round(seconds / dt)):
        if k % 2 == 0:
            plus = system.t >= 0.4
            system.receive(INTERNAL, [contactor_command(True, not plus, plus, k // 2)])
        for role, frames in system.step(dt).items():
            out[role].extend(frames)
    return out


def test_ems_requests_go_out_every_100_ms_on_the_vehicle_bus_as_scripted():
    script = [EmsCommand(0.35, EmsRequest.DISCHARGE), EmsCommand(0.75, EmsRequest.CHARGE, True)]
    system = SimulatedSystem(topology=SMALL, ems_script=script)
    out = system.run(1.2)
    vehicle = out[VEHICLE]
    assert {m.arbitration_id for m in vehicle} == {EMS_ID}
    assert EMS_ID not in {m.arbitration_id for m in out[INTERNAL]}
    stamps = np.array([m.timestamp for m in vehicle])
    np.testing.assert_allclose(np.diff(stamps), 0.1, atol=1e-9)
    assert len(vehicle) == 12
    decoded = [MASTER.decode_message(EMS_ID, bytes(m.data), decode_choices=False) for m in vehicle]
    expected = [0 if s < 0.35 else 1 if s < 0.75 else 2 for s in stamps]
    assert [d["EMS_RequestedState"] for d in decoded] == expected
    assert [d["EMS_FaultReset"] for d in decoded] == [int(s >= 0.75) for s in stamps]
    counters = [d["EMS_AliveCounter"] for d in decoded]
    assert all((b - a) % 15 == 1 for a, b in zip(counters, counters[1:], strict=False))


def test_master_frames_reach_only_the_devices_of_their_bus():
    system = SimulatedSystem(topology=SMALL)
    # a contactor command on the vehicle bus is not the driver's
    for k in range(30):
        system.receive(VEHICLE, [contactor_command(True, True, False, k)])
        system.step(0.01)
    assert system.driver.timed_out and system.link_voltage == 0.0
    system.receive(INTERNAL, [limits_frame(42.0)])
    assert "BMS_Limits" not in system.ems.received
    system.receive(VEHICLE, [limits_frame(42.0)])
    assert system.ems.received["BMS_Limits"]["BMS_DischargeCurrentLimit"] == pytest.approx(42.0)
    with pytest.raises(ValueError, match="role"):
        system.receive("slave", [])
    with pytest.raises(ValueError, match="role"):
        system.add_device("powertrain", "x", system.ems)
    with pytest.raises(ValueError, match="already"):
        system.add_device(VEHICLE, "ems", system.ems)


class LimitFollowingLoad:
    """A load on the vehicle bus that draws what it wants, capped at the last DCL it read."""

    def __init__(self, wanted_a: float) -> None:
        self.wanted_a = wanted_a
        self.dcl = 0.0

    def receive(self, msg: can.Message) -> None:
        if msg.arbitration_id == 0x0F1:
            decoded = MASTER.decode_message(0x0F1, bytes(msg.data))
            self.dcl = decoded["BMS_DischargeCurrentLimit"]

    def step(self, t: float, dt: float) -> list[can.Message]:
        return []

    def current(self, t: float) -> float:
        return min(self.wanted_a, self.dcl)


def test_a_load_device_on_the_vehicle_bus_drives_the_pack_current():
    system = SimulatedSystem(topology=SMALL)
    load = LimitFollowingLoad(wanted_a=80.0)
    system.add_device(VEHICLE, "inverter", load)
    system.set_load(load.current)
    close_contactors(system, 1.0)
    assert system.pack_current == pytest.approx(0.0, abs=1e-3)  # no limit received yet
    system.receive(VEHICLE, [limits_frame(25.0)])
    out = close_contactors(system, 0.5)
    bleed = system.link_voltage / system.circuit.config.bleed_resistance_ohm
    assert system.pack_current == pytest.approx(-(25.0 + bleed), abs=1e-3)
    # the sensor reports it on the internal bus
    ivt = [m for m in out[INTERNAL] if m.arbitration_id == 0x521]
    assert int.from_bytes(ivt[-1].data[2:6], "big", signed=True) == pytest.approx(-25_000, abs=2)
    system.receive(VEHICLE, [limits_frame(200.0)])
    close_contactors(system, 0.2)
    assert system.pack_current == pytest.approx(-(80.0 + bleed), abs=1e-2)


class LinkShareLoad:
    """A load that adds its own share to the circuit's load current, as power stages do."""

    def __init__(self, system: SimulatedSystem, amps: float) -> None:
        self.link = system.circuit
        self.amps = amps
        self.drawn = 0.0

    def receive(self, msg: can.Message) -> None:
        """Deaf: this load draws whatever the bus says."""

    def step(self, t: float, dt: float) -> list[can.Message]:
        self.link.load_current += self.amps - self.drawn
        self.drawn = self.amps
        return []


def test_load_shares_of_devices_and_the_load_function_add_up():
    system = SimulatedSystem(topology=SMALL, load=10.0)
    system.add_device(VEHICLE, "heater", LinkShareLoad(system, 30.0))
    close_contactors(system, 1.0)
    bleed = system.link_voltage / system.circuit.config.bleed_resistance_ohm
    assert system.pack_current == pytest.approx(-(40.0 + bleed), abs=1e-3)
    system.set_load(-5.0)  # a charger feeding the link while the heater runs
    close_contactors(system, 0.1)
    assert system.pack_current == pytest.approx(-(25.0 + bleed), abs=1e-3)


def _drain(bus: can.BusABC) -> list[can.Message]:
    out = []
    while (msg := bus.recv(timeout=0.2)) is not None:
        out.append(msg)
    return out


def test_realtime_on_two_buses_obeys_commands_from_the_bus():
    internal_ch, vehicle_ch = (f"test-{uuid.uuid4().hex}" for _ in range(2))
    with (
        can.Bus(interface="virtual", channel=internal_ch) as sim_internal,
        can.Bus(interface="virtual", channel=vehicle_ch) as sim_vehicle,
        can.Bus(interface="virtual", channel=internal_ch) as master_internal,
        can.Bus(interface="virtual", channel=vehicle_ch) as master_vehicle,
    ):
        system = SimulatedSystem(topology=SMALL, ems_script=[EmsCommand(0.0, EmsRequest.CHARGE)])
        runner = RealtimeRunner(system, {INTERNAL: sim_internal, VEHICLE: sim_vehicle})
        task = master_internal.send_periodic(contactor_command(True, True, False, 0), 0.02)
        # the driver wants a new counter in every command
        counters = iter(range(1, 10_000))

        def modify(msg: can.Message) -> None:
            msg.data[:] = master_e2e.seal(0x0E8, msg.data, next(counters))

        task.modifier_callback = modify
        try:
            stats = runner.run(duration=1.0)
        finally:
            task.stop()
        internal, vehicle = _drain(master_internal), _drain(master_vehicle)
    assert stats.send_errors == 0 and stats.frames_sent == len(internal) + len(vehicle)
    ids = Counter(m.arbitration_id for m in internal)
    assert {0x200, 0x201, 0x300, 0x301, 0x0E9} | IVT_IDS <= set(ids)
    assert set(m.arbitration_id for m in vehicle) == {EMS_ID} and 9 <= len(vehicle) <= 11
    assert all(_requested(m) == EmsRequest.CHARGE for m in vehicle)
    feedback = MASTER.decode_message(
        0x0E9, bytes([m for m in internal if m.arbitration_id == 0x0E9][-1].data)
    )
    assert (
        feedback["ContactorFbk_MinusClosed"] == 1 and feedback["ContactorFbk_PrechargeClosed"] == 1
    )
    assert system.link_voltage > 0.9 * system.circuit.pack_voltage


def test_cli_system_mode_sends_on_both_buses(capsys: pytest.CaptureFixture[str]):
    internal_ch, vehicle_ch = (f"test-{uuid.uuid4().hex}" for _ in range(2))
    with (
        can.Bus(interface="virtual", channel=internal_ch) as internal_bus,
        can.Bus(interface="virtual", channel=vehicle_ch) as vehicle_bus,
    ):
        argv = ["sim", "--system", "-c", internal_ch, "--vehicle-channel", vehicle_ch]
        argv += ["--modules", "2", "--duration", "1.0", "--request", "discharge@0.5"]
        assert main(argv) == 0
        internal, vehicle = _drain(internal_bus), _drain(vehicle_bus)
    out = capsys.readouterr().out.splitlines()
    assert "contactor driver, EMS" in out[0]
    assert any(line.startswith("t=") and "EMS discharge" in line for line in out)
    ids = {m.arbitration_id for m in internal}
    assert {0x200, 0x201, 0x300, 0x301, 0x0E9} | IVT_IDS <= ids and EMS_ID not in ids
    requests = [_requested(m) for m in vehicle if m.arbitration_id == EMS_ID]
    assert 9 <= len(requests) <= 11 and requests[0] == 0 and requests[-1] == 1
