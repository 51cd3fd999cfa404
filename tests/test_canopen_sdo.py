"""Battery node SDO server: live values, access rights and parameters, over a virtual bus.

The client is a `canopen.RemoteNode` on a second network on the same virtual channel; its
dictionary is loaded from the node's exported EDS, as a service tool would.
"""

from __future__ import annotations

import io
import math

import canopen
import pytest
from adapter_support import snapshot
from canopen_support import unique_channel, virtual_networks

from controller.canopen_node import BatteryNode, BatteryNodeConfig, export_eds

NODE_ID = 0x21


@pytest.fixture
def pair(request):
    """(battery node, remote client) on one virtual channel."""
    config = BatteryNodeConfig(node_id=NODE_ID, rated_charge_current_a=40.0)
    with virtual_networks(unique_channel(request.node.name)) as (net_a, net_b):
        node = BatteryNode(net_a, config)
        text = io.StringIO()
        export_eds(node.od, text)
        eds = io.StringIO(text.getvalue())
        eds.name = "battery.eds"
        remote = net_b.add_node(NODE_ID, canopen.import_od(eds, NODE_ID))
        remote.sdo.RESPONSE_TIMEOUT = 1.0
        yield node, remote
        node.close()


def abort_code(action) -> int:
    with pytest.raises(canopen.SdoAbortedError) as err:
        action()
    return err.value.code


def test_live_values_are_unavailable_before_the_first_update(pair):
    _, remote = pair
    assert abort_code(lambda: remote.sdo[0x6070].raw) == 0x060A0023


def test_upload_of_live_values_after_update(pair):
    node, remote = pair
    s = snapshot(pack_voltage=398.7, max_temperature=31.0, soc=72.0, ccl=33.3, bms_state="Charge")
    node.update(s, 0.0)
    assert remote.sdo[0x6060].raw == round(398.7 * 1024)
    assert remote.sdo[0x6010].raw == 31 * 8
    assert remote.sdo[0x6070].raw == math.floor(33.3 * 16)
    assert remote.sdo[0x6081].raw == 72
    assert remote.sdo[0x6020][3].raw == 40 * 16  # rated maximum charge current
    assert remote.sdo[0x6020][4].raw == 16
    assert remote.sdo[0x2000][1].raw == 3190 and remote.sdo[0x2000][2].raw == 3230
    assert remote.sdo[0x2003].raw == 4
    assert remote.sdo[0x1008].raw == "canbms"  # segmented upload
    node.update(snapshot(ccl=10.0), 0.1)
    assert remote.sdo[0x6070].raw == 160
    assert remote.sdo[0x2002][1].raw == 100  # CCL in 0.1 A


@pytest.mark.parametrize(
    ("index", "subindex"),
    [(0x6070, 0), (0x6010, 0), (0x6020, 3), (0x2002, 1), (0x1000, 0), (0x1A02, 1)],
)
def test_write_to_a_read_only_object_is_refused(pair, index, subindex):
    node, remote = pair
    node.update(snapshot(ccl=20.0), 0.0)
    target = remote.sdo[index] if subindex == 0 else remote.sdo[index][subindex]
    before = target.raw
    assert abort_code(lambda: setattr(target, "raw", 1)) == 0x06010002
    assert target.raw == before


def test_written_parameters_take_effect_at_the_next_update(pair):
    node, remote = pair
    node.update(snapshot(ccl=30.0), 0.0)
    assert remote.sdo[0x6070].raw == 30 * 16
    remote.sdo[0x2100][1].raw = 50  # request = CCL x 50 %
    node.update(snapshot(ccl=30.0), 0.1)
    assert remote.sdo[0x6070].raw == 15 * 16
    remote.sdo[0x2100][2].raw = 10 * 16  # cap at 10 A
    node.update(snapshot(ccl=30.0), 0.2)
    assert remote.sdo[0x6070].raw == 10 * 16
    assert abort_code(lambda: setattr(remote.sdo[0x1017], "raw", 250)) == 0x06010002
    assert node.read((0x1017, 0)) == node.config.heartbeat_ms  # kept


def test_out_of_range_parameter_is_refused_and_kept(pair):
    node, remote = pair
    assert abort_code(lambda: setattr(remote.sdo[0x2100][1], "raw", 101)) == 0x06090031
    assert remote.sdo[0x2100][1].raw == 100
    node.update(snapshot(ccl=30.0), 0.0)
    assert remote.sdo[0x6070].raw == 30 * 16


def test_unknown_object_is_reported(pair):
    _, remote = pair
    with pytest.raises(canopen.SdoAbortedError) as err:
        remote.sdo.upload(0x6090, 0)  # water level: not a lithium battery object
    assert err.value.code == 0x06020000
