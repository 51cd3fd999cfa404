"""Hypothesis state machine: random requests, faults, resets, plant faults and time steps."""

from __future__ import annotations

from contactor_support import Rig
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from controller.contactors import (
    CLOSED,
    OPEN,
    Cause,
    Commands,
    ContactorConfig,
    ContactorState,
    Request,
)

CFG = ContactorConfig(retry_pause_s=0.3, lockout_s=0.5, precharge_timeout_s=1.5)


def conducting(c: Commands) -> bool:
    """The main circuit is commanded closed (minus with plus or with the precharge path)."""
    return c.minus and (c.plus or c.precharge)


class ContactorSequence(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.rig = Rig(CFG)
        self.passed = False  # a precharge passed since everything was last commanded open
        self.latched_at: float | None = None  # test-side view of the fault latch

    def _step(self, dt: float) -> None:
        rig = self.rig
        rig.dt = dt
        before = rig.commands
        events = rig.tick()
        current, current_valid = rig.trace[-1][3], rig.current_valid  # as the machine saw them
        for e in events:
            if e.cause is Cause.PRECHARGE_PASSED:
                gap = rig.trace[-1][2]
                assert rig.voltage_valid and abs(gap) < CFG.precharge_voltage_margin_v
                self.passed = True
            if e.after is ContactorState.FAULT and self.latched_at is None:
                self.latched_at = e.time
            if e.cause is Cause.RESET:
                self.latched_at = None
        if self.rig.fault_open and self.latched_at is None:
            raise AssertionError("a protection fault did not latch")
        if (
            conducting(before)
            and not conducting(rig.commands)
            and rig.status.state is not ContactorState.FAULT
        ):
            assert current_valid and abs(current) <= CFG.break_current_a
        if rig.commands == OPEN:
            self.passed = False

    @rule(request=st.sampled_from(Request))
    def request(self, request: Request) -> None:
        self.rig.request = request

    @rule(on=st.booleans())
    def protection_fault(self, on: bool) -> None:
        self.rig.fault_open = on

    @rule(on=st.booleans())
    def reset(self, on: bool) -> None:
        self.rig.reset = on

    @rule(current=st.one_of(st.floats(-600, 600), st.sampled_from([0.0, 199.0, 201.0, -450.0])))
    def load(self, current: float) -> None:
        self.rig.plant.load_current = current

    @rule(valid=st.booleans())
    def current_validity(self, valid: bool) -> None:
        self.rig.current_valid = valid

    @rule(valid=st.booleans())
    def voltage_validity(self, valid: bool) -> None:
        self.rig.voltage_valid = valid

    @rule(tau=st.sampled_from([0.05, 0.15, 100.0]))
    def precharge_circuit(self, tau: float) -> None:
        self.rig.plant.precharge_tau = tau

    @rule(which=st.integers(0, 2), fault=st.sampled_from(["welded", "stuck_open", "silent"]))
    def plant_fault(self, which: int, fault: str) -> None:
        plant = self.rig.plant
        if fault == "silent":
            plant.silent = not plant.silent
        else:
            getattr(plant, fault).add(which)

    @rule()
    def repair(self) -> None:
        plant = self.rig.plant
        plant.welded.clear()
        plant.stuck_open.clear()
        plant.silent = False
        plant.advance(self.rig.now, 0.0)  # released contacts follow their coils again

    @rule(
        request=st.sampled_from([Request.DISCHARGE, Request.CHARGE]),
        load=st.sampled_from([-450.0, -150.0, 0.0, 250.0]),
    )
    def operate(self, request: Request, load: float) -> None:
        """Healthy plant and inputs with a close request: reaches the closed states often."""
        rig = self.rig
        self.repair()
        rig.plant.precharge_tau = 0.15
        rig.fault_open = rig.reset = False
        rig.voltage_valid = rig.current_valid = True
        if rig.status.state is ContactorState.FAULT:
            rig.request, rig.reset = Request.STANDBY, True
            for _ in range(100):
                self._step(0.01)
            rig.reset = False
        rig.request = request
        for _ in range(300):
            self._step(0.01)
            if rig.status.current_allowed:
                break
        rig.plant.load_current = load

    @rule(dt=st.sampled_from([0.001, 0.01, 0.05, 0.2]), n=st.integers(1, 40))
    def advance(self, dt: float, n: int) -> None:
        for _ in range(n):
            self._step(dt)

    @invariant()
    def plus_only_after_a_passed_precharge(self) -> None:
        if self.rig.commands.plus:
            assert self.passed

    @invariant()
    def open_within_the_reaction_time_of_a_latched_fault(self) -> None:
        if self.latched_at is not None and self.rig.now - self.latched_at >= CFG.fuse_delay_s:
            assert self.rig.commands == OPEN
            assert self.rig.status.state is ContactorState.FAULT

    @precondition(lambda self: self.latched_at is not None)
    @invariant()
    def contacts_apart_after_fuse_delay_plus_opening_time(self) -> None:
        rig = self.rig
        late = rig.now - self.latched_at >= CFG.reaction_time_s + rig.plant.delay
        healthy = [i for i in range(3) if i not in rig.plant.welded]
        if late and rig.plant.delay <= CFG.opening_time_s:
            assert not any(rig.plant.contacts[i] for i in healthy)

    @invariant()
    def limits_allowed_only_when_closed(self) -> None:
        s = self.rig.status
        if s.current_allowed:
            assert self.rig.commands == CLOSED
            assert s.state in (ContactorState.CLOSED_CHARGE, ContactorState.CLOSED_DISCHARGE)


TestContactorSequence = ContactorSequence.TestCase
