"""Readings that are valid but wrong, injected into the closed loop, and when each is caught.

`PlausibilityRun` is the demo session (96s NMC pack, limit-following load, EMS script)
with a faster thermal plant (module heat capacities divided by ``THERMAL_FACTOR``, so a
load warms the pack within a minute) and a record of the first time each diagnosis set
each level. The actions are the test's: load steps, and faults of the current sensor,
the temperature sensors and the cell readings.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from controller.adapters.base import Level
from controller.core import Controller, StepResult
from hil.scenarios.session import Action, DemoSession, LimitFollowingLoad, demo_config
from slaves.chemistry import NMC
from slaves.ems import EmsCommand, EmsRequest
from slaves.simulator import SimConfig
from slaves.system import SimulatedSystem
from slaves.thermal import ThermalParams

THERMAL_FACTOR = 10.0


def fast_thermal_system(
    seed: int, initial_soc: float
) -> tuple[SimulatedSystem, LimitFollowingLoad]:
    """The demo plant with its heat capacities divided by ``THERMAL_FACTOR``."""
    chemistry = replace(NMC, heat_capacity_j_per_k=NMC.heat_capacity_j_per_k / THERMAL_FACTOR)
    extra = ThermalParams().extra_heat_capacity_j_per_k / THERMAL_FACTOR
    system = SimulatedSystem(
        chemistry=chemistry,
        seed=seed,
        initial_soc=initial_soc,
        config=SimConfig(thermal=ThermalParams(extra_heat_capacity_j_per_k=extra)),
    )
    load = LimitFollowingLoad(system)
    system.set_load(load)
    return system, load


def request(what: EmsRequest, reset: bool = False):
    def apply(system: SimulatedSystem, load: LimitFollowingLoad) -> None:
        system.ems.script = (EmsCommand(system.t, what, reset),)

    return apply


def demand(amps: float):
    def apply(system: SimulatedSystem, load: LimitFollowingLoad) -> None:
        load.demand = amps

    return apply


class PlausibilityRun(DemoSession):
    """The demo loop with the caller's actions, recording when each diagnosis set a level."""

    def __init__(
        self,
        actions: list[Action],
        duration: float,
        seed: int = 0,
        initial_soc: float = 0.8,
        controller: Controller | None = None,
    ) -> None:
        super().__init__(seed, controller or Controller(demo_config()), actions)
        self.system, self.load = fast_thermal_system(seed, initial_soc)
        self.bench.plant = self.system
        self.max_duration = duration
        self.first_set: dict[tuple[str, Level], float] = {}
        self.elements: dict[str, set[int]] = {}
        self.times: list[float] = []
        self.module_temperature: list[np.ndarray] = []  # true, per step
        self.plant_current: list[float] = []  # true, per step (A, + = charging)

    def observe(self, now: float, result: StepResult) -> None:
        super().observe(now, result)
        self.times.append(now)
        self.module_temperature.append(self.system.pack.plant.thermal.temperature.copy())
        self.plant_current.append(self.system.pack_current)
        for event in result.events:
            if event.kind != "set" or event.level is Level.OK:
                continue
            self.first_set.setdefault((event.diagnosis, event.level), now)
            if event.elements is not None:
                self.elements.setdefault(event.diagnosis, set()).update(event.elements.tolist())

    def set_at(self, diagnosis: str, level: Level) -> float | None:
        """When ``diagnosis`` first reached ``level`` or above."""
        times = [t for (d, lv), t in self.first_set.items() if d == diagnosis and lv >= level]
        return min(times, default=None)
