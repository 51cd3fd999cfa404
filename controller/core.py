"""The controller's functional core: one deterministic step per cycle.

``Controller.step(state, batch, now)`` decodes the frames received since the last step,
judges the pack, moves the contactor sequence, computes the current limits and returns the
frames to send. It reads no clock and touches no bus: the live shell, the simulator harness,
log replay and property tests all drive it the same way.

Order inside a step, chosen so that a fault acts on the same cycle it is found:
ingest -> pack view -> protection -> contactors (`judge`), then state of charge and health
-> limits -> balancing -> stages -> frames (`finish`). The shell sends a changed contactor
command between the two halves, so an open command never waits for the second.

`Controller` is the whole assembly built from one configuration: the pack core on the
``internal`` and ``vehicle`` buses, then the configured stages (inverter and charger protocols,
the CiA 418 node; see `controller.stage`), each on the bus its configuration names. At
construction it checks that every stage's bus is configured and that no two producers share
a frame identifier on one bus, so a bad combination fails at load naming the key, never in a
cycle. A stage that raises in a cycle becomes a latched ``stage_exception`` fault (limits to
zero, contactors open) instead of ending the process.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import cantools
import numpy as np

from controller.adapters.base import BmsSnapshot, Level, LimitRequest
from controller.adapters.framing import schedule
from controller.balancing import BalancingCommandEncoder, select_cells
from controller.canopen_node.stage import BatteryNodeStage
from controller.config.ingest import build_decoders, load_databases
from controller.config.loader import ControllerConfig
from controller.config.safety import events as override_events
from controller.config.safety_dbc import check_databases
from controller.contactors import (
    Cause,
    Commands,
    ContactorInputs,
    ContactorMachine,
    ContactorState,
    ContactorStatus,
    Feedback,
    Request,
    diagnosis_of,
)
from controller.diagnosis import Event
from controller.diagnosis.ingest import IngestDiagnosisState, diagnose
from controller.errors import ConfigError
from controller.estimation import SohEstimator, SohState
from controller.fault_reset import EMS, ERROR_STATE, ResetState, admitted, answer
from controller.frames import FrameBatch, OutFrame
from controller.ingest import BatchDecoder, IngestState
from controller.life import LifeCounters, LifeInputs, LifeState, step_life
from controller.limits import Derating, LimitInputs, Limits, LimitsState, SocEstimator, SocState
from controller.limits.soc import SocInputs
from controller.pack_view import PackView, ViewBuilder, protection_inputs
from controller.persisted import RESTORED, Persisted
from controller.protection import Check, Protection, ProtectionState
from controller.protection.counter_plausibility import COUNTER, counter_inputs
from controller.security import CommandGate, GateState
from controller.security.gate import GateOutput
from controller.stage import Stage, StageInputs, StageOutput
from controller.status_frames import StatusFrames
from controller.traffic import check_traffic

INTERNAL, VEHICLE = "internal", "vehicle"  # the buses the pack core itself lives on
STAGE_EXCEPTION = "stage_exception"  # the catalogue entry of a stage that raised
CHECKS = {check.value: check for check in Check}
CHECK_IDS = {check: check.value for check in Check}  # Enum.value is a property call
CONTACTOR_DIAGNOSES = frozenset(d for cause in Cause if (d := diagnosis_of(cause)) is not None)


@dataclass(frozen=True)
class ControllerState:
    """Everything the controller remembers between steps.

    The measured arrays inside ``ingest`` are updated in place by each step (copying
    100,000-cell arrays every 10 ms would cost more than the step itself); everything else is
    replaced. So a state is consumed by the step that takes it: to branch or replay, start a
    new state from ``Controller.initial_state`` and feed it the same frames, which gives the
    same result because the step is deterministic.
    """

    ingest: dict[str, IngestState]
    protection: ProtectionState
    contactors: ContactorStatus
    limits: LimitsState
    soc: SocState
    soh: SohState
    published: Limits
    bleed: np.ndarray
    next_due: dict[Any, float]
    counters: dict[str, int]
    stages: tuple[Any, ...]  # the state of each configured stage, in `Controller.stages` order
    diagnosis: dict[str, IngestDiagnosisState]  # per bus: silent sources, E2E reject rates
    failed_stages: frozenset[str] = frozenset()  # latched until a fault reset
    restored_faults: frozenset[str] = frozenset()  # latched before a restart, until a reset
    stages_failing: frozenset[str] = frozenset()  # stages that raised in the last step
    reset: ResetState = ResetState()  # fault reset requests being answered
    life: LifeState = LifeState()  # life counters and the last step's V and I
    gate: GateState = GateState()  # the EMS command gate (controller.security)
    started_at: float = 0.0
    initialised: bool = False
    started: bool = False  # the first step has run (its events hold the accepted overrides)
    shutdown: bool = False


@dataclass(frozen=True)
class StepResult:
    state: ControllerState
    frames: tuple[OutFrame, ...]
    events: tuple[Event, ...]
    view: PackView
    snapshot: BmsSnapshot


@dataclass(frozen=True)
class Judged:
    """A step between its two halves (`Controller.judge`, `Controller.finish`).

    The first half decides the contactors; when their commands changed, ``urgent`` holds the
    ContactorCommand frame, so the shell can send an open command before state estimation,
    limits, balancing and the stages have run. ``finish`` returns it again at the head of the
    step's frames: a step run whole gives the same frames.
    """

    state: ControllerState  # the state the step started from
    now: float
    events: list[Event]
    ingest: dict[str, IngestState]
    diagnosis: dict[str, IngestDiagnosisState]
    on: dict[str, FrameBatch]  # each bus's frames
    view: PackView
    request: Request
    gated: GateOutput
    requesting: frozenset[str]
    asking: frozenset[str]
    feedback: Feedback
    initialised: bool
    protection: ProtectionState
    failed_stages: frozenset[str]
    restored: frozenset[str]
    latched: bool
    contactors: ContactorStatus
    counters: dict[str, int]  # the frame counters, the urgent frame's already advanced
    urgent: tuple[OutFrame, ...]


class Controller:
    """Compiled from a configuration once; immutable afterwards."""

    def __init__(
        self, config: ControllerConfig, slaves_db: cantools.database.can.Database | None = None
    ) -> None:
        """``slaves_db``, when given, stands in for loading ``config.dbc.slaves``: a large
        generated pack is built in memory, where writing and parsing its DBC takes minutes."""
        self.config = config
        pack = config.pack
        dbs, loaded = load_databases(
            config.dbc, {"slaves": slaves_db} if slaves_db is not None else None
        )
        build = build_decoders(
            pack,
            config.ingest,
            dbs["slaves"],
            dbs["sensor"],
            dbs["master"],
            provides=config.dbc.provides,
        )
        self.decoders: dict[str, BatchDecoder] = dict(build.decoders)
        self.catalogue = config.diagnosis
        self.notices: tuple[str, ...] = (*loaded, *build.notices)  # shown at start
        self.overrides = (*config.unsafe, *check_databases(config, dbs))  # warned at start
        slaves_db, master_db = dbs["slaves"], dbs["master"]
        self.protection = Protection(config.protection)
        self.contactors = ContactorMachine(config.contactors)
        self._fault_rows = {  # the debounce row of each check's latching (fault) level
            check: list(cfg.levels).index(Level.FAULT)
            for check, cfg in config.protection.checks.items()
            if cfg.enabled and Level.FAULT in cfg.levels
        }
        self.limits = Derating(config.limits)
        self.soc = SocEstimator(config.soc, config.pack.cells)
        self.soh = SohEstimator(config.soh, config.soc, config.pack.cells)
        self.status = StatusFrames(master_db)
        self.gate = CommandGate(
            config.security,
            self.catalogue,
            self.decoders[VEHICLE].sources.index("ems"),
            master_db,
        )
        self.balancing = _balancing_encoder(config, slaves_db)
        self.stages: tuple[Stage, ...] = (
            *config.adapters,
            *((BatteryNodeStage(config.canopen),) if config.canopen is not None else ()),
        )
        self._stage_keys = (
            *(f"adapters[{i}]" for i in range(len(config.adapters))),
            *(("canopen",) if config.canopen is not None else ()),
        )
        self._periods = dict(self.status.periods)
        internal = self.decoders[INTERNAL]
        self._view = ViewBuilder(internal.layout, internal.available, pack, config.ingest)
        self._buses = tuple(dict.fromkeys((*self.decoders, *(s.bus for s in self.stages))))
        timeouts = config.ingest.timeouts
        self._ems_timeout = timeouts["ems_request"]
        self._feedback_timeout = timeouts["contactor_feedback"]
        core_traffic = self.status.produced()
        if self.balancing is not None:
            self._periods["balancing"] = config.balancing.period_s
            core_traffic[INTERNAL] |= self.balancing.produced()
        check_traffic(config.buses, core_traffic, zip(self._stage_keys, self.stages, strict=True))

    # -- lifecycle ----------------------------------------------------------------------

    def initial_state(self, now: float = 0.0, restored: Persisted | None = None) -> ControllerState:
        """The state at start; ``restored`` (what a previous run stored) asserts its latched
        faults again, so the contactors stay open until a reset, resumes its SOC and carries
        on its life counters."""
        state = ControllerState(
            ingest={role: decoder.new_state() for role, decoder in self.decoders.items()},
            protection=self.protection.initial_state(),
            contactors=self.contactors.initial_status(now),
            limits=self.limits.initial_state(),
            soc=self.soc.initial_state(),
            soh=self.soh.initial_state(),
            published=_blocked(self.config, "init"),
            bleed=np.zeros(self.config.pack.cells, bool),
            next_due={},
            counters={},
            stages=tuple(stage.initial_state() for stage in self.stages),
            diagnosis={
                bus: IngestDiagnosisState.initial(len(decoder.sources))
                for bus, decoder in self.decoders.items()
            },
            started_at=now,
        )
        if restored is None:
            return state
        health = restored.cell_capacity_ah, restored.cell_resistance_ohm
        state = replace(state, soh=self.soh.initial_state(*health))
        soc = self.soc.initial_state(
            restored.cell_soc, (restored.soc_min, restored.soc_max, restored.soc_mean)
        )
        life = LifeState(LifeCounters.of(restored))
        return replace(state, soc=soc, restored_faults=frozenset(restored.latched), life=life)

    def persisted_summary(self, state: ControllerState) -> Persisted:
        """The part of `persisted` the shell watches every cycle to decide when to store: the
        latches and the SOC of the lowest, highest and mean cell, without the per-cell arrays
        (building those every cycle would cost a large pack a good part of its budget)."""
        latched = tuple(sorted(_latched(state)))
        soc = state.soc
        if not soc.valid:
            return Persisted(latched)
        return Persisted(latched, soc.soc_min, soc.soc_max, soc.soc_mean)

    def persisted(self, state: ControllerState) -> Persisted:
        """What must survive a restart: the summary, the SOC per cell, the SOH inputs and the
        life counters."""
        cells = tuple(state.soc.cells.tolist()) if state.soc.valid else ()
        return replace(
            self.persisted_summary(state),
            cell_soc=cells,
            **state.life.counters.as_fields(),
            **state.soh.health.stored,
        )

    def request_shutdown(self, state: ControllerState) -> ControllerState:
        """Limits to zero and contactors open from the next step on, whatever is requested."""
        return replace(state, shutdown=True)

    def fail_safe_frames(self, state: ControllerState) -> tuple[OutFrame, ...]:
        """What the shell sends when a step could not complete: all contactors open and
        zero current limits, built without the pipeline that failed."""
        counters = dict(state.counters)
        return (
            self.status.contactor_command(Commands(False, False, False), counters),
            self.status.limits(0.0, 0.0, self.config.limits.cvl, self.config.limits.dvl, counters),
        )

    def is_safe(self, state: ControllerState) -> bool:
        """Contactors commanded open and confirmed (or latched in fault with coils off)."""
        c = state.contactors
        return not any(c.commands) and c.state in (ContactorState.STANDBY, ContactorState.FAULT)

    # -- the step -----------------------------------------------------------------------

    def step(self, state: ControllerState, batch: FrameBatch, now: float) -> StepResult:
        """One cycle: `judge`, then `finish` (the shell calls them apart, see `Judged`)."""
        return self.finish(self.judge(state, batch, now))

    def judge(self, state: ControllerState, batch: FrameBatch, now: float) -> Judged:
        """The first half of a step: frames decoded, the pack judged, the contactors moved."""
        events: list[Event] = [] if state.started else [*override_events(self.overrides, now)]
        ingest = dict(state.ingest)
        diagnosis = {}
        on = {bus: batch.on(bus) for bus in self._buses}  # each bus's frames, selected once
        for bus, decoder in self.decoders.items():
            decoder.decode(on[bus], ingest[bus])
            counts = ingest[bus]
            diagnosis[bus], found = diagnose(
                state.diagnosis[bus],
                decoder.sources,
                counts.accepted,
                counts.rejected,
                counts.last_seen,
                now,
                self.catalogue,
            )
            events.extend(found)
        internal = ingest[INTERNAL].measurements
        vehicle = ingest[VEHICLE].measurements
        view = self._view.build(internal, now)

        request, ems_reset, ems_age = self._ems(vehicle, now, state.shutdown)
        vehicle_frames = on[VEHICLE]
        gated = self.gate.step(state.gate, ingest[VEHICLE], vehicle_frames, request, ems_reset, now)
        request, ems_reset = gated.request, gated.reset
        events.extend(gated.events)
        asking = frozenset((EMS,) if ems_reset else ()) | state.reset.pending
        requesting = admitted(asking, self.config.security.reset_sources)
        reset = bool(requesting)
        feedback = self._feedback(internal, now)
        initialised = state.initialised or self._initialised(view, state.started_at, now)
        if initialised:
            charge_mode = state.contactors.state is ContactorState.CLOSED_CHARGE
            opened = state.contactors.state is ContactorState.STANDBY
            inputs = protection_inputs(view, ems_age, charge_mode, state.soc, opened)
            inputs = replace(
                inputs,
                cell_resistance=state.soh.health.resistance_ohm,
                cell_resistance_25c=state.soc.filter.resistance_ohm,
                **counter_inputs(internal, now, self.config.ingest.timeout(COUNTER)),
            )
            protection, found = self.protection.step(state.protection, inputs, now, reset)
            events.extend(found)
        else:
            protection, request = state.protection, Request.STANDBY
        fault_active = protection.fault_active
        failed_stages, restored = state.failed_stages, state.restored_faults
        if reset:
            failed_stages, restored, found = self._reset_latches(
                state, protection, feedback, initialised, now
            )
            events.extend(found)
        latched = bool(failed_stages or restored)
        if state.contactors.state is ContactorState.STANDBY and not _complete(view):
            request = Request.STANDBY  # never start closing onto a pack not fully measured

        contactors, _, contactor_events = self.contactors.step(
            state.contactors,
            ContactorInputs(
                request=request,
                fault_open=fault_active or latched,
                reset_requested=reset,
                pack_voltage=view.pack_voltage.value,
                pack_voltage_valid=view.pack_voltage.valid,
                link_voltage=view.link_voltage.value,
                link_voltage_valid=view.link_voltage.valid,
                current=view.current.value,
                current_valid=view.current.valid,
                feedback=feedback,
            ),
            now,
        )
        events.extend(e.event() for e in contactor_events)
        counters = dict(state.counters)
        urgent = ()
        if contactors.commands != state.contactors.commands:  # the safety news leaves first
            urgent = (self.status.contactor_command(contactors.commands, counters),)
        return Judged(
            state=state,
            now=now,
            events=events,
            ingest=ingest,
            diagnosis=diagnosis,
            on=on,
            view=view,
            request=request,
            gated=gated,
            requesting=requesting,
            asking=asking,
            feedback=feedback,
            initialised=initialised,
            protection=protection,
            failed_stages=failed_stages,
            restored=restored,
            latched=latched,
            contactors=contactors,
            counters=counters,
            urgent=urgent,
        )

    def finish(self, j: Judged) -> StepResult:
        """The second half of a step: state estimation, limits, balancing, stages, frames.
        Its frames begin with ``j.urgent``."""
        state, now, events, view = j.state, j.now, j.events, j.view
        protection, contactors, feedback = j.protection, j.contactors, j.feedback
        failed_stages, restored, latched = j.failed_stages, j.restored, j.latched
        request, requesting = j.request, j.requesting
        internal = j.ingest[INTERNAL].measurements
        fault_active = protection.fault_active

        soc = self.soc.step(
            state.soc,
            SocInputs(
                view.cell_voltage,
                view.cell_voltage_valid,
                internal["cell_voltage"].updated_at,
                view.voltage_stats,
                view.current.value,
                view.current.valid,
                view.temperature_stats.mean,
                state.soh.health.cell_capacity_ah,
                state.soh.health.resistance_ohm,
            ),
            now,
        )
        soh = self.soh.step(
            state.soh,
            view.cell_voltage,
            view.cell_voltage_valid,
            internal["cell_voltage"].updated_at,
            view.current.value,
            view.current.valid,
            state.bleed,
            now,
        )
        v, t = view.voltage_stats, view.temperature_stats
        limits_state, limits = self.limits.step(
            state.limits,
            LimitInputs(
                cell_voltage_min=v.minimum,
                cell_voltage_max=v.maximum,
                temperature_min=t.minimum,
                temperature_max=t.maximum,
                soc_min=soc.soc_min if soc.valid else math.nan,
                soc_max=soc.soc_max if soc.valid else math.nan,
                pack_voltage=view.pack_voltage.value if view.pack_voltage.valid else math.nan,
                fault=fault_active
                or latched
                or state.shutdown
                or contactors.state is ContactorState.FAULT,
                alarm=protection.alarm_active,
                enabled=contactors.current_allowed,
            ),
            now,
        )

        bleed = select_cells(
            self.config.balancing,
            view.cell_voltage,
            view.cell_voltage_valid,
            view.voltage_stats,
            view.temperature_stats,
            view.current.value,
            view.current.valid,
            fault_active or state.shutdown,
        )

        snapshot = self._snapshot(view, protection, contactors, limits, soc, soh, now)
        stage_states, frames, stage_events, capped, failed_now, asked = self._run_stages(
            state.stages, snapshot, j.on, limits, now
        )
        events.extend(stage_events)
        if self.catalogue[STAGE_EXCEPTION].enabled:
            failed_stages |= failed_now
        if capped is not limits:
            limits = capped
            snapshot = replace(snapshot, ccl=limits.ccl, dcl=limits.dcl)  # as published

        latched_before = _latched(state)
        latched_now = _latched_of(protection, contactors, failed_stages, restored)

        def after() -> ControllerState:  # only a refused reset needs it, for its reasons
            return replace(
                state,
                protection=protection,
                contactors=contactors,
                failed_stages=failed_stages,
                restored_faults=restored,
            )

        booked = answer(
            state.reset,
            requesting,
            latched_before | _in_error(state.contactors),
            latched_now | _in_error(contactors),
            lambda: self._why(after(), request, feedback, j.initialised, failed_now),
            asked,
            now,
            self.catalogue,
            j.asking - requesting,
        )
        events.extend(booked.events)
        life = step_life(
            self.config.life,
            state.life,
            LifeInputs(
                view.pack_voltage.value,
                view.pack_voltage.valid,
                view.current.value,
                view.current.valid,
                tuple(state.contactors.commands),
                tuple(contactors.commands),
                booked.accepted,
                booked.refused,
                len(latched_now - latched_before),
            ),
            now,
        )

        counters = j.counters
        changed = bool(j.urgent)  # judge found the commands changed
        old = state.published
        cut = (limits.ccl == 0 < old.ccl) or (limits.dcl == 0 < old.dcl)
        force = ("ContactorCommand",) * changed + ("BMS_Limits",) * cut  # safety news at once
        due, next_due = schedule(state.next_due, self._periods, now, force=force)
        first = list(j.urgent)  # the contactor command leads every cycle's frames
        for name in due:
            if name == "ContactorCommand":
                if not j.urgent:
                    first.append(self.status.contactor_command(contactors.commands, counters))
            elif name == "balancing" and self.balancing is not None:
                counters["balancing"] = counters.get("balancing", 0) + 1
                frames.extend(self.balancing.encode(bleed, counters["balancing"]))
            else:
                frames.append(
                    self.status.encode(name, snapshot, protection, contactors, feedback, counters)
                )

        frames = first + frames
        new_state = ControllerState(
            ingest=j.ingest,
            protection=protection,
            contactors=contactors,
            limits=limits_state,
            soc=soc,
            soh=soh,
            published=limits,
            bleed=bleed,
            next_due=next_due,
            counters=counters,
            stages=stage_states,
            diagnosis=j.diagnosis,
            failed_stages=failed_stages,
            restored_faults=restored,
            stages_failing=failed_now,
            reset=booked.state,
            gate=j.gated.state,
            life=life,
            started_at=state.started_at,
            initialised=j.initialised,
            started=True,
            shutdown=state.shutdown,
        )
        return StepResult(new_state, tuple(frames), tuple(events), view, snapshot)

    # -- helpers ------------------------------------------------------------------------

    def _run_stages(
        self,
        states: tuple[Any, ...],
        snapshot: BmsSnapshot,
        on: dict[str, FrameBatch],
        limits: Limits,
        now: float,
    ) -> tuple[
        tuple[Any, ...], list[OutFrame], list[Event], Limits, frozenset[str], frozenset[str]
    ]:
        """Every configured stage on its bus; their caps can only lower the limits, and those
        that ask for a fault reset are named (the core applies it in the next step).

        A stage that raises keeps its previous state, sends nothing this cycle, caps the
        limits to zero and is reported as failed (latched by the caller): the rest of the
        assembly, and the safe frames, go on.
        """
        new_states: list[Any] = []
        frames: list[OutFrame] = []
        events: list[Event] = []
        failed: set[str] = set()
        asked: set[str] = set()
        for stage, stage_state in zip(self.stages, states, strict=True):
            inputs = StageInputs(snapshot, on[stage.bus])
            try:
                new_state, output = stage.step(stage_state, inputs, now)
            except Exception as exc:  # noqa: BLE001 - a stage must never take protection down
                new_state, output = stage_state, _failed_output(stage, exc, now)
                failed.add(stage.name)
            new_states.append(new_state)
            frames.extend(output.frames)
            events.extend(output.events)
            limits = _capped(limits, output.limits.max_ccl, output.limits.max_dcl)
            if output.reset_requested:
                asked.add(stage.name)
        return tuple(new_states), frames, events, limits, frozenset(failed), frozenset(asked)

    def _reset_latches(
        self,
        state: ControllerState,
        protection: ProtectionState,
        feedback: Feedback,
        initialised: bool,
        now: float,
    ) -> tuple[frozenset[str], frozenset[str], list[Event]]:
        """Failed stages and restored faults left latched by a reset: a stage that raised in
        the last step stays, a restored fault stays while its cause is present or unknown."""
        stages = state.failed_stages - state.stages_failing
        restored = frozenset(
            d for d in state.restored_faults if self._gone(d, protection, feedback, initialised)
        )
        events = [
            Event(now, diagnosis, Level.FAULT, "cleared", detail=", ".join(sorted(names)))
            for diagnosis, names in ((STAGE_EXCEPTION, stages), (RESTORED, restored))
            if names
        ]
        return state.failed_stages - stages, state.restored_faults - restored, events

    def _gone(
        self, diagnosis: str, protection: ProtectionState, feedback: Feedback, initialised: bool
    ) -> bool:
        """Is the cause of a fault restored from before a restart gone now?"""
        if not initialised:
            return False  # not measured yet is not gone
        check = CHECKS.get(diagnosis)
        if check is not None:
            return self._quiet(protection, check)
        if diagnosis in CONTACTOR_DIAGNOSES:
            return all(f is False for f in feedback)
        return True

    def _quiet(self, protection: ProtectionState, check: Check) -> bool:
        """No element violates the check's fault level, counts towards it or holds it."""
        row, debounce = self._fault_rows.get(check), protection.debounce.get(check)
        if row is None or debounce is None:
            return True
        return not (
            debounce.active[row].any()
            or debounce.prev_violated[row].any()
            or (debounce.counter[row] > 0).any()
        )

    def _why(
        self,
        state: ControllerState,
        request: Request,
        feedback: Feedback,
        initialised: bool,
        failing: frozenset[str],
    ) -> dict[str, str]:
        """Why each latch of ``state`` holds, for the log of a refused reset."""
        why: dict[str, str] = {}
        for diagnosis in state.restored_faults:
            if not initialised:
                why[diagnosis] = "restored after a restart; not every measurement has arrived"
            elif diagnosis in CONTACTOR_DIAGNOSES:
                why[diagnosis] = "restored after a restart; contacts not confirmed open"
            else:
                why[diagnosis] = "restored after a restart; cause still present"
        for check, level in state.protection.levels.items():
            if level >= Level.FAULT:
                why[check.value] = self._check_reason(state.protection, check)
        contactors = _contactor_reason(
            state.contactors,
            request,
            feedback,
            state.protection.fault_active or bool(state.failed_stages or state.restored_faults),
        )
        for fault in state.contactors.faults:
            if (diagnosis := diagnosis_of(fault.cause)) is not None:
                why[diagnosis] = contactors
        why[ERROR_STATE] = contactors
        if state.failed_stages:
            again = state.failed_stages & failing
            why[STAGE_EXCEPTION] = (
                f"{', '.join(sorted(again))} raised again in this cycle"
                if again
                else f"{', '.join(sorted(state.failed_stages))} still raised at the reset"
            )
        return why

    def _check_reason(self, protection: ProtectionState, check: Check) -> str:
        row, debounce = self._fault_rows[check], protection.debounce[check]
        active = debounce.active[row]
        if debounce.prev_violated[row][active].any():
            return "cause still present"
        if not debounce.prev_clear_ok[row][active].all():
            return "within the hysteresis, or not validly measured"
        delay = self.config.protection.checks[check].levels[Level.FAULT].clear_delay_ms
        return f"gone for less than its clear delay ({delay:g} ms)"

    def _initialised(self, view: PackView, started_at: float, now: float) -> bool:
        """Startup ends once every measurement has arrived, or at the startup timeout.

        Until then nothing has been measured yet, which is not a fault: protection waits and
        the contactors stay open. After the timeout whatever is still missing is judged (and
        faults) like data that went away.
        """
        return _complete(view) or now - started_at >= self.config.startup_timeout_s

    def _ems(self, vehicle: Any, now: float, shutdown: bool) -> tuple[Request, bool, float]:
        """The EMS request, its reset bit and its age; anything stale means standby."""
        timeout = self._ems_timeout
        value, valid, age = _one(vehicle["ems_request"], now, timeout)
        if shutdown or not valid:
            return Request.STANDBY, False, age
        try:
            wanted = Request(int(value))
        except ValueError:  # a state the DBC does not define: the safe one
            wanted = Request.STANDBY
        reset_value, reset_valid, _ = _one(vehicle["ems_reset"], now, timeout)
        return wanted, reset_valid and reset_value > 0.5, age

    def _feedback(self, internal: Any, now: float) -> Feedback:
        """Aux contacts as last reported; ``None`` where the report is stale."""
        fb = internal["contactor_feedback"]
        timeout = self._feedback_timeout
        return Feedback(
            *(
                value > 0.5 if reported and math.isfinite(value) and now - at <= timeout else None
                for value, reported, at in zip(
                    fb.value.tolist(),
                    fb.reported_valid.tolist(),
                    fb.updated_at.tolist(),
                    strict=True,
                )
            )
        )

    def _snapshot(
        self,
        view: PackView,
        protection: ProtectionState,
        contactors: ContactorStatus,
        limits: Limits,
        soc: SocState,
        soh: SohState,
        now: float,
    ) -> BmsSnapshot:
        v, t = view.voltage_stats, view.temperature_stats
        checks = {CHECK_IDS[check]: level for check, level in protection.levels.items()}
        checks["contactor"] = Level.FAULT if contactors.state is ContactorState.FAULT else Level.OK
        closed = contactors.state in (ContactorState.CLOSED_CHARGE, ContactorState.CLOSED_DISCHARGE)
        return BmsSnapshot(
            time=now,
            bms_state=contactors.state.name,
            contactors_closed=closed,
            charge_allowed=closed and limits.ccl > 0,
            discharge_allowed=closed and limits.dcl > 0,
            ccl=limits.ccl,
            dcl=limits.dcl,
            cvl=limits.cvl,
            dvl=limits.dvl,
            soc=soc.pack if soc.valid else math.nan,
            soh=soh.health.pack_soh,
            pack_voltage=view.pack_voltage.value,
            pack_current=view.current.value,
            min_cell_voltage=v.minimum,
            max_cell_voltage=v.maximum,
            min_cell_position=v.argmin,
            max_cell_position=v.argmax,
            min_temperature=t.minimum,
            min_temperature_position=t.argmin,
            max_temperature_position=t.argmax,
            max_temperature=t.maximum,
            mean_temperature=t.mean,
            fault_level=Level(max(checks.values())),  # protection's highest, or contactors'
            checks=checks,
            cells_in_series=self.config.pack.cells,
            modules=self.config.pack.modules,
            capacity_ah=self.config.pack.capacity_ah,
            data_valid=v.count == self.config.pack.cells and t.valid and view.current.valid,
        )


