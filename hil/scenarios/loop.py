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


def scenario_config(name: str) -> ControllerConfig:
    """The controller configuration ``hil/<name>.toml`` shipped with the scenarios."""
    text = resources.files("hil").joinpath(f"{name}.toml").read_text(encoding="utf-8")
    return parse_config(tomllib.loads(text))


@dataclass
class LoopRecord:
    """Per controller step: what was measured against the limits in force.

    ``current`` is the pack current the controller measured (A, + = charging); ``limit`` the
    limit of the direction the scenario drives (CCL for a charge, DCL as a positive number
    for a discharge) as published in that step.
    """

    time: list[float] = field(default_factory=list)
    current: list[float] = field(default_factory=list)
    limit: list[float] = field(default_factory=list)
    max_cell: list[float] = field(default_factory=list)
    min_cell: list[float] = field(default_factory=list)
    phase: list[str] = field(default_factory=list)

    def add(self, now: float, result: StepResult, limit: float, phase: str) -> None:
        v = result.view.voltage_stats
        self.time.append(now)
        self.current.append(result.view.current.value)
        self.limit.append(limit)
        self.max_cell.append(v.maximum)
        self.min_cell.append(v.minimum)
        self.phase.append(phase)

    def phase_time(self, phase: str, cycle: float) -> float:
        return cycle * sum(p == phase for p in self.phase)


def limit_excess(
    amps: np.ndarray, limit: np.ndarray, period: float, cycle: float
) -> tuple[np.ndarray, np.ndarray]:
    """The limit each measured current is judged against, and the excess over it.

    A device hears the limit at most one protocol ``period`` (plus one cycle of transport)
    after the BMS publishes it, so a cut may take that long to show; a rise must never be
    anticipated. The bound at step k is therefore the highest limit published in the
    window ``[k - period/cycle - 1, k]``: after a cut, the limit in force one period
    earlier; otherwise the present one. ``amps`` is the current in the limit's direction.
    """
    n = int(round(period / cycle)) + 1
    padded = np.concatenate([np.zeros(n), np.asarray(limit, np.float64)])
    bound = sliding_window_view(padded, n + 1).max(axis=1)
    return bound, np.asarray(amps, np.float64) - bound


def max_ratio(amps: np.ndarray, bound: np.ndarray, floor: float = 1.0) -> float:
    """Largest ``amps / bound`` where the bound is at least ``floor`` A (NaN if nowhere)."""
    use = bound >= floor
    return float(np.max(amps[use] / bound[use])) if use.any() else math.nan


def at(value: float | None) -> str:
    return "not reached" if value is None else f"{value:.1f} s"


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
