"""Scripted sessions of plant and controller: timed actions, a closed-loop load, a summary.

A scenario drives the simulated system the way a vehicle or storage site would (state
requests, load and charger currents, injected faults, a fault reset) and reports what the
controller did in response, with the times that matter: when the contactors closed, how the
limits derated, how long a fault took from injection to detection and to open contactors,
and when they closed again after the reset.
"""

from __future__ import annotations

import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources

import numpy as np

from controller.config.loader import ControllerConfig, parse_config
from controller.core import Controller, ControllerState, StepResult
from hil.scenarios.loop import ClosedLoop
from slaves.ems import EmsCommand, EmsRequest
from slaves.faults import ModuleSilent
from slaves.system import SimulatedSystem


class LimitFollowingLoad:
    """A load (or charger) that wants ``demand`` A but obeys the limits the BMS publishes.

    It reads ``BMS_Limits`` as received by the EMS on the vehicle bus, so the loop closes
    through the bus exactly as with a real inverter: positive demand discharges, negative
    demand charges, and a missing limits frame means zero.
    """

    def __init__(self, system: SimulatedSystem) -> None:
        self.system = system
        self.demand = 0.0

    def __call__(self, t: float) -> float:
        limits = self.system.ems.received.get("BMS_Limits")
        if limits is None:
            return 0.0
        if self.demand >= 0:
            return min(self.demand, float(limits["BMS_DischargeCurrentLimit"]))
        return -min(-self.demand, float(limits["BMS_ChargeCurrentLimit"]))


@dataclass(frozen=True)
class Action:
    at: float
    label: str
    apply: Callable[[SimulatedSystem, LimitFollowingLoad], None]
    injects_fault: bool = False
    resets_fault: bool = False


@dataclass
class Milestones:
    closed_discharge: float | None = None
    closed_charge: float | None = None
    fault_injected: float | None = None
    fault_detected: float | None = None
    contactors_open: float | None = None
    fault_reset: float | None = None
    reclosed: float | None = None
    peak_discharge: float = 0.0
    ccl_before_taper: float = 0.0
    ccl_at_top: float = float("nan")
    notes: list[str] = field(default_factory=list)


def _request(request: EmsRequest, reset: bool = False) -> Callable[..., None]:
    def apply(system: SimulatedSystem, load: LimitFollowingLoad) -> None:
        system.ems.script = (EmsCommand(system.t, request, reset),)

    return apply


def _demand(amps: float) -> Callable[..., None]:
    def apply(system: SimulatedSystem, load: LimitFollowingLoad) -> None:
        load.demand = amps

    return apply


def _silence(module: int) -> Callable[..., None]:
    def apply(system: SimulatedSystem, load: LimitFollowingLoad) -> None:
        system.faults.inject(ModuleSilent(module))

    return apply


def _revive(module: int) -> Callable[..., None]:
    def apply(system: SimulatedSystem, load: LimitFollowingLoad) -> None:
        system.faults.clear(ModuleSilent(module))

    return apply


FAULT_MODULE = 3


def demo_actions() -> list[Action]:
    """The default demo: close, discharge, charge into the top-of-charge derating, a fault,
    its reset and a new close."""
    return [
        Action(0.0, "EMS requests standby (with fault reset)", _request(EmsRequest.STANDBY, True)),
        Action(2.0, "EMS requests discharge", _request(EmsRequest.DISCHARGE)),
        Action(3.0, "inverter draws up to 150 A", _demand(150.0)),
        Action(13.0, "inverter stops", _demand(0.0)),
        Action(14.0, "EMS requests standby", _request(EmsRequest.STANDBY)),
        Action(
            16.0,
            "EMS requests charge (held until the 10 s contactor lock-out has passed)",
            _request(EmsRequest.CHARGE),
        ),
        Action(17.0, "charger pushes up to 150 A", _demand(-150.0)),
        Action(45.0, f"slave module {FAULT_MODULE} falls silent", _silence(FAULT_MODULE), True),
        Action(46.0, "charger stops", _demand(0.0)),
        Action(48.0, f"slave module {FAULT_MODULE} talks again", _revive(FAULT_MODULE)),
        Action(
            50.0,
            "EMS requests standby with fault reset",
            _request(EmsRequest.STANDBY, True),
            resets_fault=True,
        ),
        Action(
            52.0,
            "EMS requests discharge (held until the 10 s contactor lock-out has passed)",
            _request(EmsRequest.DISCHARGE),
        ),
        Action(57.0, "inverter draws up to 100 A", _demand(100.0)),
    ]


DEMO_DURATION = 60.0


