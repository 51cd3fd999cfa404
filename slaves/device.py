"""What the simulator steps: devices on the bus around one shared physical plant.

Slave modules, and later the current sensor, the HV side and the contactor driver, are
devices: each is stepped in virtual time and returns the frames it sends, and each sees every
frame the master sends. They read (and, for balancing, load) the same `Plant`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import can

from slaves.cells import CellArray
from slaves.chemistry import Chemistry
from slaves.thermal import ModuleThermal


class Device(Protocol):
    """A bus participant of the simulated pack."""

    def step(self, t: float, dt: float) -> list[can.Message]:
        """Frames sent at virtual time ``t`` (the end of a step of ``dt`` seconds)."""
        ...

    def receive(self, msg: can.Message) -> None:
        """A frame from the master; devices ignore IDs that are not theirs."""
        ...


@dataclass
class Plant:
    """The physical pack the devices measure: cells in module order, one thermal node each."""

    chemistry: Chemistry
    cells: CellArray
    thermal: ModuleThermal
    modules: int
    cells_per_module: int
    pack_current: float = 0.0
