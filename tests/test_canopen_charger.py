"""CiA 419 charger simulator against the battery node on a virtual bus.

Both run on one virtual time grid (10 ms); a short real pause per step lets canopen's
receive threads deliver the frames sent in that step.
"""

from __future__ import annotations

import struct
import time

import can
import pytest
from adapter_support import snapshot
from canopen_support import unique_channel, virtual_networks

from controller.canopen_node import BatteryNode, BatteryNodeConfig
from slaves.cia419_charger import ChargerConfig, ChargerStatus, Cia419Charger

BATTERY = 0x05
STEP = 0.01
BATTERY_CONFIG = BatteryNodeConfig(node_id=BATTERY, heartbeat_ms=100, tpdo3_ms=50)


class Rig:
    def __init__(self, battery: BatteryNode, charger: Cia419Charger) -> None:
        self.battery, self.charger, self.t = battery, charger, 0.0
        self.stalled = False

    def run(self, seconds: float, **snap) -> list[tuple[float, float]]:
        """(time, output current) per step."""
        out = []
        for _ in range(round(seconds / STEP)):
            if not self.stalled:
                self.battery.update(snapshot(**snap), self.t)
            time.sleep(0.002)
            out.append((self.t, self.charger.step(self.t)))
            self.t += STEP
        return out


def rig_for(request, **charger):
    config = ChargerConfig(node_id=0x10, battery_node_id=BATTERY, **charger)
    channel = unique_channel(request.node.name)
    nets = virtual_networks(channel)
    net_a, net_b = nets.__enter__()
    battery = BatteryNode(net_a, BATTERY_CONFIG)
    charger = Cia419Charger(net_b, config)
    request.addfinalizer(lambda: nets.__exit__(None, None, None))
    request.addfinalizer(charger.close)
    request.addfinalizer(battery.close)
    return Rig(battery, charger), channel


@pytest.fixture
def rig(request):
    return rig_for(request, max_current=50.0, ramp_rate=100.0)[0]


def first_time(trace, predicate) -> float:
    return next(t for t, i in trace if predicate(i))


def test_no_output_before_the_battery_is_heard(rig):
    rig.stalled = True
    assert all(i == 0 for _, i in rig.run(0.3))
    assert rig.charger.status & ChargerStatus.BATTERY_LOST
    assert rig.charger.status & ChargerStatus.REQUEST_STALE


def test_output_ramps_to_the_request_and_is_clamped_to_the_maximum(rig):
    trace = rig.run(1.0, ccl=30.0)
    steps = [b - a for (_, a), (_, b) in zip(trace, trace[1:], strict=False)]
    assert max(steps) <= 100.0 * STEP + 1e-9  # ramp rate
    assert trace[-1][1] == 30.0 and rig.charger.requested_current == 30.0
    assert rig.charger.status == ChargerStatus.OUTPUT_ON
    trace = rig.run(0.6, ccl=80.0)
    assert trace[-1][1] == 50.0
    assert rig.charger.status == ChargerStatus.OUTPUT_ON | ChargerStatus.CURRENT_LIMITED
    trace = rig.run(0.3, ccl=12.0)  # reductions apply at once
    assert trace[-1][1] == 12.0 and max(i for _, i in trace[10:]) == 12.0


def test_stops_when_the_request_drops_to_zero(rig):
    rig.run(0.6, ccl=20.0)
    start = rig.t
    trace = rig.run(0.3, ccl=20.0, charge_allowed=False)
    # one TPDO3 period (50 ms) plus the step in which it is taken over
    assert first_time(trace, lambda i: i == 0) - start <= 0.05 + 2 * STEP + 1e-9
    assert trace[-1][1] == 0


def test_stops_on_heartbeat_loss_while_requests_continue(request):
    rig, _ = rig_for(request, heartbeat_timeout=0.3, request_timeout=5.0)
    rig.run(0.6, ccl=20.0)
    assert rig.charger.output_current == 20.0
    store = rig.battery.node.data_store  # a heartbeat time of 0, set locally: TPDOs go on
    store.setdefault(0x1017, {})[0] = struct.pack("<H", 0)
    last_heartbeat = rig.t - 0.1  # heartbeat at 100 ms: the last one was within this window
    trace = rig.run(0.6, ccl=20.0)
    stopped = first_time(trace, lambda i: i == 0)
    assert 0.3 <= stopped - last_heartbeat <= 0.3 + 0.1 + 2 * STEP
    assert rig.charger.status == ChargerStatus.BATTERY_LOST


def test_stops_when_the_battery_control_loop_stalls(request):
    rig, _ = rig_for(request, heartbeat_timeout=0.3, request_timeout=5.0)
    rig.run(0.6, ccl=20.0)
    rig.stalled = True
    start = rig.t
    trace = rig.run(0.6)
    assert 0.3 - 0.1 <= first_time(trace, lambda i: i == 0) - start <= 0.3 + 2 * STEP
    rig.stalled = False
    assert rig.run(0.6, ccl=20.0)[-1][1] == 20.0  # recovers with the heartbeat


def test_stops_when_the_battery_is_stopped_by_nmt(request):
    rig, channel = rig_for(request, heartbeat_timeout=1.0, request_timeout=5.0)
    rig.run(0.6, ccl=20.0)
    with can.Bus(interface="virtual", channel=channel) as master:
        master.send(can.Message(arbitration_id=0, data=[0x02, BATTERY], is_extended_id=False))
    start = rig.t
    trace = rig.run(0.3, ccl=20.0)
    # the next heartbeat (<= 100 ms) reports STOPPED
    assert first_time(trace, lambda i: i == 0) - start <= 0.1 + 2 * STEP


def test_status_and_charge_returned_reach_the_battery_rpdo(request):
    rig, channel = rig_for(request, ramp_rate=1e6, max_current=4000.0)
    rig.battery.node.set_data(0x2100, 2, struct.pack("<H", 0xFFFF))  # request cap off
    with can.Bus(interface="virtual", channel=channel) as listener:
        rig.run(1.0, ccl=3600.0)  # 1 Ah per second: 8 counts of 1/8 Ah
        frames = []
        while (msg := listener.recv(timeout=0.05)) is not None:
            if msg.arbitration_id == 0x200 + BATTERY:
                frames.append(bytes(msg.data))
    status, returned = struct.unpack("<HH", frames[-1])
    assert status == ChargerStatus.OUTPUT_ON
    # output on from the first request (<= 50 ms) to the last status frame (<= 0.5 s before
    # the end): between 0.45 and 1 s of 1 Ah/s, in 1/8 Ah
    assert 3 <= returned <= 8
    assert len(frames) == 2  # at 0 s and 0.5 s
