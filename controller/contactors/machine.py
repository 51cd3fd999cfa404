"""The contactor sequence: precharge with retries, closed modes, guarded opening, latched faults.

`ContactorMachine.step` is a pure function of the previous status, this cycle's inputs and
the time. It returns the new status, the coil commands for the driver board and one
`ContactorEvent` per transition (`ContactorEvent.event` gives it as a diagnosis `Event`).
Three rules carry the safety argument:

- the plus contactor is commanded closed only after a precharge attempt passed;
- without a fault nothing is opened above the break current (a standby request waits while
  the limits, zero outside the closed states, make the load ramp down);
- a latched fault opens everything at once below the break current, and above it after the
  fuse delay, so a short circuit is left to the fuse rather than to the contactor tips.

Aux-contact feedback is checked against the command every cycle: a contact that does not
follow within its allowance latches FAULT with the contactor and cause in `faults`. Unknown
feedback (``None``) is tolerated only while everything is commanded open in STANDBY or
FAULT, and even there it holds any close until the contacts read open.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from enum import Enum, IntEnum
from typing import NamedTuple

import numpy as np

from controller.adapters.base import Level
from controller.contactors.config import ContactorConfig
from controller.diagnosis.events import Event


class ContactorState(IntEnum):
    """Sequence state; values are those of ``BMS_State`` in the master DBC."""

    STANDBY = 1
    PRECHARGE = 2
    CLOSED_DISCHARGE = 3
    CLOSED_CHARGE = 4
    OPENING = 5
    FAULT = 6


class Request(IntEnum):
    """Operating request; values are those of ``EMS_RequestedState``."""

    STANDBY = 0
    DISCHARGE = 1
    CHARGE = 2


class Phase(Enum):
    """Step inside a state; IDLE where the state has only one."""

    IDLE = "idle"
    CONNECTING = "connecting"  # minus + precharge closed, waiting for the link to match
    CLOSING_PLUS = "closing_plus"  # plus commanded, waiting for its aux contact
    RETRY_PAUSE = "retry_pause"  # all open between precharge attempts
    DRAINING = "draining"  # open requested, waiting for the current to fall below break
    RELEASING = "releasing"  # open commanded, waiting for the aux contacts


class Contactor(IntEnum):
    MINUS = 0
    PRECHARGE = 1
    PLUS = 2


class Cause(Enum):
    """Why a transition happened (and, for faults, what was found)."""

    REQUEST = "request"
    PRECHARGE_PASSED = "precharge_passed"
    CLOSED = "closed"
    MODE_CHANGE = "mode_change"
    PRECHARGE_TIMEOUT = "precharge_timeout"
    PRECHARGE_INVALID_VOLTAGE = "precharge_invalid_voltage"
    RETRY = "retry"
    STANDBY_REQUESTED = "standby_requested"
    OPEN_CANCELLED = "open_cancelled"
    BELOW_BREAK_CURRENT = "below_break_current"
    FUSE_DELAY_EXPIRED = "fuse_delay_expired"
    OPEN_CONFIRMED = "open_confirmed"
    RESET = "reset"
    PROTECTION_FAULT = "protection_fault"
    PRECHARGE_FAILED = "precharge_failed"  # every attempt failed
    PRECHARGE_OVERCURRENT = "precharge_overcurrent"  # attempt failed above break current
    FAILED_TO_CLOSE = "failed_to_close"  # commanded closed, reads open (or dropped out)
    WELDED = "welded"  # commanded open, still reads closed
    FEEDBACK_LOST = "feedback_lost"  # no aux reading where one is needed


class Commands(NamedTuple):
    """Coil commands, True = close."""

    minus: bool
    precharge: bool
    plus: bool


class Feedback(NamedTuple):
    """Aux contacts, True = closed, None = unknown (driver board silent or stale)."""

    minus: bool | None
    precharge: bool | None
    plus: bool | None


class ContactorFault(NamedTuple):
    cause: Cause
    contactor: Contactor | None


class ContactorEvent(NamedTuple):
    time: float
    before: ContactorState
    after: ContactorState
    phase: Phase
    cause: Cause
    contactor: Contactor | None = None

    def __str__(self) -> str:
        which = "" if self.contactor is None else f" ({self.contactor.name.lower()})"
        return (
            f"contactors {self.before.name} -> {self.after.name}/{self.phase.value}: "
            f"{self.cause.value}{which}"
        )

    def event(self) -> Event:
        """This transition as a diagnosis event: a contactor fault, or a sequence record."""
        diagnosis, level = _DIAGNOSES.get(self.cause, ("contactor_sequence", Level.OK))
        which = None if self.contactor is None else np.array([int(self.contactor)])
        detail = f"{self.before.name} -> {self.after.name}/{self.phase.value}: {self.cause.value}"
        if self.contactor is not None:
            detail += f" ({self.contactor.name.lower()})"
        kind = "contactor" if which is not None else None
        return Event(
            self.time, diagnosis, level, "set", elements=which, element_kind=kind, detail=detail
        )


def diagnosis_of(cause: Cause) -> str | None:
    """The catalogue ID of a contactor fault cause; None for a cause that is no fault."""
    diagnosis, level = _DIAGNOSES.get(cause, (None, Level.OK))
    return diagnosis if level >= Level.FAULT else None


OPEN = Commands(False, False, False)
PRECHARGING = Commands(True, True, False)
PLUS_CLOSING = Commands(True, True, True)
CLOSED = Commands(True, False, True)
_CLOSED_STATE = {
    Request.DISCHARGE: ContactorState.CLOSED_DISCHARGE,
    Request.CHARGE: ContactorState.CLOSED_CHARGE,
}
_ALL_OPEN = Feedback(False, False, False)
_CONTACTORS = tuple(Contactor)
SENT_AFTER = math.inf  # agreed_at of a command changed in the last step: judged from the next
_CONTACT_FAULTS = (Cause.FAILED_TO_CLOSE, Cause.WELDED, Cause.FEEDBACK_LOST)
# Catalogue ID and level of the causes that are diagnoses; every other cause is a sequence step.
_DIAGNOSES: dict[Cause, tuple[str, Level]] = {
    Cause.WELDED: ("contactor_welded", Level.FAULT),
    Cause.FAILED_TO_CLOSE: ("contactor_failed_to_close", Level.FAULT),
    Cause.FEEDBACK_LOST: ("contactor_feedback_lost", Level.FAULT),
    Cause.PRECHARGE_FAILED: ("precharge_failed", Level.FAULT),
    Cause.PRECHARGE_OVERCURRENT: ("precharge_overcurrent", Level.FAULT),
    Cause.PRECHARGE_TIMEOUT: ("precharge_attempt_failed", Level.WARNING),
    Cause.PRECHARGE_INVALID_VOLTAGE: ("precharge_attempt_failed", Level.WARNING),
}


@dataclass(frozen=True)
class ContactorInputs:
    """What the sequence reads each cycle; validity is the core's verdict (fresh, unflagged)."""

    request: Request
    fault_open: bool = False  # protection wants the contactors open (latched fault)
    reset_requested: bool = False
    pack_voltage: float = math.nan  # V, current sensor U1 (battery side)
    pack_voltage_valid: bool = False
    link_voltage: float = math.nan  # V, current sensor U2 (load side)
    link_voltage_valid: bool = False
    current: float = math.nan  # A, positive = charging
    current_valid: bool = False
    feedback: Feedback = Feedback(None, None, None)


