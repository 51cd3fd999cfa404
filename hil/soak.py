"""A long healthy run: the pack driven and charged with rests, in lock-step virtual time,
counting every warning, alarm and fault the controller raises (a healthy pack must raise no
alarm and no fault: each one is a false alarm, a threshold or a check that misjudges).

The day is `CYCLE` repeated: a drive (the EMS requests discharge, the load alternates
between `DRIVE_A` currents every `DRIVE_STEP_S`), a rest with the contactors open, a charge
at `CHARGE_A` and a longer rest. The load obeys the published limits, as an inverter would.
The plant and the controller are those of `canbms hil` (`hil/matrix/bench.toml`, its
inverter and charger on the vehicle bus); the plant is seeded, so a run repeats.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from controller.adapters.base import Level
from controller.config.loader import ControllerConfig
from controller.core import Controller, StepResult
from controller.diagnosis import Event
from hil.bench import VirtualBench
from hil.drivers import BenchLoad
from hil.run_matrix import AMBIENT, attach_devices
from slaves.ems import EmsCommand, EmsRequest
from slaves.system import SimulatedSystem

INITIAL_SOC = 0.7
DRIVE_A = (15.0, 30.0)  # A, alternating: the 22.5 A mean takes 45 % of the 50 Ah cells an hour
DRIVE_STEP_S = 60.0
CHARGE_A = -11.25  # A: the 22.5 Ah back in two hours


@dataclass(frozen=True)
class Phase:
    name: str
    request: EmsRequest
    seconds: float
    demand: Callable[[float], float]  # A (+ discharges) against seconds into the phase


def _drive(t: float) -> float:
    return DRIVE_A[int(t // DRIVE_STEP_S) % len(DRIVE_A)]


CYCLE = (
    Phase("drive", EmsRequest.DISCHARGE, 3600.0, _drive),
    Phase("rest", EmsRequest.STANDBY, 3600.0, lambda t: 0.0),
    Phase("charge", EmsRequest.CHARGE, 7200.0, lambda t: CHARGE_A),
    Phase("rest", EmsRequest.STANDBY, 7200.0, lambda t: 0.0),
)  # six hours


@dataclass
class SoakResult:
    """What the run raised and how far it took the pack."""

    simulated_s: float = 0.0
    wall_s: float = 0.0
    events: list[Event] = field(default_factory=list)  # every warning, alarm and fault set
    soc: tuple[float, float] = (math.inf, -math.inf)  # published SOC, lowest and highest
    cell_v: tuple[float, float] = (math.inf, -math.inf)
    temperature: tuple[float, float] = (math.inf, -math.inf)
    peak_current: tuple[float, float] = (0.0, 0.0)  # A, most charging and most discharging
    phases: Counter[str] = field(default_factory=Counter)  # phases entered, by name

    def count(self, level: Level) -> int:
        return sum(e.level == level for e in self.events)

    @property
    def false_alarms(self) -> list[Event]:
        return [e for e in self.events if e.level >= Level.ALARM]

    def lines(self) -> list[str]:
        hours = self.simulated_s / 3600.0
        by = Counter((e.diagnosis, e.level.name.lower()) for e in self.events)
        out = [
            f"simulated {hours:.2f} h in {self.wall_s:.1f} s wall "
            f"({self.simulated_s / max(self.wall_s, 1e-9):.0f}x real time); "
            + ", ".join(f"{n} {name}" for name, n in sorted(self.phases.items())),
            f"faults {self.count(Level.FAULT)}, alarms {self.count(Level.ALARM)}, "
            f"warnings {self.count(Level.WARNING)}",
            f"SOC {self.soc[0]:.1f}-{self.soc[1]:.1f} %, cells {self.cell_v[0]:.3f}-"
            f"{self.cell_v[1]:.3f} V, {self.temperature[0]:.1f}-{self.temperature[1]:.1f} degC, "
            f"current {self.peak_current[0]:.1f}..{self.peak_current[1]:.1f} A",
        ]
        out += [f"  {n} x {d} ({lv})" for (d, lv), n in sorted(by.items())]
        out += [f"  first: t={e.time:.2f} s {e}" for e in _first_of_each(self.events)]
        return out


def _first_of_each(events: list[Event]) -> list[Event]:
    seen: dict[tuple[str, Level], Event] = {}
    for e in events:
        seen.setdefault((e.diagnosis, e.level), e)
    return list(seen.values())


def scaled(cycle: tuple[Phase, ...], factor: float) -> tuple[Phase, ...]:
    """``cycle`` with every phase ``factor`` times as long (the same currents)."""
    return tuple(replace(p, seconds=p.seconds * factor) for p in cycle)


def run_soak(
    config: ControllerConfig,
    hours: float,
    seed: int = 0,
    progress: Callable[[float, SoakResult], None] | None = None,
    cycle: tuple[Phase, ...] = CYCLE,
) -> SoakResult:
    """Run ``cycle`` over and over for ``hours`` simulated hours; ``progress`` is called at
    each phase start with the simulated time."""
    system = SimulatedSystem(seed=seed, initial_soc=INITIAL_SOC, ambient=AMBIENT)
    attach_devices(system, config)
    load = BenchLoad(system)
    system.set_load(load)
    result = SoakResult()
    bench = VirtualBench(system, Controller(config), on_step=lambda t, r: _observe(result, r))
    end = hours * 3600.0
    began = time.monotonic()
    k = 0
    while bench.now < end - 1e-9:
        phase = cycle[k % len(cycle)]
        k += 1
        result.phases[phase.name] += 1
        if progress:
            progress(bench.now, result)
        start = bench.now
        system.ems.script = (EmsCommand(system.t, phase.request),)
        stop = min(start + phase.seconds, end) - 1e-9
        while bench.now < stop:
            load.demand = phase.demand(bench.now - start)
            bench.step()
    bench.close()
    result.simulated_s = bench.now
    result.wall_s = time.monotonic() - began
    return result


def _observe(result: SoakResult, step: StepResult) -> None:
    result.events += [e for e in step.events if e.kind == "set" and e.level >= Level.WARNING]
    s = step.snapshot
    if not math.isfinite(s.soc):
        return
    result.soc = (min(result.soc[0], s.soc), max(result.soc[1], s.soc))
    result.cell_v = (
        min(result.cell_v[0], s.min_cell_voltage),
        max(result.cell_v[1], s.max_cell_voltage),
    )
    result.temperature = (
        min(result.temperature[0], s.min_temperature),
        max(result.temperature[1], s.max_temperature),
    )
    result.peak_current = (
        min(result.peak_current[0], s.pack_current),
        max(result.peak_current[1], s.pack_current),
    )
