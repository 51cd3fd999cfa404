"""What the controller knows about the pack in this cycle, derived from the measurements.

Everything here is recomputed from the measured arrays and their timestamps each step, so
staleness can never be forgotten: an element older than its timeout is invalid, whatever
value it holds. A quantity no mapping feeds (``Measurements.available``) is absent rather
than stale: it ages no module and reports no error, so only what is sent can go missing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from controller.config.ingest import MODULE_ARRAYS, IngestConfig
from controller.config.pack import PackConfig
from controller.limits.soc import SocSource, SocState
from controller.measurements import ArrayStats, Measurements
from controller.protection import ProtectionInputs

MODULE_ERRORS = ("module_open_wire", "module_adc_fault", "module_self_test_failed")


@dataclass(frozen=True)
class Scalar:
    value: float
    valid: bool
    age: float


@dataclass(frozen=True)
class PackView:
    cell_voltage: np.ndarray
    cell_voltage_valid: np.ndarray
    temperature: np.ndarray
    temperature_valid: np.ndarray
    voltage_stats: ArrayStats
    temperature_stats: ArrayStats
    current: Scalar
    pack_voltage: Scalar
    link_voltage: Scalar
    module_age: np.ndarray
    module_errors: dict[str, np.ndarray]  # only the error flags some source sends
    available: frozenset[str]  # measured arrays some source feeds

    @property
    def all_cells_valid(self) -> bool:
        return bool(self.cell_voltage_valid.all())


def _scalar(measurements: Measurements, name: str, now: float, timeout: float) -> Scalar:
    """One-element arrays read as Python floats: numpy calls on one element cost more than
    the arithmetic (the same rule as `MeasuredArray.valid`)."""
    array = measurements[name]
    value = float(array.value[0])
    age = now - float(array.updated_at[0])
    valid = bool(array.reported_valid[0]) and math.isfinite(value) and age <= timeout
    return Scalar(value=value, valid=valid, age=age)


def build_view(
    measurements: Measurements, pack: PackConfig, ingest: IngestConfig, now: float
) -> PackView:
    timeouts = ingest.timeouts
    cells = measurements["cell_voltage"]
    temps = measurements["cell_temperature"]
    voltage_valid = cells.valid(now, timeouts["cell_voltage"])
    temperature_valid = temps.valid(now, timeouts["cell_temperature"])
    # A slave is as old as the oldest of its cell readings or status values: one silent
    # multiplexer group is enough to call the module silent.
    oldest = cells.updated_at.reshape(pack.modules, pack.cells_per_module).min(axis=1)
    module_age = now - oldest
    available = measurements.available
    for name in MODULE_ARRAYS:
        if name in available:  # a status value that is sent must keep arriving
            np.maximum(module_age, measurements[name].age(now), out=module_age)
    status_timeout = timeouts["module_voltage"]
    errors = {
        name: (measurements[name].value > 0.5) & measurements[name].valid(now, status_timeout)
        for name in MODULE_ERRORS
        if name in available
    }
    return PackView(
        cell_voltage=cells.value,
        cell_voltage_valid=voltage_valid,
        temperature=temps.value,
        temperature_valid=temperature_valid,
        voltage_stats=ArrayStats.of(cells.value, voltage_valid),
        temperature_stats=ArrayStats.of(temps.value, temperature_valid),
        current=_scalar(measurements, "pack_current", now, timeouts["pack_current"]),
        pack_voltage=_scalar(measurements, "pack_voltage", now, timeouts["pack_voltage"]),
        link_voltage=_scalar(measurements, "link_voltage", now, timeouts["link_voltage"]),
        module_age=module_age,
        module_errors=errors,
        available=available,
    )


def protection_inputs(
    view: PackView,
    ems_age: float,
    charge_mode: bool,
    soc: SocState | None = None,
    contactors_open: bool = False,
) -> ProtectionInputs:
    """What protection judges: the view, plus the previous cycle's counted SOC (``soc``'s
    reference estimate, judged against the OCV at rests) and whether the contactors are
    confirmed open (then no current can flow)."""
    counted = soc.counting if soc is not None else None
    return ProtectionInputs(
        cell_voltage=view.cell_voltage,
        cell_voltage_valid=view.cell_voltage_valid,
        cell_temperature=view.temperature,
        cell_temperature_valid=view.temperature_valid,
        pack_current=view.current.value,
        pack_current_valid=view.current.valid,
        pack_voltage=view.pack_voltage.value,
        pack_voltage_valid=view.pack_voltage.valid,
        cell_voltage_sum=view.voltage_stats.total if view.voltage_stats.valid else 0.0,
        all_cells_valid=view.all_cells_valid,
        module_age=view.module_age,
        current_sensor_age=view.current.age,
        ems_request_age=ems_age,
        charge_mode=charge_mode,
        module_open_wire=view.module_errors.get("module_open_wire"),
        module_adc_fault=view.module_errors.get("module_adc_fault"),
        module_self_test_failed=view.module_errors.get("module_self_test_failed"),
        soc=counted.soc_mean if counted is not None and counted.valid else math.nan,
        soc_rested=counted is not None and counted.source is SocSource.OCV,
        current_must_be_zero=contactors_open,
    )