@dataclass(frozen=True)
class ContactorStatus:
    state: ContactorState
    phase: Phase
    mode: Request  # closed mode pursued or held (STANDBY when none)
    commands: Commands
    since: float  # s, entry into the present state/phase
    attempt: int  # precharge attempts in the present sequence
    opened_at: float  # s, last time everything was commanded open (lock-out reference)
    fault_since: float | None  # s, when FAULT latched
    faults: tuple[ContactorFault, ...]  # sequence and feedback faults since the last reset
    agreed_at: tuple[float, float, float]  # s, last time each aux contact matched its command

    def agreeing(self, agreed_at: tuple[float, float, float]) -> ContactorStatus:
        """This status with new agreement times (built field by field: every step makes one)."""
        return ContactorStatus(
            self.state,
            self.phase,
            self.mode,
            self.commands,
            self.since,
            self.attempt,
            self.opened_at,
            self.fault_since,
            self.faults,
            agreed_at,
        )

    @property
    def current_allowed(self) -> bool:
        """True only when closed and staying closed: limits must be zero otherwise."""
        return self.phase is Phase.IDLE and self.state in _CLOSED_STATE.values()


class _Step:
    """Per-step context: inputs, time and the events collected so far."""

    def __init__(self, config: ContactorConfig, inputs: ContactorInputs, now: float) -> None:
        self.inputs = inputs
        self.now = now
        self.events: list[ContactorEvent] = []
        i = inputs
        self.can_break = (
            i.current_valid
            and math.isfinite(i.current)
            and abs(i.current) <= config.break_current_a
        )
        # decoded signals may arrive as 0/1 or numpy booleans: compare as plain bools
        minus, precharge, plus = i.feedback
        self.feedback = Feedback(
            None if minus is None else bool(minus),
            None if precharge is None else bool(precharge),
            None if plus is None else bool(plus),
        )
        self.open_confirmed = self.feedback == _ALL_OPEN  # known and open, every one

    def go(
        self,
        s: ContactorStatus,
        state: ContactorState,
        phase: Phase,
        cause: Cause,
        contactor: Contactor | None = None,
        **changes: object,
    ) -> ContactorStatus:
        self.events.append(ContactorEvent(self.now, s.state, state, phase, cause, contactor))
        return replace(s, state=state, phase=phase, since=self.now, **changes)


