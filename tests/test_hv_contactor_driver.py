"""Contactor driver and EMS models: commands in, coils and feedback out, fail-safe on silence."""

from __future__ import annotations

import can
import cantools
import pytest

import dbc
from dbc import master_e2e
from slaves.contactor_driver import ContactorDriver
from slaves.ems import Ems, EmsCommand, EmsRequest
from slaves.hv_circuit import ContactorFault, ContactorId, HvCircuit, HvCircuitConfig

MASTER = cantools.database.load_file(dbc.path("canbms_master.dbc"), strict=True)
CMD = MASTER.get_message_by_name("ContactorCommand")
FBK = MASTER.get_message_by_name("ContactorFeedback")
DT = 0.001
CLOSE = HvCircuitConfig().close_delay_s
OPEN = HvCircuitConfig().open_delay_s


class Bench:
    """Circuit + driver; a master that sends ``command`` every 20 ms until ``stop_at``."""

    def __init__(self) -> None:
        self.circuit = HvCircuit(pack_voltage=400.0)
        self.driver = ContactorDriver(self.circuit)
        self.command = dict.fromkeys(ContactorId, False)
        self.stop_at = float("inf")
        self.repeat_counter = False
        self.counter = 0
        self.n = 0
        self.feedback: list[tuple[float, dict]] = []

    @property
    def t(self) -> float:
        return self.n * DT

    def run(self, seconds: float) -> None:
        for _ in range(round(seconds / DT)):
            self.n += 1
            t = self.t
            self.circuit.step(t, DT)
            if self.n % 20 == 0 and t < self.stop_at:
                self.driver.receive(self._frame())
            for frame in self.driver.step(t, DT):
                assert frame.arbitration_id == FBK.frame_id
                assert master_e2e.intact(FBK.frame_id, frame.data)
                self.feedback.append((frame.timestamp, FBK.decode(bytes(frame.data))))

    def _frame(self) -> can.Message:
        names = {
            ContactorId.MINUS: "ContactorCmd_MinusClose",
            ContactorId.PRECHARGE: "ContactorCmd_PrechargeClose",
            ContactorId.PLUS: "ContactorCmd_PlusClose",
        }
        signals = {names[c]: int(on) for c, on in self.command.items()}
        signals |= {"ContactorCmd_Counter": 0, "ContactorCmd_CRC": 0}
        data = master_e2e.seal(CMD.frame_id, CMD.encode(signals), self.counter)
        if not self.repeat_counter:
            self.counter = master_e2e.next_counter(self.counter)
        return can.Message(arbitration_id=CMD.frame_id, data=data, is_extended_id=False)

    def first_feedback(self, signal: str, value: int, after: float) -> float:
        return next(t for t, f in self.feedback if t >= after and f[signal] == value)


def test_feedback_follows_command_after_the_closing_delay():
    bench = Bench()
    bench.run(0.1)
    bench.command[ContactorId.MINUS] = True
    commanded = bench.t + 0.020  # next command frame
    bench.run(0.2)
    closed_at = bench.first_feedback("ContactorFbk_MinusClosed", 1, 0.0)
    assert commanded + CLOSE <= closed_at <= commanded + CLOSE + 0.020 + 1e-9
    assert bench.circuit.contactors[ContactorId.MINUS].closed
    assert bench.feedback[-1][1]["ContactorFbk_CommandTimeout"] == 0
    stamps = [t for t, _ in bench.feedback]
    assert all(b - a == pytest.approx(0.020) for a, b in zip(stamps, stamps[1:], strict=False))
    counters = [f["ContactorFbk_Counter"] for _, f in bench.feedback]
    assert counters == [k % 15 for k in range(len(counters))]


@pytest.mark.parametrize("fault", ["silence", "repeated counter"])
def test_stale_commands_open_everything(fault):
    bench = Bench()
    bench.command = dict.fromkeys(ContactorId, True)
    bench.run(0.3)
    assert all(k.closed for k in bench.circuit.contactors.values())
    last_fresh = bench.t
    if fault == "silence":
        bench.stop_at = bench.t
    else:
        bench.repeat_counter = True
        bench.run(0.02)
        last_fresh = bench.t  # the first frame with the frozen counter is still new
    bench.run(0.3)
    timeout = bench.driver.config.command_timeout_s
    opened = bench.first_feedback("ContactorFbk_PlusClosed", 0, last_fresh)
    assert last_fresh + timeout + OPEN <= opened <= last_fresh + timeout + OPEN + 0.021
    assert not any(k.closed for k in bench.circuit.contactors.values())
    assert bench.feedback[-1][1]["ContactorFbk_CommandTimeout"] == 1