def _one(array: Any, now: float, timeout: float) -> tuple[float, bool, float]:
    """Value, validity and age of a one-element measured array, as Python scalars (the rule
    of `MeasuredArray.valid`: reported valid, finite, not older than ``timeout``)."""
    value = float(array.value[0])
    age = now - float(array.updated_at[0])
    return value, bool(array.reported_valid[0]) and math.isfinite(value) and age <= timeout, age


def _latched(state: ControllerState) -> frozenset[str]:
    """Every fault latched in ``state``, by diagnosis ID."""
    return _latched_of(
        state.protection, state.contactors, state.failed_stages, state.restored_faults
    )


def _latched_of(
    protection: ProtectionState,
    contactors: ContactorStatus,
    failed_stages: frozenset[str],
    restored: frozenset[str],
) -> frozenset[str]:
    """Every fault latched by these parts of a state, by diagnosis ID."""
    if not (contactors.faults or failed_stages or protection.fault_active):
        return restored  # the usual cycle: nothing latched but what a restart restored
    latched = {check.value for check, level in protection.levels.items() if level >= Level.FAULT}
    latched |= {d for f in contactors.faults if (d := diagnosis_of(f.cause)) is not None}
    if failed_stages:
        latched.add(STAGE_EXCEPTION)
    return frozenset(latched | restored)


