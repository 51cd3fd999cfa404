"""How long a violation first seen in a step has already lasted: the age of its sample.

A check judges the latest sample of its quantity, and that sample arrived before the step
that judges it: up to a cycle earlier, more when the reader was late. Counting the set delay
from the sample's arrival instead of from the step bounds the reaction by the set delay plus
one cycle, whatever the phase of the frame against the cycle. Only directly measured
quantities are dated (cell voltages, temperatures, the pack current); derived values
(spreads, plausibility, timeouts) and a value that violates by being unknown start at the
step. The credit never exceeds the time since
the previous step: a violation is never dated before a step that judged its quantity healthy.
"""

from __future__ import annotations

import numpy as np

from controller.protection.checks import Check
from controller.protection.inputs import ProtectionInputs

_CELL = (Check.CELL_OVERVOLTAGE, Check.CELL_UNDERVOLTAGE)
_SENSOR = (
    Check.OVERTEMPERATURE_CHARGE,
    Check.OVERTEMPERATURE_DISCHARGE,
    Check.UNDERTEMPERATURE_CHARGE,
    Check.UNDERTEMPERATURE_DISCHARGE,
)
_CURRENT = (Check.OVERCURRENT_CHARGE, Check.OVERCURRENT_DISCHARGE)


def sample_ages(
    check: Check, inputs: ProtectionInputs, local: np.ndarray, now: float
) -> np.ndarray | None:
    """Seconds since the samples of ``check``'s elements ``local`` arrived; None where the
    check's value has no sample time of its own."""
    if check in _CURRENT:  # a current not valid violates from the step that finds it so
        valid = inputs.pack_current_valid and np.isfinite(inputs.pack_current)
        return np.full(local.size, inputs.current_sensor_age) if valid else None
    at = (
        inputs.cell_voltage_at
        if check in _CELL
        else inputs.cell_temperature_at
        if check in _SENSOR
        else None
    )
    return None if at is None else now - at[local]


def credit_us(ages: np.ndarray, dt_us: int) -> np.ndarray:
    """Whole microseconds of each age, within ``0..dt_us``; an unknown age credits nothing."""
    us = np.round(np.where(np.isfinite(ages), ages, 0.0) * 1e6)
    return np.clip(us, 0, dt_us).astype(np.int64)
