"""The battery node's command security: who may remap it, and the charger's heartbeat."""

from __future__ import annotations

import io
import time

import canopen
import pytest
from adapter_support import batch, snapshot
from canopen_support import unique_channel, virtual_networks

from controller.canopen_node import BatteryNode, BatteryNodeConfig
from controller.canopen_node.eds import export_eds
from controller.canopen_node.stage import CHARGER_LOST, SDO_WRITE, BatteryNodeStage
from controller.frames import FrameBatch
from controller.stage import StageInputs
from slaves.cia419_charger import ChargerConfig, Cia419Charger

NODE_ID = 0x05
CHARGER = 0x10
STEP = 0.01
READ_ONLY, DEVICE_STATE = 0x06010002, 0x08000022
# moves the temperature TPDO onto the charge request's COB-ID (0x380 + 5)
REMAP = (((0x1802, 5), 0), ((0x1800, 1), 0x385), ((0x1800, 5), 100))


def _pair(request, config: BatteryNodeConfig):
    nets = virtual_networks(unique_channel(request.node.name))
    net_a, net_b = nets.__enter__()
    request.addfinalizer(lambda: nets.__exit__(None, None, None))
    node = BatteryNode(net_a, config)
    request.addfinalizer(node.close)
    text = io.StringIO()
    export_eds(node.od, text)
    eds = io.StringIO(text.getvalue())
    eds.name = "battery.eds"
    remote = net_b.add_node(NODE_ID, canopen.import_od(eds, NODE_ID))
    remote.sdo.RESPONSE_TIMEOUT = 1.0
    return node, remote


def _write(remote, key: tuple[int, int], value: int) -> int:
    """0 when written, else the abort code."""
    try:
        remote.sdo[key[0]][key[1]].raw = value
    except canopen.SdoAbortedError as err:
        return err.code
    return 0


@pytest.mark.parametrize("allowed", [False, True])
def test_the_remap_is_refused_while_operational(request, allowed: bool) -> None:
    config = BatteryNodeConfig(node_id=NODE_ID, allow_remote_config=allowed)
    node, remote = _pair(request, config)
    node.update(snapshot(ccl=30.0), 0.0)
    assert node.node.nmt.state == "OPERATIONAL"
    before = {key: node.read(key) for key, _ in REMAP}
    codes = [_write(remote, key, value) for key, value in REMAP]
    assert codes == [DEVICE_STATE if allowed else READ_ONLY] * len(REMAP)
    assert {key: node.read(key) for key, _ in REMAP} == before
    attempts = node.take_writes()
    assert len(attempts) == len(REMAP) and all("refused" in a for a in attempts)
    assert "0x1800:01 = 901 refused" in attempts[1]


def test_the_remap_is_taken_only_in_pre_operational_when_allowed(request) -> None:
    config = BatteryNodeConfig(node_id=NODE_ID, allow_remote_config=True)
    node, remote = _pair(request, config)
    node.update(snapshot(ccl=30.0), 0.0)
    node.node.nmt.state = "PRE-OPERATIONAL"
    assert [_write(remote, key, value) for key, value in REMAP] == [0, 0, 0]
    assert node.read((0x1800, 1)) == 0x385
    assert all("written" in a for a in node.take_writes())
    parameters = _write(remote, (0x2100, 1), 50)  # the manufacturer area is not affected
    assert parameters == 0


def test_every_sdo_write_is_an_event_of_the_stage() -> None:
    stage = BatteryNodeStage(BatteryNodeConfig(node_id=NODE_ID))
    state = stage.initial_state()
    request = bytes([0x23, 0x00, 0x18, 0x01, 0x85, 0x03, 0x00, 0x00])  # 1800:01 = 0x385
    frames = batch([(0x600 + NODE_ID, request, 0.1)])
    state, out = stage.step(state, StageInputs(snapshot(ccl=30.0), frames), 0.1)
    [event] = [e for e in out.events if e.diagnosis == SDO_WRITE]
    assert "0x1800:01 = 901 refused" in event.detail
    [answer] = [f for f in out.frames if f.arbitration_id == 0x580 + NODE_ID]
    assert answer.data[0] == 0x80  # SDO abort


class Rig:
    """Battery node consuming the charger's heartbeat, the simulated charger, one bus."""

    def __init__(self, request) -> None:
        config = BatteryNodeConfig(
            node_id=NODE_ID, heartbeat_ms=100, tpdo3_ms=50,
            charger_node_id=CHARGER, charger_heartbeat_ms=300,
        )  # fmt: skip
        nets = virtual_networks(unique_channel(request.node.name))
        net_a, net_b = nets.__enter__()
        request.addfinalizer(lambda: nets.__exit__(None, None, None))
        self.battery = BatteryNode(net_a, config)
        charger = ChargerConfig(node_id=CHARGER, battery_node_id=NODE_ID, heartbeat_ms=100)
        self.charger = Cia419Charger(net_b, charger)
        request.addfinalizer(self.charger.close)
        request.addfinalizer(self.battery.close)
        self.t = 0.0

    def run(self, seconds: float) -> list[tuple[float, int, float]]:
        """(time, 6070h raw, charger output) per step, 20 A allowed."""
        out = []
        for _ in range(round(seconds / STEP)):
            self.battery.update(snapshot(ccl=20.0), self.t)
            time.sleep(0.002)
            current = self.charger.step(self.t)
            out.append((self.t, self.battery.read((0x6070, 0)), current))
            self.t += STEP
        return out


def test_the_charger_heartbeat_loss_stops_the_charge(request) -> None:
    rig = Rig(request)
    trace = rig.run(0.8)
    assert trace[-1][1] == 20 * 16 and trace[-1][2] == 20.0 and not rig.battery.charger_lost
    rig.charger.heartbeat_silent = True
    silent_from = rig.t
    trace = rig.run(0.8)
    stopped = next(t for t, raw, _ in trace if raw == 0)
    # the last heartbeat came within one period before; lost after 300 ms, seen next update
    assert 0.3 - 0.1 <= stopped - silent_from <= 0.3 + 2 * STEP + 0.01
    assert rig.battery.charger_lost and trace[-1][2] == 0.0  # the charger follows the request
    rig.charger.heartbeat_silent = False
    assert rig.run(0.8)[-1][1] == 20 * 16  # charging resumes with the heartbeat


def test_no_charge_request_before_the_charger_is_heard() -> None:
    stage = BatteryNodeStage(
        BatteryNodeConfig(node_id=NODE_ID, charger_node_id=CHARGER, charger_heartbeat_ms=300)
    )
    assert 0x700 + CHARGER in stage.traffic.consumes
    state = stage.initial_state()
    state, out = stage.step(state, StageInputs(snapshot(ccl=30.0), FrameBatch.empty()), 0.0)
    assert state.node.read((0x6070, 0)) == 0
    assert [e.kind for e in out.events if e.diagnosis == CHARGER_LOST] == ["set"]
    heartbeat = batch([(0x700 + CHARGER, bytes([5]), 0.1)])
    state, out = stage.step(state, StageInputs(snapshot(ccl=30.0), heartbeat), 0.1)
    assert state.node.read((0x6070, 0)) == 30 * 16
    assert [e.kind for e in out.events if e.diagnosis == CHARGER_LOST] == ["cleared"]
