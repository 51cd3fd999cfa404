"""What protection reads each cycle, filled by the core from the pack state.

Validity flags are the core's verdict after staleness filtering: protection never trusts a
value whose flag is false. Ages are seconds since the last valid frame (``inf`` if never).

Current direction: the pack is taken to be charging when the measured current is valid and
above ``charge_detect_current`` (configuration) or when ``charge_mode`` is set (the core
knows the contactors are in their charge configuration or a charger is connected). At rest
and while discharging the discharge temperature windows apply. While the current is not
valid the direction is unknown and both windows apply, so the stricter one decides.

For the plausibility checks: ``soc`` is the SOC estimate of the previous cycle (mean cell,
%) and ``soc_rested`` says it was just read from the OCV table at rest; ``current_must_be_zero``
is set while the contactors are confirmed open; ``cell_resistance`` is each cell's R0 (ohm)
as the state-of-health estimator measured it, NaN where not measured yet, and
``cell_resistance_25c`` the SOC filter's R0 of each cell at 25 degC; None for either: the
configured nominal R0 (see `controller.protection.resistance`). ``charge_counter`` is the
current sensor's own charge counter where its mapping has one
(`controller.protection.counter_plausibility`). ``cell_voltage_at`` and
``cell_temperature_at`` date each value, so that a violation counts from the arrival of the
sample that shows it (`controller.protection.onset`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ProtectionInputs:
    cell_voltage: np.ndarray  # (n,) float64, V
    cell_voltage_valid: np.ndarray  # (n,) bool; false for stale, flagged or open-wire cells
    cell_temperature: np.ndarray  # (m,) float64, degC
    cell_temperature_valid: np.ndarray  # (m,) bool
    pack_current: float  # A, positive = charging
    pack_current_valid: bool
    pack_voltage: float  # V, current sensor U1
    pack_voltage_valid: bool
    cell_voltage_sum: float  # V, sum of the valid cell voltages
    all_cells_valid: bool
    module_age: np.ndarray  # (modules,) float64, s since each slave's last valid frame
    current_sensor_age: float  # s
    ems_request_age: float  # s
    charge_mode: bool = False
    module_open_wire: np.ndarray | None = None  # (modules,) bool
    module_adc_fault: np.ndarray | None = None  # (modules,) bool
    module_self_test_failed: np.ndarray | None = None  # (modules,) bool
    soc: float = math.nan  # %, mean cell, as estimated in the previous cycle
    soc_rested: bool = False  # that SOC was read from the OCV table at rest
    current_must_be_zero: bool = False  # contactors confirmed open
    cell_resistance: np.ndarray | None = None  # (n,) ohm, NaN: not measured
    cell_resistance_25c: np.ndarray | None = None  # (n,) ohm at 25 degC, SOC filter
    charge_counter: float = math.nan  # As, the current sensor's own counter; NaN: none valid
    charge_counter_at: float = -math.inf  # s, when that counter frame arrived
    cell_voltage_at: np.ndarray | None = None  # (n,) s, when each value arrived; None: unknown
    cell_temperature_at: np.ndarray | None = None  # (m,) s, when each value arrived

    def __post_init__(self) -> None:
        if self.cell_voltage.shape != self.cell_voltage_valid.shape:
            raise ValueError("cell_voltage and cell_voltage_valid differ in shape")
        if self.cell_temperature.shape != self.cell_temperature_valid.shape:
            raise ValueError("cell_temperature and cell_temperature_valid differ in shape")
        for bits in (self.module_open_wire, self.module_adc_fault, self.module_self_test_failed):
            if bits is not None and bits.shape != self.module_age.shape:
                raise ValueError("module error bits and module_age differ in shape")
        for r in (self.cell_resistance, self.cell_resistance_25c):
            if r is not None and r.shape != self.cell_voltage.shape:
                raise ValueError("cell resistances and cell_voltage differ in shape")

    def module_error(self) -> np.ndarray:
        """Per module: any error bit reported (open wire, ADC fault, failed self test)."""
        error = np.zeros(self.module_age.shape, bool)
        for bits in (self.module_open_wire, self.module_adc_fault, self.module_self_test_failed):
            if bits is not None:
                error = error | bits
        return error
