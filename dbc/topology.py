"""Pack topology: how many slave modules, cells and temperature sensors the bus carries.

The topology alone fixes the slave protocol (IDs, frame layouts, mux groups), so the
generator, the simulator and the controller's decoder all derive their layout from it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from dbc.errors import TopologyError

MAX_MODULES = 64  # with 11-bit IDs (dbc.layout)
MAX_MODULES_EXTENDED = 4096  # with 29-bit IDs: a 12-bit module field (dbc.layout)
# Classic frames carry 3 slots after the 2 header bytes; a 4-bit mux selects up to 16 groups.
CLASSIC_CELLS_PER_FRAME = 3
CLASSIC_SENSORS_PER_FRAME = 3
# FD frames: 32 cells in 15-bit slots (62 bytes) and 31 sensors in 16-bit slots (64 bytes).
FD_CELLS_PER_FRAME = 32
FD_SENSORS_PER_FRAME = 31
MAX_CELLS_PER_MODULE = {False: 48, True: 64}
MAX_SENSORS_PER_MODULE = {False: 48, True: 64}


@dataclass(frozen=True)
class Topology:
    """Modules x cells x sensors on one slave bus, classic CAN or CAN FD.

    ``extended_ids`` selects 29-bit arbitration IDs, which packs of more than 64 modules
    need (see ``dbc.layout``); the frame layouts do not change.
    """

    modules: int = 8
    cells_per_module: int = 12
    sensors_per_module: int = 4
    fd: bool = False
    extended_ids: bool = False

    def __post_init__(self) -> None:
        for name in ("fd", "extended_ids"):
            if not isinstance(getattr(self, name), bool):
                raise TopologyError(name, f"must be true or false, got {getattr(self, name)!r}")
        bus = "CAN FD" if self.fd else "classic CAN"
        if not self.extended_ids and isinstance(self.modules, int) and self.modules > MAX_MODULES:
            raise TopologyError(
                "modules",
                f"must be 1..{MAX_MODULES} with 11-bit IDs, got {self.modules} "
                f"(extended_ids allows up to {MAX_MODULES_EXTENDED})",
            )
        limits = (
            ("modules", self.modules, MAX_MODULES_EXTENDED),
            ("cells_per_module", self.cells_per_module, MAX_CELLS_PER_MODULE[self.fd]),
            ("sensors_per_module", self.sensors_per_module, MAX_SENSORS_PER_MODULE[self.fd]),
        )
        for name, value, maximum in limits:
            if isinstance(value, bool) or not isinstance(value, int):
                raise TopologyError(name, f"must be an integer, got {value!r}")
            if not 1 <= value <= maximum:
                raise TopologyError(name, f"must be 1..{maximum} on {bus}, got {value}")

    @property
    def n_cells(self) -> int:
        return self.modules * self.cells_per_module

    @property
    def n_sensors(self) -> int:
        return self.modules * self.sensors_per_module

    @property
    def cells_per_frame(self) -> int:
        return FD_CELLS_PER_FRAME if self.fd else CLASSIC_CELLS_PER_FRAME

    @property
    def sensors_per_frame(self) -> int:
        return FD_SENSORS_PER_FRAME if self.fd else CLASSIC_SENSORS_PER_FRAME

    @property
    def voltage_groups(self) -> int:
        """CellVoltages frames (mux values) per module; the last may be partly filled."""
        return math.ceil(self.cells_per_module / self.cells_per_frame)

    @property
    def temperature_groups(self) -> int:
        """Temperatures frames (mux values) per module; the last may be partly filled."""
        return math.ceil(self.sensors_per_module / self.sensors_per_frame)

    def describe(self) -> str:
        bus = "CAN FD" if self.fd else "classic CAN"
        ids = ", 29-bit IDs" if self.extended_ids else ""
        return (
            f"{self.modules} modules x {self.cells_per_module} cells x "
            f"{self.sensors_per_module} temperature sensors, {bus}{ids} "
            f"({self.n_cells} cells, {self.n_sensors} sensors)"
        )
