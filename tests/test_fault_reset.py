"""Fault reset path: a reset clears only what is gone, every request is logged with its source
and answered once, and the CiA 418 node's 2101h is a second source. Virtual time; what the
EMS sees is decoded with cantools from the frames the core sent."""

from __future__ import annotations

from dataclasses import replace

import canopen
from core_support import VEHICLE, Rig
from hypothesis import given
from hypothesis import strategies as st
from reset_support import bms_state, named, run

from canbms.cli import main
from controller.canopen_node import BatteryNodeConfig
from controller.config.loader import default_config
from controller.contactors import ContactorState, Request
from controller.diagnosis import shipped
from controller.fault_reset import ACCEPTED, REFUSED, REQUESTED, ResetState, answer
from controller.persisted import Persisted
from controller.protection import Check
from controller.security.config import SecurityConfig

ERROR, STANDBY = 6, 1  # BMS_State values
CELL = 7


def overvoltage_fault(rig: Rig) -> None:
    rig.run(0.5)
    rig.close(Request.DISCHARGE)
    rig.plant.cell_v[CELL] = 5.0
    rig.plant.force("cells", "status", "ivt")
    rig.run_until(lambda r: r.state.contactors.state is ContactorState.FAULT, 5.0)
    rig.plant.request = Request.STANDBY
    rig.run(0.5)
    assert bms_state(rig) == ERROR


def test_a_reset_with_the_cause_present_is_refused_and_one_after_it_is_gone_accepted() -> None:
    rig = Rig()
    overvoltage_fault(rig)
    rig.plant.reset = True
    events = run(rig, 1.0)
    rig.plant.reset = False
    events += run(rig, 0.3)
    [asked] = named(events, REQUESTED)
    assert "source ems" in asked.detail and "cell_overvoltage" in asked.detail
    [refused] = named(events, REFUSED)
    assert "cell_overvoltage: cause still present" in refused.detail
    assert "cleared: nothing" in refused.detail
    confirm = (rig.config.security.confirm_frames - 1) * 0.1  # the bit repeated, then asked
    assert 1.0 - confirm <= refused.time - asked.time <= 1.2 - confirm  # when the pulse ended
    assert not named(events, ACCEPTED)
    assert bms_state(rig) == ERROR
    assert "cell_overvoltage" in rig.controller.persisted(rig.state).latched

    rig.plant.cell_v[CELL] = 3.7
    rig.plant.force("cells", "status", "ivt")
    clear_ms = rig.config.protection.checks[Check.CELL_OVERVOLTAGE].levels[3].clear_delay_ms
    run(rig, clear_ms / 1000 + 0.2)
    rig.plant.reset = True
    start = rig.now
    events = run(rig, 1.0)
    [accepted] = named(events, ACCEPTED)
    frames = rig.config.security.confirm_frames  # the bit in that many request frames
    assert accepted.time - start <= 0.1 * frames + 2 * rig.cycle
    assert "cleared: cell_overvoltage, error_state" in accepted.detail
    assert bms_state(rig) == STANDBY
    counters = rig.state.life.counters
    assert (counters.resets_accepted, counters.resets_refused) == (1, 1)
    assert rig.controller.persisted(rig.state).latched == ()


def test_a_reset_with_discharge_requested_leaves_the_contactors_in_fault_and_says_why() -> None:
    rig = Rig()
    overvoltage_fault(rig)
    rig.plant.cell_v[CELL] = 3.7
    rig.plant.force("cells", "status", "ivt")
    run(rig, 2.0)
    rig.plant.request = Request.DISCHARGE
    rig.plant.reset = True
    events = run(rig, 1.0)
    rig.plant.reset = False
    events += run(rig, 0.3)
    [refused] = named(events, REFUSED)
    assert "cleared: cell_overvoltage" in refused.detail
    assert "error_state: discharge requested; a reset needs standby" in refused.detail
    assert rig.state.contactors.state is ContactorState.FAULT
    assert bms_state(rig) == ERROR


def test_a_restored_fault_whose_cause_is_present_survives_every_reset_until_it_is_gone() -> None:
    """A reset from the first cycle on: the restored over-voltage must never drop out while
    the cell is still over the limit (it is measured, then judged by protection)."""
    config = default_config()
    rig = Rig(config)
    rig.state = rig.controller.initial_state(0.0, Persisted(("cell_overvoltage",)))
    rig.plant.cell_v[CELL] = 5.0
    rig.plant.reset = True
    for _ in range(300):
        run(rig, rig.cycle)
        assert "cell_overvoltage" in rig.controller.persisted(rig.state).latched, rig.now
    rig.plant.reset = False
    run(rig, 0.2)
    rig.plant.cell_v[CELL] = 3.7
    rig.plant.force("cells", "status", "ivt")
    run(rig, 2.0)
    rig.plant.reset = True
    events = run(rig, 1.0)
    assert named(events, ACCEPTED)
    assert rig.controller.persisted(rig.state).latched == ()