def test_no_command_at_all_keeps_coils_off():
    bench = Bench()
    bench.stop_at = 0.0
    bench.run(0.2)
    assert not any(k.coil for k in bench.circuit.contactors.values())
    assert all(f["ContactorFbk_CommandTimeout"] == 1 for _, f in bench.feedback)


def test_welded_contactor_reports_closed_after_open_command():
    bench = Bench()
    bench.circuit.contactors[ContactorId.PLUS].fault = ContactorFault.WELDED
    bench.command = dict.fromkeys(ContactorId, True)
    bench.run(0.2)
    bench.command = dict.fromkeys(ContactorId, False)
    bench.run(0.2)
    last = bench.feedback[-1][1]
    assert last["ContactorFbk_PlusClosed"] == 1
    assert last["ContactorFbk_MinusClosed"] == 0
    assert last["ContactorFbk_PrechargeClosed"] == 0


def test_silent_driver_sends_nothing_but_still_drives():
    bench = Bench()
    bench.driver.silent = True
    bench.command[ContactorId.MINUS] = True
    bench.run(0.2)
    assert bench.feedback == []
    assert bench.circuit.contactors[ContactorId.MINUS].closed


# --- EMS ---------------------------------------------------------------------------------

REQ = MASTER.get_message_by_name("EMS_StateRequest")


def _ems_frames(ems: Ems, seconds: float, dt: float = 0.01) -> list[tuple[float, dict]]:
    out = []
    for n in range(1, round(seconds / dt) + 1):
        for frame in ems.step(n * dt, dt):
            out.append((frame.timestamp, REQ.decode(bytes(frame.data), decode_choices=False)))
    return out


def test_ems_follows_its_script_every_100_ms():
    ems = Ems(
        [
            EmsCommand(0.5, EmsRequest.DISCHARGE),
            EmsCommand(1.0, EmsRequest.STANDBY, fault_reset=True),
            EmsCommand(1.2, EmsRequest.CHARGE),
        ]
    )
    frames = _ems_frames(ems, 2.0)
    stamps = [t for t, _ in frames]
    assert all(b - a == pytest.approx(0.1) for a, b in zip(stamps, stamps[1:], strict=False))
    for t, f in frames:
        expected = 0 if t < 0.5 else 1 if t < 1.0 else 0 if t < 1.2 else 2
        assert f["EMS_RequestedState"] == expected, t
        assert f["EMS_FaultReset"] == int(1.0 <= t < 1.2)
    counters = [f["EMS_AliveCounter"] for _, f in frames]
    assert counters == [k % 15 for k in range(len(counters))]


def test_ems_fault_injection():
    ems = Ems()
    ems.counter_frozen = True
    frames = _ems_frames(ems, 0.5)
    assert len({f["EMS_AliveCounter"] for _, f in frames}) == 1
    ems.silent = True
    assert _ems_frames(ems, 0.5) == []


def test_ems_keeps_the_last_bms_frames():
    ems = Ems()
    status = MASTER.get_message_by_name("BMS_Status")
    values = {s.name: 0 for s in status.signals} | {"BMS_State": 6, "BMS_ActiveFaults": 1 << 14}
    data = master_e2e.seal(status.frame_id, status.encode(values), 4)
    ems.receive(can.Message(arbitration_id=status.frame_id, data=data, is_extended_id=False))
    corrupted = bytes([data[0] ^ 1, *data[1:]])
    ems.receive(can.Message(arbitration_id=status.frame_id, data=corrupted, is_extended_id=False))
    ems.receive(
        can.Message(arbitration_id=CMD.frame_id, data=bytes(2), is_extended_id=False)
    )  # internal bus frame
    assert ems.received["BMS_Status"]["BMS_State"] == 6
    assert ems.received["BMS_Status"]["BMS_ActiveFaults"] == 1 << 14
    assert set(ems.received) == {"BMS_Status"}
