"""Contactor sequence scenarios against a simulated HV plant at a 10 ms cycle."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
from contactor_support import Rig

from controller.contactors import (
    CLOSED,
    OPEN,
    PRECHARGING,
    Cause,
    Contactor,
    ContactorConfig,
    ContactorFault,
    ContactorInputs,
    ContactorMachine,
    ContactorState,
    Feedback,
    Phase,
    Request,
    parse_contactors,
)
from controller.errors import ConfigError

CFG = ContactorConfig()


def causes(rig: Rig) -> list[Cause]:
    return [e.cause for e in rig.events]


def first_time(rig: Rig, cause: Cause) -> float:
    return next(e.time for e in rig.events if e.cause is cause)


def test_precharge_closes_plus_only_after_the_link_matches():
    rig = Rig()
    t_closed = rig.close(Request.DISCHARGE)
    assert rig.status.state is ContactorState.CLOSED_DISCHARGE
    assert rig.commands == CLOSED
    plus_rows = [row for row in rig.trace if row[1].plus]
    t_plus, _, gap, current = plus_rows[0]
    assert abs(gap) < CFG.precharge_voltage_margin_v
    assert abs(current) < CFG.precharge_end_current_a
    # every earlier cycle had minus + precharge only, and a gap still too large to close
    earlier = [row for row in rig.trace if row[0] < t_plus and any(row[1])]
    assert earlier and all(row[1] == PRECHARGING for row in earlier)
    # RC of 0.15 s from 350 V: below 1 V after ~0.9 s, plus then closes within the aux delay
    assert 0.8 < t_plus < 1.1
    assert t_plus < t_closed <= t_plus + 0.05
    assert causes(rig) == [Cause.REQUEST, Cause.PRECHARGE_PASSED, Cause.CLOSED]


def test_precharge_timeout_retries_then_faults():
    rig = Rig(ContactorConfig(retry_pause_s=1.0))
    rig.plant.precharge_tau = 100.0  # link never comes up (resistor open, load shorted)
    rig.request = Request.CHARGE
    t = rig.run_until(lambda r: r.status.state is ContactorState.FAULT)
    got = causes(rig)
    assert got.count(Cause.PRECHARGE_TIMEOUT) == 3
    assert got.count(Cause.RETRY) == 3
    assert got[-2:] == [Cause.PRECHARGE_FAILED, Cause.BELOW_BREAK_CURRENT]  # latch, then open
    # 4 attempts of 2 s and 3 pauses of 1 s, first step at 10 ms
    assert t == pytest.approx(4 * 2.0 + 3 * 1.0 + 0.01, abs=0.035)
    assert rig.commands == OPEN
    assert ContactorFault(Cause.PRECHARGE_FAILED, None) in rig.status.faults
    assert not any(row[1].plus for row in rig.trace)


def test_retry_succeeds_after_a_timeout():
    rig = Rig(ContactorConfig(retry_pause_s=0.5))
    rig.plant.precharge_tau = 100.0
    rig.request = Request.DISCHARGE
    rig.run_until(lambda r: r.status.phase is Phase.RETRY_PAUSE)
    rig.plant.precharge_tau = 0.1
    rig.run_until(lambda r: r.status.current_allowed, limit=5.0)
    assert causes(rig).count(Cause.RETRY) == 1
    assert rig.status.attempt == 0


def test_invalid_voltage_fails_the_attempt_at_once():
    rig = Rig()
    rig.request = Request.DISCHARGE
    rig.run(0.2)
    rig.voltage_valid = False
    events = rig.tick()
    assert [e.cause for e in events] == [Cause.PRECHARGE_INVALID_VOLTAGE]
    assert rig.commands == OPEN and rig.status.phase is Phase.RETRY_PAUSE


def test_lockout_holds_a_new_close_after_an_open():
    rig = Rig()
    rig.close()
    rig.request = Request.STANDBY
    t_open = rig.run_until(lambda r: r.commands == OPEN)
    rig.request = Request.DISCHARGE
    t_start = rig.run_until(lambda r: r.status.state is ContactorState.PRECHARGE, limit=20)
    assert t_start == pytest.approx(t_open + CFG.lockout_s, abs=0.015)
    assert t_start >= t_open + CFG.lockout_s


def test_standby_at_high_current_waits_for_the_current_to_fall():
    rig = Rig()
    rig.close()
    rig.plant.load_current = -450.0  # discharging above the 200 A break current
    rig.request = Request.STANDBY
    rig.run(2.0)
    assert rig.status.state is ContactorState.OPENING and rig.status.phase is Phase.DRAINING
    assert rig.commands == CLOSED
    assert not rig.status.current_allowed  # limits are zero: the load ramps down
    rig.plant.load_current = -150.0
    rig.tick()
    assert rig.commands == OPEN
    rig.run_until(lambda r: r.status.state is ContactorState.STANDBY, limit=0.5)


def test_open_cancelled_when_the_request_returns_while_draining():
    rig = Rig()
    rig.close(Request.CHARGE)
    rig.plant.load_current = 300.0
    rig.request = Request.STANDBY
    rig.run(0.5)
    rig.request = Request.DISCHARGE
    rig.tick()
    assert rig.status.state is ContactorState.CLOSED_DISCHARGE
    assert rig.events[-1].cause is Cause.OPEN_CANCELLED
    assert rig.commands == CLOSED


def test_mode_change_while_closed_keeps_the_contactors_closed():
    rig = Rig()
    rig.close(Request.DISCHARGE)
    rig.request = Request.CHARGE
    rig.tick()
    assert rig.status.state is ContactorState.CLOSED_CHARGE
    assert rig.commands == CLOSED


def test_fault_above_break_current_waits_the_fuse_delay():
    rig = Rig()
    rig.close()
    rig.plant.load_current = -2000.0
    rig.fault_open = True
    rig.tick()
    t_fault = rig.now
    assert rig.status.state is ContactorState.FAULT
    assert rig.events[-1].cause is Cause.PROTECTION_FAULT
    t_open = rig.run_until(lambda r: r.commands == OPEN, limit=5)
    assert t_open == pytest.approx(t_fault + CFG.fuse_delay_s, abs=1e-6)
    assert rig.events[-1].cause is Cause.FUSE_DELAY_EXPIRED


def test_fault_below_break_current_opens_at_once():
    rig = Rig()
    rig.close()
    rig.plant.load_current = -150.0
    rig.fault_open = True
    events = rig.tick()
    assert [e.cause for e in events] == [Cause.PROTECTION_FAULT, Cause.BELOW_BREAK_CURRENT]
    assert rig.commands == OPEN


def test_fault_with_unknown_current_waits_the_fuse_delay():
    rig = Rig()
    rig.close()
    rig.current_valid = False
    rig.fault_open = True
    rig.tick()
    t_fault = rig.now
    t_open = rig.run_until(lambda r: r.commands == OPEN, limit=5)
    assert t_open == pytest.approx(t_fault + CFG.fuse_delay_s, abs=1e-6)


def test_welded_plus_contactor_is_detected_after_opening():
    rig = Rig()
    rig.close()
    rig.plant.welded.add(Contactor.PLUS)
    rig.request = Request.STANDBY
    t_open = rig.run_until(lambda r: r.commands == OPEN)
    t_fault = rig.run_until(lambda r: r.status.state is ContactorState.FAULT, limit=2)
    assert ContactorFault(Cause.WELDED, Contactor.PLUS) in rig.status.faults
    allowance = CFG.opening_time_s + CFG.feedback_timeout_s
    assert allowance < t_fault - t_open <= allowance + 0.015


def test_contactor_that_fails_to_close_faults_within_the_feedback_timeout():
    rig = Rig()
    rig.plant.stuck_open.add(Contactor.MINUS)
    rig.request = Request.DISCHARGE
    t_fault = rig.run_until(lambda r: r.status.state is ContactorState.FAULT, limit=2)
    assert rig.status.faults[0] == ContactorFault(Cause.FAILED_TO_CLOSE, Contactor.MINUS)
    # commanded in the step at 0.01 s, sent when it ended: the allowance runs from 0.02 s
    assert CFG.feedback_timeout_s < t_fault - 0.02 <= CFG.feedback_timeout_s + 0.015
    assert rig.commands == OPEN


def test_a_stalled_cycle_after_a_close_command_is_no_failed_contactor():
    """The step after a close command comes 150 ms late (a CPU stall): the command left at
    the end of the slow cycle, so the feedback still reading open then is no fault yet."""
    rig = Rig()
    rig.request = Request.DISCHARGE
    rig.tick()
    assert rig.commands != OPEN, "close command decided"
    rig.plant.stuck_open.add(Contactor.MINUS)  # never closes: judged only after the allowance
    rig.dt = 0.15
    rig.tick()
    assert rig.status.state is not ContactorState.FAULT, "a slow cycle is no failed contactor"
    rig.dt = 0.01
    t_fault = rig.run_until(lambda r: r.status.state is ContactorState.FAULT, limit=1)
    assert ContactorFault(Cause.FAILED_TO_CLOSE, Contactor.MINUS) in rig.status.faults
    assert t_fault - 0.16 > CFG.feedback_timeout_s, "timed from the step after the stall"


def test_feedback_lost_while_closed_is_a_fault():
    rig = Rig()
    rig.close()
    rig.plant.silent = True
    t0 = rig.now
    t_fault = rig.run_until(lambda r: r.status.state is ContactorState.FAULT, limit=2)
    assert t_fault - t0 == pytest.approx(CFG.feedback_timeout_s, abs=0.015)
    assert {f.cause for f in rig.status.faults} == {Cause.FEEDBACK_LOST}


def test_unknown_feedback_in_standby_holds_the_close_without_a_fault():
    rig = Rig()
    rig.plant.silent = True
    rig.request = Request.DISCHARGE
    rig.run(1.0)
    assert rig.status.state is ContactorState.STANDBY and rig.commands == OPEN
    rig.plant.silent = False
    rig.close()


def test_fault_is_left_only_on_reset_with_cause_gone_and_standby_requested():
    rig = Rig()
    rig.close()
    rig.fault_open = True
    rig.run(0.2)
    rig.reset = True
    rig.run(0.2)  # cause still present
    assert rig.status.state is ContactorState.FAULT
    rig.fault_open = False
    rig.run(0.2)  # discharge still requested
    assert rig.status.state is ContactorState.FAULT
    rig.reset = False
    rig.request = Request.STANDBY
    rig.run(0.2)  # no reset request
    assert rig.status.state is ContactorState.FAULT
    rig.reset = True
    rig.tick()
    assert rig.status.state is ContactorState.STANDBY
    assert rig.events[-1].cause is Cause.RESET and rig.status.faults == ()


def test_welded_contactor_blocks_the_reset():
    rig = Rig()
    rig.close()
    rig.plant.welded.add(Contactor.MINUS)
    rig.request = Request.STANDBY
    rig.run_until(lambda r: r.status.state is ContactorState.FAULT, limit=2)
    rig.reset = True
    rig.run(1.0)
    assert rig.status.state is ContactorState.FAULT


def test_events_carry_time_and_both_states():
    rig = Rig()
    rig.close()
    e = rig.events[0]
    assert (e.before, e.after, e.phase) == (
        ContactorState.STANDBY,
        ContactorState.PRECHARGE,
        Phase.CONNECTING,
    )
    assert e.time == pytest.approx(0.01)
    assert "STANDBY -> PRECHARGE" in str(e)


def test_config_defaults_and_errors_name_the_key():
    assert parse_contactors({}) == ContactorConfig()
    cfg = parse_contactors({"precharge_retries": 1, "break_current_a": 80})
    assert cfg.precharge_retries == 1 and cfg.break_current_a == 80.0
    with pytest.raises(ConfigError, match=r"contactors\.lockout"):
        parse_contactors({"lockout": 5})
    with pytest.raises(ConfigError, match=r"contactors\.fuse_delay_s"):
        parse_contactors({"fuse_delay_s": -1})
    with pytest.raises(ConfigError, match=r"contactors\.precharge_retries"):
        parse_contactors({"precharge_retries": 1.5})
    assert math.isclose(cfg.reaction_time_s, cfg.fuse_delay_s + cfg.opening_time_s)


def test_feedback_decoded_as_integers_is_understood():
    m = ContactorMachine(CFG)
    s = m.initial_status(0.0)
    closed = ContactorInputs(
        Request.DISCHARGE,
        pack_voltage=350.0,
        pack_voltage_valid=True,
        link_voltage=349.9,
        link_voltage_valid=True,
        current=0.0,
        current_valid=True,
        feedback=Feedback(0, 0, 0),
    )
    s, cmd, _ = m.step(s, closed, 0.01)
    assert cmd == PRECHARGING
    s, cmd, _ = m.step(s, replace(closed, feedback=Feedback(1, np.bool_(True), 0)), 0.02)
    s, cmd, _ = m.step(s, replace(closed, feedback=Feedback(1, 1, np.int64(1))), 0.03)
    assert s.state is ContactorState.CLOSED_DISCHARGE and cmd == CLOSED
    for k in range(4, 40):
        s, cmd, _ = m.step(s, replace(closed, feedback=Feedback(1, 0, 1)), k / 100)
    assert s.state is ContactorState.CLOSED_DISCHARGE and s.faults == ()