def test_a_restored_contactor_fault_needs_the_contacts_read_open() -> None:
    rig = Rig()
    rig.state = rig.controller.initial_state(0.0, Persisted(("contactor_welded",)))
    rig.plant.silent.add("feedback")
    run(rig, 1.0)
    rig.plant.reset = True
    events = run(rig, 1.0)
    rig.plant.reset = False
    events += run(rig, 0.2)
    [refused] = named(events, REFUSED)
    assert "contactor_welded: restored after a restart; contacts not confirmed open" in (
        refused.detail
    )
    assert "contactor_welded" in rig.controller.persisted(rig.state).latched
    rig.plant.silent.discard("feedback")
    run(rig, 0.2)
    rig.plant.reset = True
    events = run(rig, 0.5)
    assert named(events, ACCEPTED)
    assert rig.controller.persisted(rig.state).latched == ()


def _sdo_download(node_id: int, index: int, subindex: int, value: int) -> tuple[int, int, bytes]:
    """An expedited one-byte SDO download request (CiA 301: command 0x2F)."""
    data = bytes([0x2F, index & 0xFF, index >> 8, subindex, value, 0, 0, 0])
    return (VEHICLE, 0x600 + node_id, data)


def test_the_canopen_node_object_2101h_is_a_reset_source() -> None:
    node = BatteryNodeConfig(node_id=5)
    security = replace(SecurityConfig(), reset_sources=("ems", "canopen"))
    rig = Rig(replace(default_config(), canopen=node, security=security))
    overvoltage_fault(rig)
    rig.plant.cell_v[CELL] = 3.7
    rig.plant.force("cells", "status", "ivt")
    run(rig, 2.0)
    sent_at = rig.now + rig.cycle
    events = run(rig, 0.2, extra=(_sdo_download(5, 0x2101, 0, 1),))
    [asked] = named(events, REQUESTED)
    assert "source canopen" in asked.detail
    assert abs(asked.time - (sent_at + rig.cycle)) < 1e-9  # applied in the next step
    [accepted] = named(events, ACCEPTED)
    assert accepted.time == asked.time
    assert bms_state(rig) == STANDBY
    stage_state = rig.state.stages[0]
    assert stage_state.node.read((0x2101, 0)) == 0  # taken over: reads 0 again


def test_a_2101h_value_above_one_is_refused_by_the_sdo_server() -> None:
    rig = Rig(replace(default_config(), canopen=BatteryNodeConfig(node_id=5)))
    run(rig, 0.5)
    events = run(rig, 0.1, extra=(_sdo_download(5, 0x2101, 0, 2),))
    assert not named(events, REQUESTED)


sets = st.frozensets(st.sampled_from(("cell_overvoltage", "contactor_welded", "error_state")))


@given(st.lists(st.tuples(st.booleans(), sets), min_size=1, max_size=40))
def test_every_request_is_logged_once_and_answered_once(steps) -> None:
    state, latched, catalogue = ResetState(), frozenset(), shipped()
    asked = answered = 0
    for t, (requesting, latched_now) in enumerate(steps):
        who = frozenset(("ems",)) if requesting else frozenset()
        out = answer(state, who, latched, latched_now, dict, frozenset(), float(t), catalogue)
        asked += len(named(list(out.events), REQUESTED))
        answered += out.accepted + out.refused
        assert out.accepted + out.refused == len(
            [e for e in out.events if e.diagnosis in (ACCEPTED, REFUSED)]
        )
        if out.accepted:
            assert not latched_now
        state, latched = out.state, latched_now
    assert answered in (asked, asked - 1)
    assert (state.open is None) == (answered == asked)


def test_the_eds_export_declares_2101h_writable_with_its_range(tmp_path) -> None:
    out = tmp_path / "battery.eds"
    assert main(["eds", "-o", str(out), "--node-id", "5"]) == 0
    entry = canopen.import_od(str(out), 5)[0x2101]
    assert (entry.access_type, entry.min, entry.max, entry.default) == ("rw", 0, 1, 0)
