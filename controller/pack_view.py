"""What the controller knows about the pack in this cycle, derived from the measurements.

Everything here is recomputed from the measured arrays and their timestamps each step, so
staleness can never be forgotten: an element older than its timeout is invalid, whatever
value it holds. A quantity no mapping feeds (``Measurements.available``) is absent rather
than stale: it ages no module and reports no error, so only what is sent can go missing.
"""

from __future__ import annotations

import math
from collections.abc import Collection
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
    cell_voltage_at: np.ndarray  # s, when each cell's value was received
    temperature_at: np.ndarray  # s, when each sensor's value was received
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
        return self.voltage_stats.count == self.cell_voltage_valid.size


class ViewBuilder:
    """Builds the `PackView` of one measurement layout with a fixed number of array passes.

    Validity and age are computed once over the whole flat storage of `Measurements`
    (each element against the timeout of its array, `MeasuredArray.valid`'s rule), and the
    module status arrays are gathered through index tables made at construction, so the
    cost of a view does not grow with the number of arrays, only with their elements.
    """

    def __init__(
        self,
        layout: tuple[tuple[str, int, int], ...],
        available: Collection[str],
        pack: PackConfig,
        ingest: IngestConfig,
    ) -> None:
        self.layout = layout
        self.available = frozenset(available)
        self._pack = pack
        where = {name: (start, size) for name, start, size in layout}
        total = sum(size for _, _, size in layout)
        timeouts = ingest.timeouts
        self._timeout = np.full(total, np.inf)
        for name, (start, size) in where.items():
            self._timeout[start : start + size] = timeouts.get(name, np.inf)
        self._cells = _span(where["cell_voltage"])
        self._temperatures = _span(where["cell_temperature"])
        self._scalars = {
            name: where[name][0] for name in ("pack_current", "pack_voltage", "link_voltage")
        }
        modules = [name for name in MODULE_ARRAYS if name in self.available]
        self._module_rows = _rows(where, modules)
        self._errors = tuple(name for name in MODULE_ERRORS if name in self.available)
        self._error_rows = _rows(where, self._errors)
        status_timeout = timeouts["module_voltage"]
        # the error flags are judged on the status timeout; where their own is the same
        # (the default), the validity computed for every element serves them as it is
        self._status_timeout = (
            None
            if all(timeouts[name] == status_timeout for name in self._errors)
            else status_timeout
        )

    def build(self, measurements: Measurements, now: float) -> PackView:
        pack = self._pack
        value, updated_at = measurements.value, measurements.updated_at
        age = now - updated_at
        valid = measurements.reported_valid & np.isfinite(value)
        valid &= age <= self._timeout
        voltage_valid, temperature_valid = valid[self._cells], valid[self._temperatures]
        cell_voltage, temperature = value[self._cells], value[self._temperatures]
        # A slave is as old as the oldest of its cell readings or status values: one silent
        # multiplexer group is enough to call the module silent.
        oldest = updated_at[self._cells].reshape(pack.modules, pack.cells_per_module).min(axis=1)
        module_age = now - oldest
        if self._module_rows.size:  # a status value that is sent must keep arriving
            np.maximum(module_age, age[self._module_rows].max(axis=0), out=module_age)
        errors: dict[str, np.ndarray] = {}
        if self._errors:
            rows = self._error_rows
            if self._status_timeout is None:
                flagged = (value[rows] > 0.5) & valid[rows]
            else:
                flagged = (value[rows] > 0.5) & measurements.reported_valid[rows]
                flagged &= np.isfinite(value[rows]) & (age[rows] <= self._status_timeout)
            errors = dict(zip(self._errors, flagged, strict=True))
        current, pack_voltage, link_voltage = (
            Scalar(value.item(i), valid.item(i), age.item(i)) for i in self._scalars.values()
        )
        return PackView(
            cell_voltage=cell_voltage,
            cell_voltage_valid=voltage_valid,
            temperature=temperature,
            temperature_valid=temperature_valid,
            cell_voltage_at=updated_at[self._cells],
            temperature_at=updated_at[self._temperatures],
            voltage_stats=ArrayStats.of(cell_voltage, voltage_valid),
            temperature_stats=ArrayStats.of(temperature, temperature_valid),
            current=current,
            pack_voltage=pack_voltage,
            link_voltage=link_voltage,
            module_age=module_age,
            module_errors=errors,
            available=measurements.available,
        )


def _span(where: tuple[int, int]) -> slice:
    start, size = where
    return slice(start, start + size)


def _rows(where: dict[str, tuple[int, int]], names: Collection[str]) -> np.ndarray:
    """(len(names), size) flat indices of equally sized arrays, one row per name."""
    if not names:
        return np.zeros((0, 0), np.intp)
    return np.array([np.arange(where[n][0], where[n][0] + where[n][1]) for n in names], np.intp)


def build_view(
    measurements: Measurements, pack: PackConfig, ingest: IngestConfig, now: float
) -> PackView:
    """The view of ``measurements`` at ``now`` (the controller keeps its `ViewBuilder`)."""
    builder = ViewBuilder(measurements.layout, measurements.available, pack, ingest)
    return builder.build(measurements, now)


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
        cell_voltage_at=view.cell_voltage_at,
        cell_temperature_at=view.temperature_at,
        charge_mode=charge_mode,
        module_open_wire=view.module_errors.get("module_open_wire"),
        module_adc_fault=view.module_errors.get("module_adc_fault"),
        module_self_test_failed=view.module_errors.get("module_self_test_failed"),
        soc=counted.soc_mean if counted is not None and counted.valid else math.nan,
        soc_rested=counted is not None and counted.source is SocSource.OCV,
        current_must_be_zero=contactors_open,
    )
