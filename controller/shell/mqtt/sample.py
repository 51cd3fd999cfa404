"""What telemetry publishes, read from the controller's state in a few array reductions.

`take` runs on the control thread when a sample is due, so it only copies what it needs
(whole-array reductions per module, no loop over cells); formatting and publishing happen on
the telemetry thread. Values the controller does not hold as valid now are None (JSON null),
never a number that looks measured.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from controller.adapters.base import Level
from controller.config.loader import ControllerConfig
from controller.contactors.machine import ContactorState, diagnosis_of

STAGE_EXCEPTION = "stage_exception"  # the catalogue entry of a stage that raised


@dataclass(frozen=True)
class Modules:
    """Per module: cell voltage min/max/mean (V) and temperature min/max (degC), NaN unknown."""

    cell_min: np.ndarray
    cell_max: np.ndarray
    cell_mean: np.ndarray
    temperature_min: np.ndarray
    temperature_max: np.ndarray


@dataclass(frozen=True)
class Sample:
    """One telemetry sample; ``time`` is the control loop's clock."""

    time: float
    state: str  # the contactor sequence state, as BMS_State names it (lower case)
    fault_level: int  # as BMS_FaultLevel: 3 while a fault is latched
    ccl: float
    dcl: float
    cvl: float
    dvl: float
    soc: float | None
    soh: float | None
    pack_voltage: float | None
    pack_current: float | None
    cell_min: float | None
    cell_max: float | None
    cell_mean: float | None
    cell_min_index: int | None
    cell_max_index: int | None
    temperature_min: float | None
    temperature_max: float | None
    diagnoses: Mapping[str, Level]  # active diagnoses by catalogue ID, with their level
    modules: Modules


def take(config: ControllerConfig, state: Any, now: float) -> Sample:
    """The sample of ``state`` (a `controller.core.ControllerState`) at ``now``."""
    pack = config.pack
    measured = state.ingest["internal"].measurements
    volts = _valid(measured["cell_voltage"], config, "cell_voltage", now)
    temps = _valid(measured["cell_temperature"], config, "cell_temperature", now)
    latched = state.contactors.state is ContactorState.FAULT
    fault_level = int(Level.FAULT) if latched else int(state.protection.highest)
    limits = state.published
    return Sample(
        time=now,
        state=state.contactors.state.name.lower(),
        fault_level=fault_level,
        ccl=float(limits.ccl),
        dcl=float(limits.dcl),
        cvl=float(limits.cvl),
        dvl=float(limits.dvl),
        soc=float(state.soc.pack) if state.soc.valid else None,
        soh=_number(state.soh.health.pack_soh),
        pack_voltage=_scalar(measured["pack_voltage"], config, "pack_voltage", now),
        pack_current=_scalar(measured["pack_current"], config, "pack_current", now),
        cell_min=_number(np.fmin.reduce(volts)),
        cell_max=_number(np.fmax.reduce(volts)),
        cell_mean=_mean(volts),
        cell_min_index=_position(volts, np.nanargmin),
        cell_max_index=_position(volts, np.nanargmax),
        temperature_min=_number(np.fmin.reduce(temps)),
        temperature_max=_number(np.fmax.reduce(temps)),
        diagnoses=active_diagnoses(state),
        modules=_modules(volts.reshape(pack.modules, -1), temps.reshape(pack.modules, -1)),
    )


def active_diagnoses(state: Any) -> dict[str, Level]:
    """Every diagnosis active now: protection checks at warning or above, latched contactor
    faults, faults restored from the store and stages that failed."""
    active = {check.value: Level(lv) for check, lv in state.protection.levels.items() if lv > 0}
    for fault in state.contactors.faults:
        if (diagnosis := diagnosis_of(fault.cause)) is not None:
            active[diagnosis] = Level.FAULT
    for diagnosis in state.restored_faults:
        active.setdefault(diagnosis, Level.FAULT)
    if state.failed_stages:
        active[STAGE_EXCEPTION] = Level.FAULT
    return active


def _valid(array: Any, config: ControllerConfig, target: str, now: float) -> np.ndarray:
    """The array's values with NaN where the controller would not use them now."""
    valid = array.valid(now, config.ingest.timeout(target))
    return np.where(valid, array.value, np.nan)


def _scalar(array: Any, config: ControllerConfig, target: str, now: float) -> float | None:
    return _number(_valid(array, config, target, now)[0])


def _number(value: Any) -> float | None:
    value = float(value)
    return value if np.isfinite(value) else None


def _mean(values: np.ndarray) -> float | None:
    known = np.isfinite(values)
    count = int(known.sum())
    return float(values[known].sum() / count) if count else None


def _position(values: np.ndarray, pick: Any) -> int | None:
    return int(pick(values)) if np.isfinite(values).any() else None


def _modules(volts: np.ndarray, temps: np.ndarray) -> Modules:
    """Row-wise reductions over the (modules, elements) arrays; NaN where a row has none."""
    known = np.isfinite(volts)
    count = known.sum(axis=1)
    total = np.where(known, volts, 0.0).sum(axis=1)
    mean = np.divide(total, count, out=np.full(count.shape, np.nan), where=count > 0)
    return Modules(
        cell_min=np.fmin.reduce(volts, axis=1),
        cell_max=np.fmax.reduce(volts, axis=1),
        cell_mean=mean,
        temperature_min=np.fmin.reduce(temps, axis=1),
        temperature_max=np.fmax.reduce(temps, axis=1),
    )