class DemoSession(ClosedLoop):
    """The default ``canbms demo`` tour: timed actions against the plant, milestones kept."""

    title = (
        "session: 96s NMC pack and controller in lock-step, in virtual time (faster than "
        "real time unless --speed 1)"
    )
    max_duration = DEMO_DURATION

    def __init__(
        self,
        seed: int = 0,
        controller: Controller | None = None,
        actions: list[Action] | None = None,
    ) -> None:
        system, self.load = demo_system(seed)
        super().__init__(system, controller or Controller(demo_config()))
        self.actions = sorted(actions or demo_actions(), key=lambda a: a.at)
        self.milestones = Milestones()
        self._next = 0
        self._started = time.perf_counter()

    def step(self) -> StepResult:
        while self._next < len(self.actions) and self.actions[self._next].at <= self.bench.now:
            action = self.actions[self._next]
            action.apply(self.system, self.load)
            self.log.append((self.bench.now, action.label))
            if action.injects_fault:
                self.milestones.fault_injected = self.bench.now
            if action.resets_fault:
                self.milestones.fault_reset = self.bench.now
            self._next += 1
        return super().step()

    def observe(self, now: float, result: StepResult) -> None:
        m = self.milestones
        state = result.state.contactors.state.name
        if state == "CLOSED_DISCHARGE" and m.closed_discharge is None:
            m.closed_discharge = now
        if state == "CLOSED_CHARGE" and m.closed_charge is None:
            m.closed_charge = now
        current = result.view.current.value
        if np.isfinite(current):
            m.peak_discharge = max(m.peak_discharge, -current)
        if state == "CLOSED_CHARGE":
            m.ccl_before_taper = max(m.ccl_before_taper, result.state.published.ccl)
            m.ccl_at_top = result.state.published.ccl
        if m.fault_injected is not None:
            if m.fault_detected is None and result.state.protection.fault_active:
                m.fault_detected = now
            if (
                m.contactors_open is None
                and m.fault_detected
                and not any(result.state.contactors.commands)
            ):
                m.contactors_open = now
        if m.fault_reset is not None and m.reclosed is None and state.startswith("CLOSED_"):
            m.reclosed = now

    def status(self, now: float, result: StepResult) -> str:
        s = result.state
        v, t = result.view.voltage_stats, result.view.temperature_stats
        speed = now / max(time.perf_counter() - self._started, 1e-9)
        return (
            f"t={now:6.1f}s  {s.contactors.state.name:<16} level {int(s.protection.highest)}  "
            f"I={result.view.current.value:7.1f} A  "
            f"CCL={s.published.ccl:6.1f} DCL={s.published.dcl:6.1f} A  "
            f"cell {v.minimum:.3f}..{v.maximum:.3f} V (#{v.argmin}/#{v.argmax})  "
            f"T {t.minimum:4.1f}..{t.maximum:4.1f} C  SOC {_soc(s)}  "
            f"[{speed:4.1f}x real time]"
        )

    def summary(self) -> list[str]:
        m = self.milestones
        lines = [
            f"  contactors closed for discharge  {instant(m.closed_discharge)}",
            f"  peak discharge current           {m.peak_discharge:.1f} A",
            f"  contactors closed for charge     {instant(m.closed_charge)}",
            f"  CCL before / at top of charge    {m.ccl_before_taper:.1f} A / {m.ccl_at_top:.1f} A",
            f"  fault injected                   {instant(m.fault_injected)}",
        ]
        if m.fault_injected is not None:
            lines += [
                f"  fault detected                   {after(m.fault_detected, m.fault_injected)}",
                f"  contactors commanded open        {after(m.contactors_open, m.fault_injected)}",
            ]
        if m.fault_reset is not None:
            lines += [
                f"  fault reset requested            {instant(m.fault_reset)}",
                f"  contactors closed again          {instant(m.reclosed)}"
                + ("" if m.reclosed is None else f" ({m.reclosed - m.fault_reset:.2f} s later)"),
            ]
        lines.append(f"  controller reception             {reception(self.bench.state)}")
        return lines


def instant(value: float | None) -> str:
    """When something happened, as a summary says it."""
    return "not reached" if value is None else f"at t={value:.2f} s"


def after(value: float | None, since: float) -> str:
    """How long after ``since`` something happened."""
    return "not reached" if value is None else f"{value - since:.2f} s after injection"


def _soc(state: ControllerState) -> str:
    """The controller's own SOC estimate (mean of the cells)."""
    return f"{state.soc.soc_mean:5.1f} %" if state.soc.valid else "  ?   %"


def reception(state: ControllerState) -> str:
    """Frames the controller accepted, rejected (E2E, length, mux) and did not know."""
    ingest = state.ingest.values()
    accepted = sum(int(s.accepted.sum()) for s in ingest)
    rejected = sum(int(s.rejected.sum()) for s in ingest)
    unknown = sum(s.unknown for s in ingest)
    return f"{accepted} frames accepted, {rejected} rejected, {unknown} with unknown IDs"


def demo_config() -> ControllerConfig:
    """The controller configuration of the demo: ``hil/demo.toml`` over the defaults."""
    text = resources.files("hil").joinpath("demo.toml").read_text(encoding="utf-8")
    return parse_config(tomllib.loads(text))


def demo_system(seed: int = 0) -> tuple[SimulatedSystem, LimitFollowingLoad]:
    """The demo plant: the default 96s NMC pack at 93 % SOC, a limit-following load."""
    system = SimulatedSystem(seed=seed, initial_soc=0.93)
    load = LimitFollowingLoad(system)
    system.set_load(load)
    return system, load
