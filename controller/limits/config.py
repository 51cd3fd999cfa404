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
[soc.ocv]                         # SOC in % -> open-circuit cell voltage; both increasing
x = [0, 10, 50, 90, 100]
y = [3.0, 3.45, 3.68, 4.05, 4.18]
```
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from controller.config import fields
from controller.errors import ConfigError

_DIRECTION_KEYS = {"temperature", "cell_voltage", "soc"}


@dataclass(frozen=True)
class Curve:
    """A piecewise-linear table, held as arrays for numpy.interp (clamped at the ends)."""

    x: np.ndarray
    y: np.ndarray

    def __call__(self, value: float) -> float:
        return float(np.interp(value, self.x, self.y))


@dataclass(frozen=True)
class DirectionTables:
    """Derating fractions (0..1) of one direction; ``soc`` None: no SOC derating."""

    temperature: Curve
    cell_voltage: Curve
    soc: Curve | None


@dataclass(frozen=True)
class LimitsConfig:
    cells_in_series: int
    max_charge_current_a: float
    max_discharge_current_a: float
    charge_cell_voltage_v: float
    discharge_cell_voltage_v: float
    alarm_factor: float
    ramp_rate_a_per_s: float
    hold_s: float
    charge: DirectionTables
    discharge: DirectionTables

    @property
    def cvl(self) -> float:
        return self.cells_in_series * self.charge_cell_voltage_v

    @property
    def dvl(self) -> float:
        return self.cells_in_series * self.discharge_cell_voltage_v


@dataclass(frozen=True)
class SocConfig:
    ocv: Curve  # x: SOC %, y: open-circuit cell voltage V, both strictly increasing
    capacity_ah: float
    rest_current_a: float
    rest_time_s: float


def _fraction_curve(data: Mapping[str, Any], key: str, path: str) -> Curve:
    xs, ys = fields.curve(data, key, path)
    if any(not 0.0 <= y <= 1.0 for y in ys):
        raise ConfigError(f"{fields.join(path, key)}.y", "fractions must lie in [0, 1]")
    return Curve(np.array(xs), np.array(ys))


def _direction(data: Mapping[str, Any], key: str, path: str) -> DirectionTables:
    sub = fields.table(data, key, path)
    where = fields.join(path, key)
    fields.unknown_keys(sub, _DIRECTION_KEYS, where)
    return DirectionTables(
        temperature=_fraction_curve(sub, "temperature", where),
        cell_voltage=_fraction_curve(sub, "cell_voltage", where),
        soc=_fraction_curve(sub, "soc", where) if "soc" in sub else None,
    )


def parse_limits(data: Mapping[str, Any], path: str = "limits") -> LimitsConfig:
    """Validate a ``[limits]`` table; every key but the SOC tables is required."""
    known = set(LimitsConfig.__dataclass_fields__)
    fields.unknown_keys(data, known, path)

    def positive(key: str, **kw: float) -> float:
        return fields.number(data, key, path, minimum=0.0, **kw)

    charge_v = fields.number(data, "charge_cell_voltage_v", path, minimum=0.5, maximum=6.0)
    discharge_v = fields.number(data, "discharge_cell_voltage_v", path, minimum=0.5, maximum=6.0)
    if discharge_v >= charge_v:
        raise ConfigError(
            fields.join(path, "discharge_cell_voltage_v"),
            f"{discharge_v} must be below charge_cell_voltage_v {charge_v}",
        )
    return LimitsConfig(
        cells_in_series=fields.integer(data, "cells_in_series", path, minimum=1, maximum=1000),
        max_charge_current_a=positive("max_charge_current_a"),
        max_discharge_current_a=positive("max_discharge_current_a"),
        charge_cell_voltage_v=charge_v,
        discharge_cell_voltage_v=discharge_v,
        alarm_factor=positive("alarm_factor", maximum=1.0),
        ramp_rate_a_per_s=fields.number(data, "ramp_rate_a_per_s", path, minimum=1e-3),
        hold_s=positive("hold_s", maximum=3600.0),
        charge=_direction(data, "charge", path),
        discharge=_direction(data, "discharge", path),
    )


def parse_soc(data: Mapping[str, Any], path: str = "soc") -> SocConfig:
    """Validate a ``[soc]`` table; the OCV table must rise strictly to be invertible."""
    fields.unknown_keys(data, {"ocv", "capacity_ah", "rest_current_a", "rest_time_s"}, path)
    xs, ys = fields.curve(data, "ocv", path)
    where = fields.join(path, "ocv")
    if xs[0] != 0.0 or xs[-1] != 100.0:
        raise ConfigError(f"{where}.x", "must run from 0 to 100 (% SOC)")
    if any(b <= a for a, b in zip(ys, ys[1:], strict=False)):
        raise ConfigError(f"{where}.y", "must be strictly increasing (the table is inverted)")
    return SocConfig(
        ocv=Curve(np.array(xs), np.array(ys)),
        capacity_ah=fields.number(data, "capacity_ah", path, minimum=0.001),
        rest_current_a=fields.number(data, "rest_current_a", path, minimum=0.0),
        rest_time_s=fields.number(data, "rest_time_s", path, minimum=0.0, maximum=86400.0),
    )
