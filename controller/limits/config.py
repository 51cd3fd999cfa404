"""Current/voltage limit and SOC tunables: derating tables, ramp, OCV table.

```toml
[limits]
cells_in_series = 96
max_charge_current_a = 100.0
max_discharge_current_a = 200.0
charge_cell_voltage_v = 4.15      # CVL = cells_in_series * this
discharge_cell_voltage_v = 3.0    # DVL = cells_in_series * this
alarm_factor = 0.5                # an active alarm multiplies both current limits by this
ramp_rate_a_per_s = 5.0           # increases ramp at this rate ...
hold_s = 30.0                     # ... once this long has passed since the last cut

[limits.charge.temperature]       # fraction of the maximum current; evaluated at the
x = [0, 5, 10, 40, 45, 50]        # lowest and the highest cell temperature
y = [0, 0.2, 1, 1, 0.5, 0]
[limits.charge.cell_voltage]      # over the highest cell voltage
[limits.charge.soc]               # over the highest cell SOC (optional)
[limits.discharge.temperature]
[limits.discharge.cell_voltage]   # over the lowest cell voltage
[limits.discharge.soc]            # over the lowest cell SOC (optional)

[soc]
capacity_ah = 100.0
rest_current_a = 2.0              # |I| below this counts as rest ...
rest_time_s = 900.0               # ... and after this long the OCV table resets the SOC
cell_type = "nmc"                 # OCV table and hysteresis from dbc/chemistry.toml
r0_mohm = 1.2                     # cell model at 25 degC until [soh] measures the cell
r1_mohm = 0.8
tau_s = 30.0
valid_uncertainty_percent = 3.0   # SOC published once every cell is known this well
[soc.ocv]                         # optional: SOC in % -> equilibrium OCV; both increasing
x = [0, 10, 50, 90, 100]
y = [3.0, 3.45, 3.68, 4.05, 4.18]
```
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from controller.config.declare import load, setting
from controller.errors import ConfigError
from dbc.chemistry import ocv_table


@dataclass(frozen=True, eq=False)
class Curve:
    """A piecewise-linear table ``{x = [...], y = [...]}``, clamped at the ends.

    Declared as arrays of numbers; held as read-only numpy arrays for ``numpy.interp``.
    """

    x: tuple[float, ...] = setting(min_items=1, doc="breakpoints, strictly increasing")
    y: tuple[float, ...] = setting(min_items=1, doc="values at the breakpoints")

    def __post_init__(self) -> None:
        for name in ("x", "y"):
            values = np.array(getattr(self, name), float)
            values.flags.writeable = False
            object.__setattr__(self, name, values)
        # plain floats for one value at a time: numpy's call overhead is most of the cost
        object.__setattr__(self, "_points", (self.x.tolist(), self.y.tolist()))

    def validate(self, path: str) -> None:
        if len(self.x) != len(self.y):
            raise ConfigError(path, f"x has {len(self.x)} points but y has {len(self.y)}")
        if bool(np.any(np.diff(self.x) <= 0)):
            raise ConfigError(f"{path}.x", "must be strictly increasing")

    def __call__(self, value: float) -> float:
        """``numpy.interp`` of one value, computed as numpy computes it (the same float)."""
        if type(value) is not float or value != value:  # arrays, numpy scalars, NaN
            return float(np.interp(value, self.x, self.y))
        xs, ys = self._points
        if value <= xs[0]:
            return ys[0]
        if value >= xs[-1]:
            return ys[-1]
        j = bisect_right(xs, value) - 1
        slope = (ys[j + 1] - ys[j]) / (xs[j + 1] - xs[j])
        return slope * (value - xs[j]) + ys[j]


@dataclass(frozen=True, eq=False)
class FractionCurve(Curve):
    """A derating table: y is the fraction (0..1) of the maximum current."""

    def validate(self, path: str) -> None:
        super().validate(path)
        if bool(np.any((self.y < 0.0) | (self.y > 1.0))):
            raise ConfigError(f"{path}.y", "fractions must lie in [0, 1]")


@dataclass(frozen=True, eq=False)
class OcvCurve(Curve):
    """SOC in % (0 to 100) -> open-circuit cell voltage, rising so that it can be inverted."""

    def validate(self, path: str) -> None:
        super().validate(path)
        if self.x[0] != 0.0 or self.x[-1] != 100.0:
            raise ConfigError(f"{path}.x", "must run from 0 to 100 (% SOC)")
        if bool(np.any(np.diff(self.y) <= 0)):
            raise ConfigError(f"{path}.y", "must be strictly increasing (the table is inverted)")


@dataclass(frozen=True)
class DirectionTables:
    """Derating fractions (0..1) of one direction; ``soc`` None: no SOC derating."""

    temperature: FractionCurve = setting(
        doc="over the lowest and the highest cell temperature (degC)"
    )
    cell_voltage: FractionCurve = setting(doc="over the highest (charge) or lowest cell voltage")
    soc: FractionCurve | None = setting(None, doc="over the highest or lowest cell SOC (%)")


@dataclass(frozen=True)
class LimitsConfig:
    cells_in_series: int = setting(ge=1, le=1000, doc="cells in series (default: [pack])")
    max_charge_current_a: float = setting(ge=0.0, unit="A", doc="charge current limit")
    max_discharge_current_a: float = setting(ge=0.0, unit="A", doc="discharge current limit")
    charge_cell_voltage_v: float = setting(
        ge=0.5, le=6.0, unit="V", doc="CVL = cells_in_series x this"
    )
    discharge_cell_voltage_v: float = setting(
        ge=0.5, le=6.0, unit="V", doc="DVL = cells_in_series x this"
    )
    alarm_factor: float = setting(
        ge=0.0, le=1.0, doc="an active alarm multiplies both current limits by this"
    )
    ramp_rate_a_per_s: float = setting(ge=1e-3, unit="A/s", doc="increases ramp at this rate")
    hold_s: float = setting(
        ge=0.0, le=3600.0, unit="s", doc="... once this long has passed since the last cut"
    )
    charge: DirectionTables = setting(doc="derating tables of the charge current")
    discharge: DirectionTables = setting(doc="derating tables of the discharge current")

    def validate(self, path: str) -> None:
        if self.discharge_cell_voltage_v >= self.charge_cell_voltage_v:
            raise ConfigError(
                f"{path}.discharge_cell_voltage_v",
                f"{self.discharge_cell_voltage_v} must be below charge_cell_voltage_v "
                f"{self.charge_cell_voltage_v}",
            )

    @property
    def cvl(self) -> float:
        return self.cells_in_series * self.charge_cell_voltage_v

    @property
    def charge_end_cell_voltage(self) -> float:
        """Where a charger that follows the CCL ends the charge: the lowest highest-cell
        voltage at which the charge cell-voltage table is zero (infinite if it never is).

        The fractions are linear between breakpoints and never negative, so the first zero
        is a breakpoint.
        """
        table = self.charge.cell_voltage
        zeros = np.flatnonzero(table.y == 0.0)
        return float(table.x[zeros[0]]) if zeros.size else math.inf

    @property
    def dvl(self) -> float:
        return self.cells_in_series * self.discharge_cell_voltage_v


@dataclass(frozen=True)
class SocConfig:
    capacity_ah: float = setting(ge=0.001, unit="Ah", doc="capacity (default: [pack])")
    rest_current_a: float = setting(ge=0.0, unit="A", doc="|I| below this counts as rest ...")
    rest_time_s: float = setting(
        ge=0.0, le=86400.0, unit="s", doc="... and after this long the OCV table resets the SOC"
    )
    cell_type: Literal["nmc", "lfp", "lto"] = setting(
        "nmc", doc="cell type: its OCV table and hysteresis from dbc/chemistry.toml"
    )
    ocv: OcvCurve | None = setting(
        None, doc="x: SOC %, y: equilibrium open-circuit cell voltage V (default: cell_type's)"
    )
    hysteresis: Curve | None = setting(
        None, doc="x: SOC %, y: half the charge/discharge OCV gap V (default: cell_type's)"
    )
    hysteresis_rate: float | None = setting(
        None, gt=0.0, doc="branch change per charge over capacity (default: cell_type's)"
    )
    r0_mohm: float = setting(
        1.2, gt=0.0, unit="mOhm", doc="ohmic resistance at 25 degC until [soh] measures it"
    )
    r1_mohm: float = setting(0.8, ge=0.0, unit="mOhm", doc="polarisation resistance at 25 degC")
    tau_s: float = setting(30.0, gt=0.0, unit="s", doc="polarisation time constant")
    activation_k: float = setting(
        3500.0, ge=0.0, unit="K", doc="resistance x exp(this x (1/T - 1/298.15 K))"
    )
    current_accuracy_a: float = setting(
        0.5, ge=0.0, unit="A", doc="current sensor offset the SOC may drift by"
    )
    voltage_accuracy_mv: float = setting(
        3.0, gt=0.0, unit="mV", doc="cell voltage and OCV table error together"
    )
    resistance_accuracy_percent: float = setting(
        20.0, ge=0.0, le=100.0, unit="%", doc="error of the model's resistance"
    )
    initial_uncertainty_percent: float = setting(
        30.0, gt=0.0, le=100.0, unit="%", doc="SOC standard deviation with nothing known"
    )
    restored_uncertainty_percent: float = setting(
        2.0, gt=0.0, le=100.0, unit="%", doc="... of a SOC restored after a restart"
    )
    valid_uncertainty_percent: float = setting(
        3.0, gt=0.0, le=50.0, unit="%", doc="SOC published once every cell's is below this"
    )
    steady_band_a: float = setting(
        5.0, gt=0.0, unit="A", doc="a cell reading corrects the SOC once the current stayed"
    )
    settle_ms: float = setting(
        200.0, ge=0.0, le=10_000.0, unit="ms", doc="... within this band for this long"
    )

    def __post_init__(self) -> None:
        table = ocv_table(self.cell_type)
        if self.ocv is None:
            object.__setattr__(self, "ocv", OcvCurve(table.soc, table.ocv_v))
        if self.hysteresis is None:
            object.__setattr__(self, "hysteresis", Curve(table.soc, table.hysteresis_v))
        if self.hysteresis_rate is None:
            object.__setattr__(self, "hysteresis_rate", table.hysteresis_rate)

    def validate(self, path: str) -> None:
        if bool(np.any(self.hysteresis.y < 0.0)):
            raise ConfigError(f"{path}.hysteresis.y", "must not be negative")


def parse_limits(data: Mapping[str, Any], path: str = "limits") -> LimitsConfig:
    """Validate a ``[limits]`` table; every key but the SOC tables is required."""
    return load(LimitsConfig, data, path)


def parse_soc(data: Mapping[str, Any], path: str = "soc") -> SocConfig:
    """Validate a ``[soc]`` table; the OCV table must rise strictly to be invertible."""
    return load(SocConfig, data, path)
