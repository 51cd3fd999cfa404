"""The simulated pack in virtual time: plant physics plus the devices on its bus.

``PackSimulator.step(dt)`` advances the cells and the module temperatures over ``dt`` with
the pack current of the profile at the start of the step, then steps every registered
device at the new time ``t`` (devices cover ``(t - dt, t]``) and returns their frames,
stamped in virtual time. The slave modules sample the plant at each frame's own send
instant inside the step (its exact solution for the inputs held), so ``dt`` may be longer
than their send periods: `physics_step` is the step for running alone. Everything random
comes from the seed, so a run is repeatable frame for frame. Nothing here reads a clock:
`slaves.realtime` does that.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cache

import can
import cantools
import numpy as np

from dbc.slave_protocol import build_database
from dbc.topology import Topology
from slaves.cells import CellArray, CellSpread
from slaves.chemistry import Chemistry, get
from slaves.device import Device, Plant
from slaves.faults import Faults
from slaves.frames import SlaveFrames
from slaves.module import ModuleParams, SlaveModules
from slaves.profiles import CurrentProfile, as_profile
from slaves.thermal import ModuleThermal, ThermalParams


@dataclass(frozen=True)
class SimConfig:
    """Tunables of the plant and the slave modules (the defaults suit the default pack)."""

    spread: CellSpread = field(default_factory=CellSpread)
    thermal: ThermalParams = field(default_factory=ThermalParams)
    modules: ModuleParams = field(default_factory=ModuleParams)


@cache
def slave_database(topology: Topology) -> cantools.database.can.Database:
    """The slave-bus database of ``topology``, built once per topology."""
    return build_database(topology)


class PackSimulator:
    """A pack of slave modules on one bus, stepped in virtual time."""

    def __init__(
        self,
        topology: Topology | None = None,
        chemistry: str | Chemistry = "NMC",
        seed: int = 0,
        initial_soc: float | np.ndarray = 0.5,
        ambient: float = 25.0,
        current: float | CurrentProfile | Callable[[float], float] = 0.0,
        config: SimConfig | None = None,
    ) -> None:
        self.topology = topology = topology or Topology()
        self.chemistry = get(chemistry) if isinstance(chemistry, str) else chemistry
        self.config = config = config or SimConfig()
        self.seed = seed
        self.db = slave_database(topology)
        cells_rng, thermal_rng, noise_rng, fault_rng = (
            np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(4)
        )
        cells = CellArray(self.chemistry, topology.n_cells, cells_rng, initial_soc, config.spread)
        thermal = ModuleThermal(
            topology.modules,
            topology.sensors_per_module,
            self.chemistry.heat_capacity_j_per_k,
            topology.cells_per_module,
            thermal_rng,
            ambient,
            config.thermal,
        )
        self.plant = Plant(
            self.chemistry, cells, thermal, topology.modules, topology.cells_per_module
        )
        self.faults = Faults(topology, fault_rng)
        self.modules = SlaveModules(
            self.db, topology, self.plant, self.faults, noise_rng, config.modules
        )
        self.devices: dict[str, Device] = {"modules": self.modules, "faults": self.faults}
        self.profile: CurrentProfile = as_profile(current)
        self.t = 0.0
        self.bleed = np.zeros(topology.n_cells)  # A per cell over the last step

    # --- inputs -----------------------------------------------------------------------

    def set_current(self, current: float | CurrentProfile | Callable[[float], float]) -> None:
        """Pack current from now on: amps (+ = charging) or a function of virtual time."""
        self.profile = as_profile(current)

    def add_device(self, name: str, device: Device) -> None:
        """Step ``device`` after the ones already registered; names are unique."""
        if name in self.devices:
            raise ValueError(f"device {name!r} already registered")
        self.devices[name] = device

    def remove_device(self, name: str) -> Device:
        return self.devices.pop(name)

    def receive(self, messages: Iterable[can.Message]) -> None:
        """Frames from the master, in order; every device sees every frame."""
        for msg in messages:
            for device in self.devices.values():
                device.receive(msg)

    # --- stepping ---------------------------------------------------------------------

    def step(self, dt: float, current: float | None = None) -> list[can.Message]:
        """Advance by ``dt`` seconds of virtual time; the frames sent meanwhile, in order.

        ``current`` (A, + = charging) replaces the profile for this step: a coupled HV
        circuit passes the mean current it drew from the cells over the step.
        """
        modules, others = self.step_frames(dt, current)
        if modules is None:
            return others
        out = modules.messages()
        if others:
            out.extend(others)
            out.sort(key=lambda m: m.timestamp)
        return out

    def step_frames(
        self, dt: float, current: float | None = None
    ) -> tuple[SlaveFrames | None, list[can.Message]]:
        """`step`, with the slave modules' frames as arrays (None: none sent) beside the
        other devices' frames: for a consumer in this process, no message per frame."""
        self._advance_physics(dt, current)
        modules = None
        others: list[can.Message] = []
        for device in self.devices.values():
            if device is self.modules:
                modules = self.modules.frames(self.t, dt)
            else:
                others.extend(device.step(self.t, dt))
        others.sort(key=lambda m: m.timestamp)
        return modules, others

    def _advance_physics(self, dt: float, current: float | None) -> None:
        if not dt > 0:
            raise ValueError(f"dt: {dt} must be positive")
        plant = self.plant
        plant.pack_current = float(self.profile(self.t) if current is None else current)
        self.bleed, balancing_heat = self.modules.bleed()
        per_cell_temp = np.repeat(plant.thermal.temperature, plant.cells_per_module)
        plant.cells.step(dt, plant.pack_current - self.bleed, per_cell_temp)
        cell_heat = plant.cells.heat_w.reshape(plant.modules, plant.cells_per_module).sum(axis=1)
        plant.thermal.step(dt, cell_heat + balancing_heat)
        self.t += dt

    @property
    def physics_step(self) -> float:
        """The step for running alone: the modules' longest send period (1 s), so every
        message kind goes out in each step. Frames in between keep their own instants and
        values; what a longer step holds (pack current from the profile, bleed currents,
        cell temperatures in the resistances, ageing) moves with time constants of
        minutes and more."""
        return self.modules.longest_period

    def run(self, duration: float, dt: float = 0.01) -> list[can.Message]:
        """Step for ``duration`` seconds; every frame sent."""
        out: list[can.Message] = []
        for _ in range(round(duration / dt)):
            out.extend(self.step(dt))
        return out

    # --- true state, read-only views for tests and displays ------------------------------

    @property
    def soc(self) -> np.ndarray:
        return _readonly(self.plant.cells.soc)

    @property
    def cell_voltages(self) -> np.ndarray:
        return _readonly(self.plant.cells.voltage)

    @property
    def cell_temperatures(self) -> np.ndarray:
        return _readonly(np.repeat(self.plant.thermal.temperature, self.topology.cells_per_module))

    @property
    def module_temperatures(self) -> np.ndarray:
        return _readonly(self.plant.thermal.temperature)

    @property
    def sensor_temperatures(self) -> np.ndarray:
        """``(modules, sensors)``."""
        return _readonly(self.plant.thermal.sensor_temperatures)

    @property
    def pack_voltage(self) -> float:
        return float(self.plant.cells.voltage.sum())

    @property
    def pack_current(self) -> float:
        return self.plant.pack_current


def _readonly(a: np.ndarray) -> np.ndarray:
    view = np.array(a, copy=True)
    view.flags.writeable = False
    return view
