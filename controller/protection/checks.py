"""The protection checks: names, status-frame bits, direction and what they watch.

Bit assignment in the fault bitfield is the definition order below and is stable: new checks
are only ever appended.

| bit | check | element | unit |
|---|---|---|---|
| 0 | cell_overvoltage | cell | V |
| 1 | cell_undervoltage | cell | V |
| 2 | overtemperature_charge | sensor | degC |
| 3 | overtemperature_discharge | sensor | degC |
| 4 | undertemperature_charge | sensor | degC |
| 5 | undertemperature_discharge | sensor | degC |
| 6 | overcurrent_charge | pack | A (charge current) |
| 7 | overcurrent_discharge | pack | A (discharge current, positive) |
| 8 | cell_voltage_spread | pack | V (max - min of valid cells) |
| 9 | slave_timeout | module | s since the last valid frame |
| 10 | current_sensor_timeout | pack | s since the last valid frame |
| 11 | pack_voltage_plausibility | pack | ratio (abs(U1 - sum of cells) / combined accuracy) |
| 12 | ems_timeout | pack | s since the last state request |
| 13 | invalid_measurement | cell, sensor, module | flag |
| 14 | the plausibility checks below share one bit | | |

The plausibility checks (`controller/protection/plausibility.py`) catch readings that are
valid but wrong; they share bit 14 so that the contactor faults keep bits 16 and up:

| check | element | unit |
|---|---|---|
| current_sensor_stuck | pack | A (current change the cells show while the reading stood) |
| current_voltage_consistency | pack | ratio (missed or added share of the current change) |
| current_at_open_contactors | pack | A (reading while no current can flow) |
| temperature_stuck | sensor | K (change of its neighbours while it stood) |
| temperature_module_spread | module | K (max - min of a module's sensors) |
| temperature_rate | sensor | K/s |
| cell_voltage_deviation | cell | V (from its module's median, at rest) |
| cell_resistance_outlier | cell | ratio (voltage step off the module's median, per R0) |
| cell_voltage_stuck | cell | V (move of its module's median while it stood) |
| soc_ocv_disagreement | pack | % (counted SOC against the rested OCV) |
| current_counter_disagreement | pack | ratio (integrated readings against the sensor's counter) |
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, StrEnum


class Check(StrEnum):
    """A protection check; the value is its configuration key and status name."""

    CELL_OVERVOLTAGE = "cell_overvoltage"
    CELL_UNDERVOLTAGE = "cell_undervoltage"
    OVERTEMPERATURE_CHARGE = "overtemperature_charge"
    OVERTEMPERATURE_DISCHARGE = "overtemperature_discharge"
    UNDERTEMPERATURE_CHARGE = "undertemperature_charge"
    UNDERTEMPERATURE_DISCHARGE = "undertemperature_discharge"
    OVERCURRENT_CHARGE = "overcurrent_charge"
    OVERCURRENT_DISCHARGE = "overcurrent_discharge"
    CELL_VOLTAGE_SPREAD = "cell_voltage_spread"
    SLAVE_TIMEOUT = "slave_timeout"
    CURRENT_SENSOR_TIMEOUT = "current_sensor_timeout"
    PACK_VOLTAGE_PLAUSIBILITY = "pack_voltage_plausibility"
    EMS_TIMEOUT = "ems_timeout"
    INVALID_MEASUREMENT = "invalid_measurement"
    CURRENT_SENSOR_STUCK = "current_sensor_stuck"
    CURRENT_VOLTAGE_CONSISTENCY = "current_voltage_consistency"
    CURRENT_AT_OPEN_CONTACTORS = "current_at_open_contactors"
    TEMPERATURE_STUCK = "temperature_stuck"
    TEMPERATURE_MODULE_SPREAD = "temperature_module_spread"
    TEMPERATURE_RATE = "temperature_rate"
    CELL_VOLTAGE_DEVIATION = "cell_voltage_deviation"
    CELL_RESISTANCE_OUTLIER = "cell_resistance_outlier"
    CELL_VOLTAGE_STUCK = "cell_voltage_stuck"
    SOC_OCV_DISAGREEMENT = "soc_ocv_disagreement"
    CURRENT_COUNTER_DISAGREEMENT = "current_counter_disagreement"

    @property
    def bit(self) -> int:
        """Position of this check in the fault bitfield (plausibility checks share one)."""
        return min(_ORDER.index(self), PLAUSIBILITY_BIT)


_ORDER = tuple(Check)
PLAUSIBILITY_BIT = 14
PLAUSIBILITY = _ORDER[PLAUSIBILITY_BIT:]  # each reports the levels its severity calls for


class Direction(Enum):
    """How a value violates a threshold."""

    HIGH = "high"  # violated above the threshold; clears at threshold - hysteresis
    LOW = "low"  # violated below the threshold; clears at threshold + hysteresis
    FLAG = "flag"  # violated while the flag is set; no threshold


class Window(Enum):
    """When a check applies: always, or only in one current direction."""

    ALWAYS = "always"
    CHARGE = "charge"
    DISCHARGE = "discharge"


@dataclass(frozen=True)
class CheckSpec:
    direction: Direction
    element: str | None  # "cell", "sensor", "module"; None for one pack-level value
    unit: str
    minimum: float | None = None  # lowest threshold that makes physical sense
    window: Window = Window.ALWAYS


SPECS: dict[Check, CheckSpec] = {
    Check.CELL_OVERVOLTAGE: CheckSpec(Direction.HIGH, "cell", "V", 0.0),
    Check.CELL_UNDERVOLTAGE: CheckSpec(Direction.LOW, "cell", "V", 0.0),
    Check.OVERTEMPERATURE_CHARGE: CheckSpec(
        Direction.HIGH, "sensor", "degC", -273.15, Window.CHARGE
    ),
    Check.OVERTEMPERATURE_DISCHARGE: CheckSpec(
        Direction.HIGH, "sensor", "degC", -273.15, Window.DISCHARGE
    ),
    Check.UNDERTEMPERATURE_CHARGE: CheckSpec(
        Direction.LOW, "sensor", "degC", -273.15, Window.CHARGE
    ),
    Check.UNDERTEMPERATURE_DISCHARGE: CheckSpec(
        Direction.LOW, "sensor", "degC", -273.15, Window.DISCHARGE
    ),
    Check.OVERCURRENT_CHARGE: CheckSpec(Direction.HIGH, None, "A", 0.0),
    Check.OVERCURRENT_DISCHARGE: CheckSpec(Direction.HIGH, None, "A", 0.0),
    Check.CELL_VOLTAGE_SPREAD: CheckSpec(Direction.HIGH, None, "V", 0.0),
    Check.SLAVE_TIMEOUT: CheckSpec(Direction.HIGH, "module", "s", 0.0),
    Check.CURRENT_SENSOR_TIMEOUT: CheckSpec(Direction.HIGH, None, "s", 0.0),
    Check.PACK_VOLTAGE_PLAUSIBILITY: CheckSpec(Direction.HIGH, None, "ratio", 0.0),
    Check.EMS_TIMEOUT: CheckSpec(Direction.HIGH, None, "s", 0.0),
    Check.INVALID_MEASUREMENT: CheckSpec(Direction.FLAG, "cell", "flag"),
    Check.CURRENT_SENSOR_STUCK: CheckSpec(Direction.HIGH, None, "A", 0.0),
    Check.CURRENT_VOLTAGE_CONSISTENCY: CheckSpec(Direction.HIGH, None, "ratio", 0.0),
    Check.CURRENT_AT_OPEN_CONTACTORS: CheckSpec(Direction.HIGH, None, "A", 0.0),
    Check.TEMPERATURE_STUCK: CheckSpec(Direction.HIGH, "sensor", "K", 0.0),
    Check.TEMPERATURE_MODULE_SPREAD: CheckSpec(Direction.HIGH, "module", "K", 0.0),
    Check.TEMPERATURE_RATE: CheckSpec(Direction.HIGH, "sensor", "K/s", 0.0),
    Check.CELL_VOLTAGE_DEVIATION: CheckSpec(Direction.HIGH, "cell", "V", 0.0),
    Check.CELL_RESISTANCE_OUTLIER: CheckSpec(Direction.HIGH, "cell", "ratio", 0.0),
    Check.CELL_VOLTAGE_STUCK: CheckSpec(Direction.HIGH, "cell", "V", 0.0),
    Check.SOC_OCV_DISAGREEMENT: CheckSpec(Direction.HIGH, None, "%", 0.0),
    Check.CURRENT_COUNTER_DISAGREEMENT: CheckSpec(Direction.HIGH, None, "ratio", 0.0),
}

# Pairs (low check, high check) whose loosest thresholds must leave an operating window.
WINDOWS: tuple[tuple[Check, Check], ...] = (
    (Check.CELL_UNDERVOLTAGE, Check.CELL_OVERVOLTAGE),
    (Check.UNDERTEMPERATURE_CHARGE, Check.OVERTEMPERATURE_CHARGE),
    (Check.UNDERTEMPERATURE_DISCHARGE, Check.OVERTEMPERATURE_DISCHARGE),
)
