"""A step in two halves: the contactor decision (`judge`) and the rest (`finish`).

The shell sends ``urgent`` before ``finish`` runs, so it must hold the ContactorCommand
exactly when the commands changed, and ``finish`` must return it once, at the head of the
step's frames, as the whole step always did.
"""

from __future__ import annotations

import cantools
from core_support import Rig, to_batch

from controller.contactors import ContactorState, Request
from dbc import path as dbc_path

COMMAND = cantools.database.load_file(str(dbc_path("canbms_master.dbc"))).get_message_by_name(
    "ContactorCommand"
)


def _split_step(rig: Rig):  # noqa: ANN202
    """One step of ``rig`` run as its two halves; (judged, result)."""
    rig.k += 1
    rig.now = round(rig.k * rig.cycle, 9)
    rig.frames_in = rig.plant.frames(rig.k, rig.now, rig.cycle)
    judged = rig.controller.judge(rig.state, to_batch(rig.frames_in, rig.now), rig.now)
    result = rig.controller.finish(judged)
    rig.state = result.state
    rig.deliver(result.frames)
    return judged, result


def test_urgent_holds_the_command_exactly_when_it_changed_and_leads_the_frames() -> None:
    rig = Rig()
    rig.plant.request = Request.DISCHARGE
    changes = 0
    while rig.state.contactors.state is not ContactorState.CLOSED_DISCHARGE:
        before = rig.state.contactors.commands
        judged, result = _split_step(rig)
        changed = result.state.contactors.commands != before
        assert bool(judged.urgent) == changed
        commands = [f for f in result.frames if f.arbitration_id == COMMAND.frame_id]
        if changed:
            changes += 1
            assert result.frames[0] is judged.urgent[0] and commands == [judged.urgent[0]]
            sig = COMMAND.decode(judged.urgent[0].data)
            now = result.state.contactors.commands
            assert (sig["ContactorCmd_MinusClose"], sig["ContactorCmd_PlusClose"]) == (
                int(now.minus),
                int(now.plus),
            )
        assert rig.now < 10.0, "the pack does not close"
    assert changes >= 3, "minus, precharge, plus, then precharge off"
