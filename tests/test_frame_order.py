"""The contactor command leads every cycle's frames: the shell sends in order, so the coil
command never waits behind status, protocol or CANopen frames of the same cycle."""

from __future__ import annotations

from dataclasses import replace

import cantools
from core_support import Rig

from controller.adapters.canbms_inverter import CanBmsInverter, InverterConfig
from controller.canopen_node import BatteryNodeConfig
from controller.config.loader import default_config
from controller.contactors import ContactorState, Request
from dbc import path as dbc_path

MASTER = cantools.database.load_file(str(dbc_path("canbms_master.dbc")), strict=True)
COMMAND = MASTER.get_message_by_name("ContactorCommand")


def test_contactor_command_is_first_in_every_cycle_through_close_and_fault() -> None:
    config = replace(
        default_config(),
        adapters=(CanBmsInverter(InverterConfig(variant="victron", keepalive=False)),),
        canopen=BatteryNodeConfig(node_id=5),
    )
    rig = Rig(config)
    cycles = with_command = 0
    changes = []

    def check() -> None:
        nonlocal cycles, with_command
        frames = rig.result.frames
        cycles += 1
        ids = [(f.bus, f.arbitration_id) for f in frames]
        if ("internal", COMMAND.frame_id) in ids:
            with_command += 1
            assert ids.index(("internal", COMMAND.frame_id)) == 0, ids
            assert ids.count(("internal", COMMAND.frame_id)) == 1
            decoded = COMMAND.decode(frames[0].data)
            names = ("Minus", "Precharge", "Plus")
            changes.append(tuple(decoded[f"ContactorCmd_{c}Close"] for c in names))

    rig.plant.request = Request.DISCHARGE
    while rig.state.contactors.state is not ContactorState.CLOSED_DISCHARGE:
        rig.step()
        check()
        assert rig.now < 10.0
    rig.plant.demand = -30.0
    rig.plant.cell_v[7] = 5.0
    rig.plant.force("cells", "status", "ivt")
    for _ in range(200):
        rig.step()
        check()
    assert rig.state.contactors.state is ContactorState.FAULT
    assert with_command >= cycles // 2  # 20 ms period at a 10 ms cycle
    assert (1, 1, 0) in changes and (1, 0, 1) in changes and changes[-1] == (0, 0, 0)
