"""What the closed-loop scenarios share: time compression, a step record and the loop checks.

A full charge of a 50 Ah cell takes hours; the scenarios compress time instead of cheating on
the physics. `compressed` divides every charge and heat store of the cells (capacity, the RC
pair's capacitance, the heat capacities) by ``factor`` and keeps every resistance, voltage
and current: electrically the pack is the full-size one at the same currents, but its state
of charge and its temperatures move ``factor`` times faster. The controller configuration
of a scenario states the matching (compressed) capacity so its coulomb counting agrees.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field, replace
from importlib import resources
from typing import Self

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from controller.config.loader import ControllerConfig, parse_config
from controller.core import Controller, StepResult
from hil.bench import VirtualBench
from slaves.chemistry import Chemistry
from slaves.ems import EmsCommand, EmsRequest
from slaves.simulator import SimConfig
from slaves.system import SimulatedSystem
from slaves.thermal import ThermalParams


def compressed(chemistry: Chemistry, factor: float) -> Chemistry:
    """``chemistry`` with its charge and heat stores divided by ``factor`` (see module doc)."""
    return replace(
        chemistry,
        capacity_ah=chemistry.capacity_ah / factor,
        c1_farad=chemistry.c1_farad / factor,
        heat_capacity_j_per_k=chemistry.heat_capacity_j_per_k / factor,
    )


def compressed_sim(factor: float, conductance_w_per_k: float = 2.0) -> SimConfig:
    """Plant tunables with the module housings' heat capacity compressed alike."""
    extra = ThermalParams().extra_heat_capacity_j_per_k / factor
    return SimConfig(
        thermal=ThermalParams(
            conductance_w_per_k=conductance_w_per_k, extra_heat_capacity_j_per_k=extra
        )
    )


def scenario_config(name: str, **adapter: object) -> ControllerConfig:
    """The controller configuration ``hil/<name>.toml``; ``adapter`` overrides keys of its
    first ``[[adapters]]`` table (the inverter variant, for one)."""
    text = resources.files("hil").joinpath(f"{name}.toml").read_text(encoding="utf-8")
    data = tomllib.loads(text)
    if adapter:
        data["adapters"][0].update(adapter)
    return parse_config(data)


@dataclass
class LoopRecord:
    """Per controller step: what was measured against the limits in force.

    ``current`` is the pack current the controller measured (A, + = charging); ``limit`` the
    limit of the direction the scenario drives (CCL for a charge, DCL as a positive number
    for a discharge) as published in that step; ``judged`` is false while precharging (the
    inrush into the DC link is no load's current).
    """

    time: list[float] = field(default_factory=list)
    current: list[float] = field(default_factory=list)
    limit: list[float] = field(default_factory=list)
    max_cell: list[float] = field(default_factory=list)
    min_cell: list[float] = field(default_factory=list)
    phase: list[str] = field(default_factory=list)
    judged: list[bool] = field(default_factory=list)

    def add(self, now: float, result: StepResult, limit: float, phase: str) -> None:
        v = result.view.voltage_stats
        self.time.append(now)
        self.current.append(result.view.current.value)
        self.limit.append(limit)
        self.max_cell.append(v.maximum)
        self.min_cell.append(v.minimum)
        self.phase.append(phase)
        self.judged.append(result.state.contactors.state.name != "PRECHARGE")

    def phase_time(self, phase: str, cycle: float) -> float:
        return cycle * sum(p == phase for p in self.phase)

    def check(self, period: float, cycle: float, sign: float = 1.0) -> LimitCheck:
        """The loop check over the record; ``sign`` -1 judges discharge currents."""
        amps = sign * np.asarray(self.current, np.float64)
        bound, excess = limit_excess(amps, np.asarray(self.limit, np.float64), period, cycle)
        judged = np.asarray(self.judged, bool) & np.isfinite(amps)
        excess = np.where(judged, excess, -np.inf)
        worst = int(np.argmax(excess)) if excess.size else 0
        return LimitCheck(
            ratio=max_ratio(amps[judged], bound[judged]),
            worst_excess=float(excess[worst]) if excess.size else -np.inf,
            worst_at=self.time[worst] if excess.size else math.nan,
            period=period,
        )


@dataclass(frozen=True)
class LimitCheck:
    """Measured current against the limit in force one period earlier (see `limit_excess`)."""

    ratio: float  # largest current / bound where the bound is at least 1 A
    worst_excess: float  # A, largest current - bound (negative: always below)
    worst_at: float  # s, when
    period: float

    def line(self, limit: str) -> str:
        return (
            f"  max current / {limit} one period ago {self.ratio:.3f} (period {self.period:.1f} s;"
            f" worst excess {max(self.worst_excess, 0.0):.2f} A)"
        )


def limit_excess(
    amps: np.ndarray, limit: np.ndarray, period: float, cycle: float
) -> tuple[np.ndarray, np.ndarray]:
    """The limit each measured current is judged against, and the excess over it.

    A device hears the limit at most one protocol ``period`` after the BMS publishes it and
    the measurement shows its reaction two cycles later (it acts at its next step, the
    sensor sees it at the one after), so a cut may take that long to show; a rise must never
    be anticipated. The bound at step k is therefore the highest limit published in the
    window ``[k - period/cycle - 2, k]``: after a cut, the limit in force one period (and
    the transport) earlier; otherwise the present one. ``amps`` is the current in the
    limit's direction.
    """
    n = int(round(period / cycle)) + 2
    padded = np.concatenate([np.zeros(n), np.asarray(limit, np.float64)])
    bound = sliding_window_view(padded, n + 1).max(axis=1)
    return bound, np.asarray(amps, np.float64) - bound


def max_ratio(amps: np.ndarray, bound: np.ndarray, floor: float = 1.0) -> float:
    """Largest ``amps / bound`` where the bound is at least ``floor`` A (NaN if nowhere)."""
    use = bound >= floor
    return float(np.max(amps[use] / bound[use])) if use.any() else math.nan


def at(value: float | None, digits: int = 1) -> str:
    """A time for a summary line, or "not reached"."""
    return "not reached" if value is None else f"{value:.{digits}f} s"


class ClosedLoop:
    """Plant, controller and bench of one scenario, with its script and its record.

    Subclasses set up the plant and the devices, decide in `observe` what each step means
    (phase, milestones, the next EMS request) and say when they are ``finished``.
    """

    title = ""
    max_duration = 0.0  # virtual seconds; a scenario that has not finished by then stops

    def __init__(self, system: SimulatedSystem, controller: Controller) -> None:
        self.system = system
        self.bench = VirtualBench(system, controller)
        self.cycle = self.bench.cycle
        self.record = LoopRecord()
        self.log: list[tuple[float, str]] = []  # what the script did, for the live output
        self.finished = False

    def request(self, request: EmsRequest, label: str, reset: bool = False) -> None:
        """The EMS asks for ``request`` from now on."""
        self.system.ems.script = (EmsCommand(self.system.t, request, reset),)
        self.log.append((self.bench.now, label))

    def step(self) -> StepResult:
        result = self.bench.step()
        self.observe(self.bench.now, result)
        return result

    def run(self) -> None:
        while not self.finished and self.bench.now < self.max_duration - 1e-9:
            self.step()

    def observe(self, now: float, result: StepResult) -> None:
        raise NotImplementedError

    def status(self, now: float, result: StepResult) -> str:
        raise NotImplementedError

    def summary(self) -> list[str]:
        raise NotImplementedError

    def close(self) -> None:
        self.bench.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
