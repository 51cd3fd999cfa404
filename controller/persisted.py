"""What of the controller's state must outlive the process.

A BMS that forgets a latched fault when it restarts closes its contactors onto the fault
that opened them; one that forgets its SOC publishes a guess until the pack next rests.
`Persisted` is the small, plain record of both that the shell stores (see
`controller.shell.store`) and hands back to `Controller.initial_state` after a restart.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

RESTORED = "fault_restored"  # the catalogue entry of a fault asserted again after a restart


@dataclass(frozen=True)
class Persisted:
    """Latched faults by diagnosis ID, SOC (%) of the lowest, highest and mean cell, and the
    life counters (`controller.life`)."""

    latched: tuple[str, ...] = ()
    soc_min: float = math.nan
    soc_max: float = math.nan
    soc_mean: float = math.nan
    cell_soc: tuple[float, ...] = ()  # % per cell (`controller.limits.soc`); (): not known
    # state of health per cell (`controller.estimation.CellHealth`), 0: not measured
    cell_capacity_ah: tuple[float, ...] = ()
    cell_resistance_ohm: tuple[float, ...] = ()
    MEASURED_PER_CELL = ("cell_capacity_ah", "cell_resistance_ohm")  # 0 in these: not measured
    # life counters, field by field as `controller.life.LifeCounters` (it reads them back)
    charged_kwh: float = 0.0
    discharged_kwh: float = 0.0
    charged_ah: float = 0.0
    discharged_ah: float = 0.0
    contactor_closings: tuple[int, int, int] = (0, 0, 0)  # minus, precharge, plus
    contactor_openings: tuple[int, int, int] = (0, 0, 0)
    contactor_openings_under_load: tuple[int, int, int] = (0, 0, 0)
    contactor_openings_current_unknown: tuple[int, int, int] = (0, 0, 0)
    contactor_broken_a_sum: tuple[float, float, float] = (0.0, 0.0, 0.0)
    contactor_broken_a_max: tuple[float, float, float] = (0.0, 0.0, 0.0)
    resets_accepted: int = 0
    resets_refused: int = 0
    faults_latched: int = 0

    @property
    def soc_known(self) -> bool:
        return all(math.isfinite(v) for v in (self.soc_min, self.soc_max, self.soc_mean))

    def to_record(self) -> dict[str, Any]:
        """A JSON-ready mapping (NaN as null, tuples as lists) for the store."""
        return {key: _plain(value) for key, value in asdict(self).items()}

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Persisted:
        """The record `to_record` made, by any version: keys it lacks take their defaults
        (a field added later), keys this version does not know are ignored."""
        known = {f.name: f for f in fields(cls)}
        values = {}
        for key, value in record.items():
            if key not in known:
                continue
            default = known[key].default
            if isinstance(default, tuple):
                values[key] = tuple(value)
            elif isinstance(default, float):
                values[key] = math.nan if value is None else float(value)
            else:
                values[key] = value
        return cls(**values)


def _plain(value: object) -> object:
    """NaN as null and tuples as lists: JSON lacks both."""
    if isinstance(value, float) and math.isnan(value):
        return None
    return list(value) if isinstance(value, tuple) else value