class ContactorMachine:
    """The contactor sequence for one configuration."""

    def __init__(self, config: ContactorConfig) -> None:
        self.config = config

    def initial_status(self, now: float) -> ContactorStatus:
        """STANDBY, everything open, the lock-out already expired."""
        return ContactorStatus(
            state=ContactorState.STANDBY,
            phase=Phase.IDLE,
            mode=Request.STANDBY,
            commands=OPEN,
            since=now,
            attempt=0,
            opened_at=-math.inf,
            fault_since=None,
            faults=(),
            agreed_at=(now, now, now),
        )

    def step(
        self, status: ContactorStatus, inputs: ContactorInputs, now: float
    ) -> tuple[ContactorStatus, Commands, list[ContactorEvent]]:
        ctx = _Step(self.config, inputs, now)
        agreed, found = self._supervise(status, ctx.feedback, now)
        new = [f for f in found if f not in status.faults]
        s = status.agreeing(agreed) if agreed != status.agreed_at else status
        logged = new
        if s.state is not ContactorState.FAULT and (inputs.fault_open or new):
            cause, which = new[0] if new else (Cause.PROTECTION_FAULT, None)
            s = ctx.go(s, ContactorState.FAULT, Phase.IDLE, cause, which, fault_since=now)
            logged = new[1:]
        for fault in logged:
            ctx.events.append(
                ContactorEvent(now, s.state, s.state, s.phase, fault.cause, fault.contactor)
            )
        if new:
            s = replace(s, faults=s.faults + tuple(new))
        s = self._advance(s, ctx)
        return self._finish(status.commands, s, now), s.commands, ctx.events

    def _supervise(
        self, s: ContactorStatus, feedback: Feedback, now: float
    ) -> tuple[tuple[float, float, float], list[ContactorFault]]:
        """Compare each aux contact with the command in force since the last step."""
        at_rest = s.state is ContactorState.STANDBY or s.state is ContactorState.FAULT
        agreed = list(s.agreed_at)
        found: list[ContactorFault] = []
        for c, command, seen in zip(_CONTACTORS, s.commands, feedback, strict=True):
            if agreed[c] == SENT_AFTER:  # the command went out after that step: count from now
                agreed[c] = now
                continue
            if seen is command or (seen is None and at_rest and not command):
                agreed[c] = now
                continue
            allowance = self.config.feedback_timeout_s if command else self.config.open_allowance_s
            if now - agreed[c] > allowance:
                if seen is None:
                    cause = Cause.FEEDBACK_LOST
                else:
                    cause = Cause.FAILED_TO_CLOSE if command else Cause.WELDED
                found.append(ContactorFault(cause, c))
        return (agreed[0], agreed[1], agreed[2]), found

    def _advance(self, s: ContactorStatus, ctx: _Step) -> ContactorStatus:
        state = s.state
        if state is ContactorState.FAULT:
            return self._fault(s, ctx)
        if state is ContactorState.STANDBY:
            return self._standby(s, ctx)
        if ctx.inputs.request is Request.STANDBY and state is not ContactorState.OPENING:
            s = ctx.go(s, ContactorState.OPENING, Phase.DRAINING, Cause.STANDBY_REQUESTED)
            return self._opening(s, ctx)
        if state is ContactorState.PRECHARGE:
            return self._precharge(replace(s, mode=ctx.inputs.request), ctx)
        if state is ContactorState.OPENING:
            return self._opening(s, ctx)
        if ctx.inputs.request is not s.mode:
            target = _CLOSED_STATE[ctx.inputs.request]
            return ctx.go(s, target, Phase.IDLE, Cause.MODE_CHANGE, mode=ctx.inputs.request)
        return s

    def _standby(self, s: ContactorStatus, ctx: _Step) -> ContactorStatus:
        request = ctx.inputs.request
        if request is Request.STANDBY or not ctx.open_confirmed:
            return s
        if ctx.now - s.opened_at < self.config.lockout_s:
            return s  # held against chattering; the request is served when the lock-out ends
        return ctx.go(
            s,
            ContactorState.PRECHARGE,
            Phase.CONNECTING,
            Cause.REQUEST,
            mode=request,
            attempt=1,
            commands=PRECHARGING,
        )

    def _precharge(self, s: ContactorStatus, ctx: _Step) -> ContactorStatus:
        cfg, i = self.config, ctx.inputs
        if s.phase is Phase.RETRY_PAUSE:
            if ctx.now - s.since < cfg.retry_pause_s or not ctx.open_confirmed:
                return s
            return ctx.go(
                s,
                ContactorState.PRECHARGE,
                Phase.CONNECTING,
                Cause.RETRY,
                attempt=s.attempt + 1,
                commands=PRECHARGING,
            )
        if s.phase is Phase.CLOSING_PLUS:
            if ctx.feedback.plus is not True:
                return s  # supervision faults the plus contactor if it does not follow
            return ctx.go(
                s, _CLOSED_STATE[s.mode], Phase.IDLE, Cause.CLOSED, commands=CLOSED, attempt=0
            )
        voltages = (
            i.pack_voltage_valid
            and i.link_voltage_valid
            and math.isfinite(i.pack_voltage)
            and math.isfinite(i.link_voltage)
        )
        if not voltages:
            return self._attempt_failed(s, ctx, Cause.PRECHARGE_INVALID_VOLTAGE)
        matched = (
            abs(i.pack_voltage - i.link_voltage) < cfg.precharge_voltage_margin_v
            and i.current_valid
            and abs(i.current) < cfg.precharge_end_current_a
        )
        if matched:
            return ctx.go(
                s,
                ContactorState.PRECHARGE,
                Phase.CLOSING_PLUS,
                Cause.PRECHARGE_PASSED,
                commands=PLUS_CLOSING,
            )
        if ctx.now - s.since >= cfg.precharge_timeout_s:
            return self._attempt_failed(s, ctx, Cause.PRECHARGE_TIMEOUT)
        return s

    def _attempt_failed(self, s: ContactorStatus, ctx: _Step, cause: Cause) -> ContactorStatus:
        if not ctx.can_break:
            return self._latch(s, ctx, Cause.PRECHARGE_OVERCURRENT)
        if s.attempt > self.config.precharge_retries:
            return self._latch(s, ctx, Cause.PRECHARGE_FAILED)
        return ctx.go(s, ContactorState.PRECHARGE, Phase.RETRY_PAUSE, cause, commands=OPEN)

    def _latch(self, s: ContactorStatus, ctx: _Step, cause: Cause) -> ContactorStatus:
        s = ctx.go(
            s,
            ContactorState.FAULT,
            Phase.IDLE,
            cause,
            fault_since=ctx.now,
            faults=s.faults + (ContactorFault(cause, None),),
        )
        return self._fault(s, ctx)

    def _opening(self, s: ContactorStatus, ctx: _Step) -> ContactorStatus:
        request = ctx.inputs.request
        if s.phase is Phase.DRAINING:
            if request is not Request.STANDBY and s.commands == CLOSED:
                return ctx.go(
                    s, _CLOSED_STATE[request], Phase.IDLE, Cause.OPEN_CANCELLED, mode=request
                )
            if not any(s.commands):
                s = replace(s, phase=Phase.RELEASING)  # already open (between attempts)
            elif ctx.can_break:
                s = ctx.go(
                    s,
                    ContactorState.OPENING,
                    Phase.RELEASING,
                    Cause.BELOW_BREAK_CURRENT,
                    commands=OPEN,
                )
            else:
                return s
        if ctx.open_confirmed:
            return ctx.go(
                s,
                ContactorState.STANDBY,
                Phase.IDLE,
                Cause.OPEN_CONFIRMED,
                mode=Request.STANDBY,
                attempt=0,
            )
        return s

    def _fault(self, s: ContactorStatus, ctx: _Step) -> ContactorStatus:
        i = ctx.inputs
        if any(s.commands):
            since = ctx.now if s.fault_since is None else s.fault_since
            if ctx.can_break:
                cause = Cause.BELOW_BREAK_CURRENT
            elif ctx.now - since >= self.config.fuse_delay_s:
                cause = Cause.FUSE_DELAY_EXPIRED
            else:
                return s
            return ctx.go(s, ContactorState.FAULT, Phase.IDLE, cause, commands=OPEN)
        if i.reset_requested and not i.fault_open and i.request is Request.STANDBY:
            if ctx.open_confirmed:
                return ctx.go(
                    s,
                    ContactorState.STANDBY,
                    Phase.IDLE,
                    Cause.RESET,
                    mode=Request.STANDBY,
                    attempt=0,
                    fault_since=None,
                    faults=(),
                )
        return s

    @staticmethod
    def _finish(before: Commands, s: ContactorStatus, now: float) -> ContactorStatus:
        """Restart the feedback allowance of changed commands; note a full open for the lock-out.

        A changed command leaves the controller only when this cycle ends, which under a CPU
        stall can be long after ``now``; so its allowance starts at the next step, never at
        the start of the cycle that decided it (a slow cycle is no failed contactor).
        """
        if s.commands == before:
            return s
        agreed = tuple(
            SENT_AFTER if a != b else t
            for a, b, t in zip(before, s.commands, s.agreed_at, strict=True)
        )
        opened_at = now if any(before) and not any(s.commands) else s.opened_at
        return replace(s, agreed_at=agreed, opened_at=opened_at)  # type: ignore[arg-type]
