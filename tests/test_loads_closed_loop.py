"""The controller's charger and inverter adapters against the plant models, frame for frame.

Both sides are built from the same DBCs by different code: here they must understand each
other (split current, fault stop, keep-alive) with a battery whose voltage they both see.
"""

from __future__ import annotations

from collections.abc import Callable

import can
import pytest
from adapter_support import snapshot
from loads_support import RcBattery

from controller.adapters.base import BmsSnapshot, Level
from controller.adapters.canbms_inverter import CanBmsInverter
from controller.adapters.canbms_inverter import InverterConfig as AdapterInverterConfig
from controller.adapters.elcon import ElconCharger as ElconAdapter
from controller.adapters.elcon import ElconConfig
from controller.diagnosis import Event
from controller.frames import FrameBatch
from controller.stage import StageInputs
from slaves.elcon_charger import ChargerConfig, ElconCharger, StatusBit
from slaves.inverter import Inverter, InverterConfig, InverterState

DT = 0.01


class Loop:
    """Adapter (controller side) and devices (plant side) exchanging frames each step."""

    def __init__(self, adapter, devices, battery: RcBattery) -> None:
        self.adapter, self.devices, self.battery = adapter, devices, battery
        self.state = adapter.initial_state()
        self.t = 0.0
        self.inbox: list[can.Message] = []  # plant -> adapter, read at the next step
        self.events: list[Event] = []
        self.output = None

    def run(self, duration: float, bms: Callable[[RcBattery], BmsSnapshot]) -> None:
        for _ in range(round(duration / DT)):
            self.t += DT
            rx = FrameBatch.from_messages(self.inbox, bus=self.adapter.bus)
            inputs = StageInputs(bms(self.battery), rx)
            self.state, self.output = self.adapter.step(self.state, inputs, self.t)
            self.events += self.output.events
            sent = [
                can.Message(
                    arbitration_id=f.arbitration_id,
                    data=f.data,
                    is_extended_id=f.is_extended_id,
                    timestamp=self.t,
                )
                for f in self.output.frames
            ]
            for msg in sent:
                for device in self.devices:
                    device.receive(msg)
            self.battery.step(self.t, DT)
            self.inbox = [m for d in self.devices for m in d.step(self.t, DT)]


def measured(**changes) -> Callable[[RcBattery], BmsSnapshot]:
    return lambda b: snapshot(pack_voltage=b.link_voltage, pack_current=-b.load_current, **changes)


def test_two_chargers_share_the_ccl_and_one_takes_over_when_the_other_faults():
    battery = RcBattery(ocv=51.0, volts_per_as=0.0, r0=0.01, r1=1e-9)
    e5 = ElconCharger(battery, ChargerConfig(address=0xE5))
    e7 = ElconCharger(battery, ChargerConfig(address=0xE7))
    adapter = ElconAdapter(ElconConfig(max_current=20.0, addresses=(0xE5, 0xE7)))
    loop = Loop(adapter, [e5, e7], battery)
    loop.run(5.0, measured(ccl=30.0, cvl=54.0))
    assert e5.current == pytest.approx(15.0) and e7.current == pytest.approx(15.0)
    assert -battery.load_current <= 30.0 + 1e-9

    e7.inject(StatusBit.HARDWARE_FAULT)
    loop.run(3.0, measured(ccl=30.0, cvl=54.0))
    assert e7.current == 0.0
    assert e5.current == pytest.approx(20.0)  # the whole CCL, up to its rating
    assert any("E7 fault hardware fault active" in str(e) for e in loop.events)

    loop.run(0.3, measured(ccl=30.0, cvl=54.0, fault_level=Level.FAULT))
    assert e5.current == 0.0 and e5.command is not None and not e5.command.start


def test_the_charger_holds_the_cvl_until_the_adapter_ends_the_charge():
    battery = RcBattery(ocv=53.0, volts_per_as=0.005, r0=0.01, r1=0.005, c1=100.0)
    charger = ElconCharger(battery)
    loop = Loop(ElconAdapter(ElconConfig(max_current=20.0)), [charger], battery)
    samples = []
    for _ in range(400):
        loop.run(0.1, measured(ccl=20.0, cvl=54.0))
        samples.append((battery.link_voltage, charger.current))
    assert max(v for v, _ in samples) <= 54.0 + 0.1
    reached = next(k for k, (v, _) in enumerate(samples) if v > 53.98)
    tapering = [v for v, i in samples[reached:] if i > 1.0]
    assert len(tapering) > 20 and all(abs(v - 54.0) <= 0.1 for v in tapering)
    # below the termination current for its delay: the adapter stops the charger
    assert any("charge complete" in str(e) for e in loop.events)
    assert charger.current == 0.0 and not charger.command.start


@pytest.mark.parametrize("variant", ["victron", "pylontech", "sma"])
def test_the_inverter_obeys_the_dcl_and_stops_on_a_bms_fault(variant):
    battery = RcBattery(ocv=51.2, volts_per_as=0.0, r0=0.005, r1=1e-9)
    inverter = Inverter(battery, -80.0, config=InverterConfig(variant=variant))
    adapter = CanBmsInverter(AdapterInverterConfig(variant=variant))
    loop = Loop(adapter, [inverter], battery)
    loop.run(12.0, measured(dcl=50.0))
    assert inverter.state is InverterState.RUNNING
    assert inverter.current == pytest.approx(-50.0)
    assert not any("keep-alive lost" in str(e) for e in loop.events)  # its 0x305 is understood

    loop.run(0.05, measured(dcl=50.0, fault_level=Level.FAULT, checks={"cell_undervoltage": 3}))
    assert inverter.current == 0.0  # frames went out at once, not at the next period
    assert inverter.state in (InverterState.ALARM, InverterState.DISABLED)


def test_a_silent_inverter_is_noticed_by_the_adapter():
    battery = RcBattery(ocv=51.2, volts_per_as=0.0, r0=0.005, r1=1e-9)
    inverter = Inverter(battery, -20.0)
    inverter.silent = True
    loop = Loop(CanBmsInverter(AdapterInverterConfig(variant="victron")), [inverter], battery)
    loop.run(11.0, measured())
    assert any("keep-alive lost" in str(e) for e in loop.events)
    assert inverter.current == pytest.approx(-20.0)  # a lost keep-alive alone stops nothing
