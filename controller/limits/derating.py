"""Charge/discharge current and voltage limits (CCL, DCL, CVL, DVL) for one cycle.

Each current limit is the configured maximum times the smallest derating fraction of its
tables, times the alarm factor while an alarm is active, and zero on a fault, outside the
closed contactor states (``enabled`` false) or when a quantity a table needs is unknown.
A lower target applies at once; a higher one waits ``hold_s`` after the last cut and then
rises at ``ramp_rate_a_per_s``, so a load is never asked to jump and limits do not chatter
at a table knee.

On a fault CVL drops to the present pack voltage rather than to zero: inverters and
chargers read a pack above CVL as "stop charging", but many treat CVL = 0 as a broken
frame or a pack over-voltage and trip or fall back to their own defaults. Without a valid
pack voltage the fault CVL is the DVL, the lowest value still meaningful to them.

The step works on the min/max statistics the core already computed, so its cost does not
depend on the number of cells.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from controller.limits.config import DirectionTables, LimitsConfig

_NONE = "none"


@dataclass(frozen=True)
class LimitInputs:
    """Pack statistics over valid elements; NaN where unknown (no valid element)."""

    cell_voltage_min: float  # V
    cell_voltage_max: float  # V
    temperature_min: float  # degC
    temperature_max: float  # degC
    soc_min: float  # %
    soc_max: float  # %
    pack_voltage: float  # V, NaN if not valid
    fault: bool = False
    alarm: bool = False
    enabled: bool = True  # contactors closed and staying closed


@dataclass(frozen=True)
class Limits:
    ccl: float  # A, largest allowed charging current
    dcl: float  # A, largest allowed discharging current (positive number)
    cvl: float  # V
    dvl: float  # V
    charge_target: float  # A, CCL before the ramp
    discharge_target: float  # A, DCL before the ramp
    charge_limited_by: str  # table, "fault", "invalid", "disabled" or "none"
    discharge_limited_by: str


@dataclass(frozen=True)
class LimitsState:
    time: float | None
    ccl: float
    dcl: float
    charge_cut_at: float
    discharge_cut_at: float


class Derating:
    """The limit calculation for one configuration."""

    def __init__(self, config: LimitsConfig) -> None:
        self.config = config

    @staticmethod
    def initial_state() -> LimitsState:
        """Zero limits with no hold pending: the first permission ramps up from zero."""
        return LimitsState(None, 0.0, 0.0, -math.inf, -math.inf)

    def targets(self, i: LimitInputs) -> tuple[float, str, float, str]:
        """(CCL target, reason, DCL target, reason) before ramping."""
        cfg = self.config
        if i.fault:
            return 0.0, "fault", 0.0, "fault"
        if not i.enabled:
            return 0.0, "disabled", 0.0, "disabled"
        stats = (i.temperature_min, i.temperature_max, i.cell_voltage_min, i.cell_voltage_max)
        if any(math.isnan(v) for v in stats):
            return 0.0, "invalid", 0.0, "invalid"
        ccl, why_c = _derate(
            cfg.charge, i.temperature_min, i.temperature_max, i.cell_voltage_max, i.soc_max
        )
        dcl, why_d = _derate(
            cfg.discharge, i.temperature_min, i.temperature_max, i.cell_voltage_min, i.soc_min
        )
        if i.alarm and cfg.alarm_factor < 1.0:
            if cfg.alarm_factor <= ccl:
                why_c = "alarm"
            if cfg.alarm_factor <= dcl:
                why_d = "alarm"
            ccl *= cfg.alarm_factor
            dcl *= cfg.alarm_factor
        return ccl * cfg.max_charge_current_a, why_c, dcl * cfg.max_discharge_current_a, why_d

    def step(self, state: LimitsState, i: LimitInputs, now: float) -> tuple[LimitsState, Limits]:
        cfg = self.config
        ccl_t, why_c, dcl_t, why_d = self.targets(i)
        dt = 0.0 if state.time is None else max(0.0, now - state.time)
        ccl, c_cut = self._ramp(state.ccl, ccl_t, state.charge_cut_at, dt, now)
        dcl, d_cut = self._ramp(state.dcl, dcl_t, state.discharge_cut_at, dt, now)
        cvl = cfg.cvl
        if i.fault:
            cvl = min(cvl, i.pack_voltage) if math.isfinite(i.pack_voltage) else cfg.dvl
        limits = Limits(ccl, dcl, cvl, cfg.dvl, ccl_t, dcl_t, why_c, why_d)
        return LimitsState(now, ccl, dcl, c_cut, d_cut), limits

    def _ramp(
        self, previous: float, target: float, cut_at: float, dt: float, now: float
    ) -> tuple[float, float]:
        if target < previous:
            return target, now
        if target == previous or now - cut_at < self.config.hold_s:
            return previous, cut_at
        return min(target, previous + self.config.ramp_rate_a_per_s * dt), cut_at


def _derate(
    tables: DirectionTables, t_min: float, t_max: float, cell_v: float, soc: float
) -> tuple[float, str]:
    """Smallest fraction of the direction's tables and the table that set it."""
    fraction, why = 1.0, _NONE
    for name, value in (
        ("temperature", min(tables.temperature(t_min), tables.temperature(t_max))),
        ("cell_voltage", tables.cell_voltage(cell_v)),
    ):
        if value < fraction:
            fraction, why = value, name
    if tables.soc is not None:
        if math.isnan(soc):
            return 0.0, "invalid"
        value = tables.soc(soc)
        if value < fraction:
            fraction, why = value, "soc"
    return fraction, why
