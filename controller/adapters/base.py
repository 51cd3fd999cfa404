"""What every output adapter sees and returns.

The core builds one `BmsSnapshot` per cycle after protection, contactors and limits have run;
each configured adapter turns it into the frames its device expects and may, in turn, restrict
the limits (for example a charger protocol that must stop charging at the voltage limit, or an
inverter whose keep-alive has been lost for too long). Adapters are deterministic: their state
is explicit and time is passed in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum


class Level(IntEnum):
    """Severity of a protection check, shared by every protocol's alarm/warning mapping."""

    OK = 0
    WARNING = 1
    ALARM = 2
    FAULT = 3


@dataclass(frozen=True)
class BmsSnapshot:
    """The controller's state as protocols need it, in SI units and plain types.

    Current is positive when charging. Percentages are 0..100. Cell positions are 0-based
    flat indices. ``checks`` maps protection check names (``cell_overvoltage``,
    ``cell_undervoltage``, ``overtemperature_charge``, ``overtemperature_discharge``,
    ``undertemperature_charge``, ``undertemperature_discharge``, ``overcurrent_charge``,
    ``overcurrent_discharge``, ``cell_voltage_spread``, ``slave_timeout``,
    ``current_sensor_timeout``, ``pack_voltage_plausibility``, ``ems_timeout``,
    ``invalid_measurement``, ``contactor``) to their active level.
    """

    time: float
    bms_state: str
    contactors_closed: bool
    charge_allowed: bool
    discharge_allowed: bool
    ccl: float
    dcl: float
    cvl: float
    dvl: float
    soc: float
    soh: float
    pack_voltage: float
    pack_current: float
    min_cell_voltage: float
    max_cell_voltage: float
    min_cell_position: int
    max_cell_position: int
    min_temperature: float
    max_temperature: float
    mean_temperature: float
    fault_level: Level
    checks: dict[str, Level] = field(default_factory=dict)
    min_temperature_position: int = -1
    max_temperature_position: int = -1
    cells_in_series: int = 96
    modules: int = 8
    capacity_ah: float = 100.0
    data_valid: bool = True


@dataclass(frozen=True)
class LimitRequest:
    """An adapter's restriction of the limits; ``None`` leaves a value as the core set it."""

    max_ccl: float | None = None
    max_dcl: float | None = None
    reason: str = ""
