"""``canbms reset`` against the controller core running live on a python-can virtual bus.

The core and its plant step every 10 ms of virtual time, never ahead of the wall clock; the
vehicle bus between them and the command is a virtual channel. The EMS of the plant is
silent, so the BMS latches ``ems_timeout`` and the command stands in for it.
"""

from __future__ import annotations

import itertools
import os
import threading
import time

import can
import cantools
import pytest
from core_support import VEHICLE, Rig, to_batch

from canbms.cli import main
from canbms.cli.reset import ResetSession
from controller.contactors import ContactorState
from controller.diagnosis import Event
from dbc import master_e2e
from dbc import path as dbc_path

MASTER = cantools.database.load_file(str(dbc_path("canbms_master.dbc")), strict=True)
REQUEST = MASTER.get_message_by_name("EMS_StateRequest")
_channels = itertools.count()


class LiveBms(threading.Thread):
    """The controller core and its plant in real time on a virtual vehicle bus."""

    def __init__(self, channel: str, ems_on_bus: bool = False) -> None:
        super().__init__(daemon=True)
        self.rig = Rig()
        self.ems_on_bus = ems_on_bus
        if not ems_on_bus:
            self.rig.plant.silent.add("ems")
        self.bus = can.Bus(interface="virtual", channel=channel, receive_own_messages=False)
        self.events: list[Event] = []
        self.halt = threading.Event()
        self.lock = threading.Lock()

    def run(self) -> None:
        rig, start = self.rig, time.monotonic()
        while not self.halt.is_set():
            ahead = start + rig.k * rig.cycle - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)
            with self.lock:
                rig.k += 1
                rig.now = round(rig.k * rig.cycle, 9)
                frames = rig.plant.frames(rig.k, rig.now, rig.cycle)
                if self.ems_on_bus:
                    for bus, frame_id, data in frames:
                        if bus == VEHICLE:
                            self.bus.send(
                                can.Message(
                                    arbitration_id=frame_id, data=data, is_extended_id=False
                                )
                            )
                while (msg := self.bus.recv(0)) is not None:
                    frames.append((VEHICLE, msg.arbitration_id, bytes(msg.data)))
                result = rig.controller.step(rig.state, to_batch(frames, rig.now), rig.now)
                rig.state = result.state
                rig.deliver(result.frames)
                self.events.extend(result.events)
                for frame in result.frames:
                    if frame.bus == "vehicle":
                        message = can.Message(
                            arbitration_id=frame.arbitration_id,
                            data=frame.data,
                            is_extended_id=False,
                        )
                        self.bus.send(message)

    def wait_for_fault(self, limit: float = 20.0) -> None:
        end = time.monotonic() + limit
        while time.monotonic() < end:
            with self.lock:
                if self.rig.state.contactors.state is ContactorState.FAULT:
                    return
            time.sleep(0.05)
        raise AssertionError("the BMS never latched a fault")

    def named(self, diagnosis: str) -> list[Event]:
        with self.lock:
            return [e for e in self.events if e.diagnosis == diagnosis]

    def close(self) -> None:
        self.halt.set()
        self.join(5.0)
        self.bus.shutdown()


@pytest.fixture
def channel() -> str:
    return f"reset-{os.getpid()}-{next(_channels)}"


@pytest.fixture
def live(channel):
    bms = LiveBms(channel)
    bms.start()
    yield bms
    bms.close()


def test_reset_clears_a_gone_ems_timeout_and_continues_the_alive_counter(live, channel) -> None:
    live.wait_for_fault()
    with (
        can.Bus(interface="virtual", channel=channel) as tool,
        can.Bus(interface="virtual", channel=channel) as spy,
        can.Bus(interface="virtual", channel=channel) as old_ems,
    ):
        plain = {"EMS_RequestedState": 0, "EMS_FaultReset": 0, "EMS_AliveCounter": 0, "EMS_CRC": 0}
        last = master_e2e.seal(REQUEST.frame_id, REQUEST.encode(plain), 9)
        session = ResetSession(tool, listen=1.0, lead=1.0, pulse=1.0, timeout=10.0)
        old_ems.send(can.Message(arbitration_id=REQUEST.frame_id, data=last, is_extended_id=False))
        outcome = session.run()
        sent = []
        while (msg := spy.recv(0)) is not None:
            if msg.arbitration_id == REQUEST.frame_id:
                assert master_e2e.intact(REQUEST.frame_id, msg.data)
                sent.append(REQUEST.decode(msg.data, decode_choices=False))
    assert outcome.code == 0, outcome.message
    sent = sent[1:]  # the first is the old EMS's frame
    assert [f["EMS_AliveCounter"] for f in sent[:3]] == [10, 11, 12]
    assert all(f["EMS_RequestedState"] == 0 for f in sent)
    assert any(f["EMS_FaultReset"] == 1 for f in sent)
    [accepted] = live.named("fault_reset_accepted")
    assert "source ems" in accepted.detail and "ems_timeout" in accepted.detail


def test_reset_reports_failure_while_the_cause_is_present(live, channel) -> None:
    with live.lock:
        live.rig.plant.cell_v[7] = 5.0
        live.rig.plant.force("cells", "status", "ivt")
    live.wait_for_fault()
    code = main(["reset", "-i", "virtual", "-c", channel, "--lead", "0.5", "--timeout", "3"])
    assert code == 1
    time.sleep(0.3)  # the refusal is logged at the step after the pulse
    refused = live.named("fault_reset_refused")
    assert refused and "cell_overvoltage: cause still present" in refused[-1].detail
    with live.lock:
        assert live.rig.state.life.counters.resets_refused >= 1


def test_reset_refuses_to_speak_over_an_active_ems(channel) -> None:
    bms = LiveBms(channel, ems_on_bus=True)
    bms.start()
    try:
        time.sleep(0.5)
        assert main(["reset", "-i", "virtual", "-c", channel, "--listen", "0.5"]) == 2
    finally:
        bms.close()
    assert not bms.named("fault_reset_requested")


def test_reset_without_a_bms_exits_2(channel, capsys) -> None:
    assert main(["reset", "-i", "virtual", "-c", channel, "--listen", "0.2"]) == 2
    assert "no BMS_Status heard" in capsys.readouterr().out
