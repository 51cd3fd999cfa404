"""Battery node transmissions: boot-up, heartbeat and TPDOs, their timing and contents.

Frames are decoded here with struct from the documented layouts, not through canopen.
"""

from __future__ import annotations

import struct
import time
from dataclasses import replace

import can
import numpy as np
import pytest
from adapter_support import snapshot
from canopen_support import RecordingNetwork, unique_channel, virtual_networks

from controller.canopen_node import BatteryNode, BatteryNodeConfig

NODE_ID = 0x0A
HEARTBEAT, TPDO1, TPDO2, TPDO3 = (0x700, 0x180, 0x280, 0x380)
CONFIG = BatteryNodeConfig(node_id=NODE_ID, heartbeat_ms=100, tpdo1_ms=50, tpdo2_ms=0, tpdo3_ms=20)


def run(node: BatteryNode, net: RecordingNetwork, start: float, stop: float, step=0.005, **kw):
    """Drive ``node`` on a 5 ms grid in virtual time over [start, stop)."""
    for k in range(round((stop - start) / step)):
        net.clock = start + k * step
        node.update(snapshot(**kw), net.clock)


@pytest.fixture
def recorded():
    net = RecordingNetwork()
    node = BatteryNode(net, CONFIG)
    yield node, net
    node.close()


def times(net: RecordingNetwork, base: int) -> np.ndarray:
    return np.array([t for t, _ in net.frames(base + NODE_ID)])


def test_boot_up_then_heartbeat_at_its_period(recorded):
    node, net = recorded
    run(node, net, 0.0, 1.0)
    frames = net.frames(HEARTBEAT + NODE_ID)
    assert frames[0] == (0.0, b"\x00")  # boot-up
    assert [data for _, data in frames[1:]] == [b"\x05"] * 9  # OPERATIONAL (self-start)
    assert np.allclose(np.diff([t for t, _ in frames]), 0.1)


def test_tpdo_periods_and_disabled_tpdo(recorded):
    node, net = recorded
    run(node, net, 0.0, 1.0)
    assert np.allclose(np.diff(times(net, TPDO1)), 0.05) and len(times(net, TPDO1)) == 20
    assert np.allclose(np.diff(times(net, TPDO3)), 0.02) and len(times(net, TPDO3)) == 50
    assert len(times(net, TPDO2)) == 0  # event timer 0: no timer-driven transmission


def test_tpdo_contents(recorded):
    node, net = recorded
    run(node, net, 0.0, 0.05, ccl=12.5, soc=81.0, max_temperature=-5.5, fault_level=0)
    (_, tpdo1), *_ = net.frames(TPDO1 + NODE_ID)
    temperature, status = struct.unpack("<hB", tpdo1)
    assert len(tpdo1) == 3 and temperature == -44 and status == 0b111
    (_, tpdo3), *_ = net.frames(TPDO3 + NODE_ID)
    request, soc = struct.unpack("<HB", tpdo3)
    assert len(tpdo3) == 3 and request == 200 and soc == 81
    # a new snapshot is in the very next transmission
    net.sent.clear()
    run(node, net, 0.05, 0.07, ccl=0.0, charge_allowed=False)
    (_, tpdo3), *_ = net.frames(TPDO3 + NODE_ID)
    assert struct.unpack("<HB", tpdo3) == (0, 60)


def test_nmt_stop_silences_tpdos_but_not_the_heartbeat(recorded):
    node, net = recorded
    run(node, net, 0.0, 0.2)
    net.notify(0x000, bytearray([0x02, NODE_ID]), 0.0)  # NMT stop
    net.sent.clear()
    run(node, net, 0.2, 0.5)
    assert not times(net, TPDO1).size and not times(net, TPDO3).size
    assert {data for _, data in net.frames(HEARTBEAT + NODE_ID)} == {b"\x04"}
    net.notify(0x000, bytearray([0x01, 0]), 0.0)  # NMT start, all nodes
    run(node, net, 0.5, 0.6)
    assert times(net, TPDO3).size == 5


def test_nmt_reset_boots_again(recorded):
    node, net = recorded
    run(node, net, 0.0, 0.2)
    net.notify(0x000, bytearray([0x81, NODE_ID]), 0.0)  # reset node
    net.sent.clear()
    run(node, net, 0.2, 0.25)
    assert net.frames(HEARTBEAT + NODE_ID)[0] == (0.2, b"\x00")


def test_sdo_written_event_timer_and_cob_id_apply_at_the_next_update():
    net = RecordingNetwork()
    node = BatteryNode(net, replace(CONFIG, allow_remote_config=True))
    run(node, net, 0.0, 0.1)
    node.node.nmt.state = "PRE-OPERATIONAL"  # communication objects: only here
    # as the SDO server does on a download: access check, callbacks, store
    node.node.set_data(0x1802, 5, struct.pack("<H", 40), check_writable=True)
    node.node.set_data(0x1800, 1, struct.pack("<I", 1 << 31 | 0x180 + NODE_ID), check_writable=True)
    node.node.nmt.state = "OPERATIONAL"
    net.sent.clear()
    run(node, net, 0.1, 0.5)
    assert np.allclose(np.diff(times(net, TPDO3)), 0.04)
    assert not times(net, TPDO1).size  # bit 31: PDO not valid
    node.close()


def test_stalled_loop_sends_nothing(recorded):
    node, net = recorded
    run(node, net, 0.0, 0.1)
    count = len(net.sent)
    time.sleep(0.05)  # nothing runs between updates: no bus thread keeps the heartbeat alive
    assert len(net.sent) == count


def test_heartbeat_and_tpdo_timestamps_on_a_virtual_bus(request):
    config = BatteryNodeConfig(node_id=NODE_ID, heartbeat_ms=50, tpdo1_ms=0, tpdo3_ms=20)
    channel = unique_channel(request.node.name)
    with virtual_networks(channel, count=1) as (net,):
        node = BatteryNode(net, config)
        with can.Bus(interface="virtual", channel=channel) as listener:
            start = time.monotonic()
            while (now := time.monotonic()) - start < 0.6:
                node.update(snapshot(ccl=7.0), now)
                time.sleep(0.001)
            node.close()
            received = []
            while (msg := listener.recv(timeout=0.05)) is not None:
                received.append(msg)
    hb = np.array([m.timestamp for m in received if m.arbitration_id == HEARTBEAT + NODE_ID])
    tpdo3 = [m for m in received if m.arbitration_id == TPDO3 + NODE_ID]
    # the schedule keeps the average exact; single intervals carry the loop's jitter
    assert 10 <= len(hb) <= 13 and abs(np.mean(np.diff(hb[1:])) - 0.05) < 0.005
    t3 = np.array([m.timestamp for m in tpdo3])
    assert 25 <= len(t3) <= 31 and abs(np.median(np.diff(t3)) - 0.02) < 0.003
    assert all(struct.unpack("<HB", bytes(m.data)) == (7 * 16, 60) for m in tpdo3)