def _in_error(contactors: ContactorStatus) -> frozenset[str]:
    """``ERROR_STATE`` while the contactors are held in FAULT: a latch of its own."""
    return frozenset((ERROR_STATE,) if contactors.state is ContactorState.FAULT else ())


def _contactor_reason(
    contactors: ContactorStatus, request: Request, feedback: Feedback, fault_open: bool
) -> str:
    """Why the contactors stay in FAULT (the gates of `ContactorMachine` in order)."""
    if contactors.state is not ContactorState.FAULT:
        return "left the error state"
    if any(contactors.commands):
        return "contactors still commanded closed (current above the break current)"
    if fault_open:
        return "other faults stay latched"
    if request is not Request.STANDBY:
        return f"{request.name.lower()} requested; a reset needs standby"
    if not all(f is False for f in feedback):
        return "auxiliary contacts not all confirmed open"
    return "no reset request in this cycle"


def _complete(view: PackView) -> bool:
    """Every cell, temperature, the current and the pack voltage measured and valid now."""
    return (
        view.voltage_stats.count == view.cell_voltage.size
        and bool(view.temperature_valid.all())
        and view.current.valid
        and view.pack_voltage.valid
    )


def _blocked(config: ControllerConfig, why: str) -> Limits:
    """Zero currents with the configured voltage limits: what is published before any data."""
    cvl, dvl = config.limits.cvl, config.limits.dvl
    return Limits(0.0, 0.0, cvl, dvl, 0.0, 0.0, why, why)


