"""The closed-loop benchmark case really times the longest healthy path of a cycle.

Its steps must run with the contactors closed, a charging current flowing and cells bleeding,
with no fault: what the controller says on the vehicle bus (decoded by cantools) and the
balancing commands it sends to the slaves show it.
"""

from __future__ import annotations

import cantools
import numpy as np

import dbc
from dbc.slave_protocol import build_database
from dbc.topology import Topology
from hil.benchmarks.charging import CHARGE_CURRENT_A, ChargingTraffic
from hil.benchmarks.core_cycle import CLOSED_PACK, controller_for, measure_closed

MASTER = cantools.database.load_file(dbc.path("canbms_master.dbc"))


def test_the_closed_case_reports_steps_taken_closed_and_balancing() -> None:
    _, topology = CLOSED_PACK
    result = measure_closed(topology, 20)
    assert result.state == "CLOSED_CHARGE"
    assert result.fault_free


def test_the_controller_on_charging_traffic_says_charge_and_bleeds_the_high_cells() -> None:
    topology = Topology(8, 12, 4, False)
    controller = controller_for(topology)
    slaves = build_database(topology)
    traffic = ChargingTraffic(topology)
    state = controller.initial_state(0.0)
    decoded: dict[str, dict] = {}
    masks: dict[str, int] = {}
    for _ in range(300):
        result = controller.step(state, traffic.next_batch(), traffic.now)
        state = result.state
        traffic.follow(result.frames)
        for frame in result.frames:
            if frame.bus == "vehicle":
                message = MASTER.get_message_by_frame_id(frame.arbitration_id)
                decoded[message.name] = message.decode(frame.data, decode_choices=False)
            elif frame.arbitration_id != MASTER.get_message_by_name("ContactorCommand").frame_id:
                message = slaves.get_message_by_frame_id(frame.arbitration_id)
                signal = next(s for s in message.signals if s.name.endswith("_BalanceMask"))
                masks[message.name] = message.decode(frame.data)[signal.name]
    assert decoded["BMS_Status"]["BMS_State"] == 4  # Charge
    assert decoded["BMS_Status"]["BMS_ActiveFaults"] == 0
    assert abs(decoded["BMS_PackValues"]["BMS_PackCurrent"] - CHARGE_CURRENT_A) < 0.5
    assert decoded["BMS_Limits"]["BMS_ChargeCurrentLimit"] > 0
    bleeding = np.array([bool(masks[f"BalancingCommand_M{m:02d}"]) for m in range(8)])
    assert bleeding.any()
    assert state.bleed.any() and not state.bleed.all()  # the lowest cell never bleeds