def _capped(limits: Limits, max_ccl: float | None, max_dcl: float | None) -> Limits:
    """``limits`` with an adapter's caps applied (a cap never raises a limit); the same
    object where nothing is capped."""
    if max_ccl is None and max_dcl is None:
        return limits
    ccl = limits.ccl if max_ccl is None else min(limits.ccl, max_ccl)
    dcl = limits.dcl if max_dcl is None else min(limits.dcl, max_dcl)
    return replace(limits, ccl=ccl, dcl=dcl)


def _balancing_encoder(
    config: ControllerConfig, slaves_db: cantools.database.can.Database
) -> BalancingCommandEncoder | None:
    """The BalancingCommand encoder; none for a slave DBC without the command while balancing
    is disabled (modules that balance on their own, or not at all, need nothing)."""
    first = "BalancingCommand_M00"
    if first not in {m.name for m in slaves_db.messages}:
        if config.balancing.enabled:
            raise ConfigError(
                "balancing.enabled",
                f"the slave DBC has no {first}: set it to false for modules without a "
                "balancing command",
            )
        return None
    pack = config.pack
    return BalancingCommandEncoder(slaves_db, pack.modules, pack.cells_per_module, bus=INTERNAL)


def _failed_output(stage: Stage, exc: Exception, now: float) -> StageOutput:
    why = f"stage {stage.name!r} failed: {type(exc).__name__}: {exc}"
    event = Event(now, STAGE_EXCEPTION, Level.FAULT, "set", detail=why)
    return StageOutput(events=(event,), limits=LimitRequest(0.0, 0.0, why))
