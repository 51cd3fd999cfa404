"""Fault reactions of the whole core, one protection check at a time, over encoded frames.

The core is brought to a closed state through a real precharge, then one quantity is pushed
beyond its fault threshold. The fault must set the configured delay after the violation was
first visible (and at most one cycle later), zero the published limits, command the
contactors open (at once below the break current, after the fuse delay above it), show on
``BMS_Status`` and clear only once the cause has been gone for the clear delay, a reset was
requested and the EMS asks for standby. Thresholds and delays come from the loaded config.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import pytest
from core_support import BASE_CELL_V, Plant, Rig, with_crc
from e2e_reference import crc8_profile11

from controller.adapters.base import Level
from controller.config.loader import ControllerConfig, default_config
from controller.contactors import ContactorState, Request
from controller.core import StepResult
from controller.protection import Check
from controller.protection.checks import PLAUSIBILITY, SPECS, Direction
from controller.protection.config import LevelConfig

CELL, SENSOR, MODULE = 7, 5, 3
EPS = 1e-6


@dataclass(frozen=True)
class Case:
    """One way of violating one check, how to undo it and the quantity the check judges."""

    id: str
    check: Check
    mode: Request
    violate: Callable[[Plant, LevelConfig], None]
    restore: Callable[[Plant], None]
    quantity: Callable[[Rig, StepResult], float]
    stale_request_opens: bool = False


def _cell(value: Callable[[LevelConfig], float]) -> Callable[[Plant, LevelConfig], None]:
    def violate(plant: Plant, level: LevelConfig) -> None:
        plant.cell_v[CELL] = value(level)
        plant.force("cells", "status", "ivt")

    return violate


def _restore_cell(plant: Plant) -> None:
    plant.cell_v[CELL] = BASE_CELL_V
    plant.force("cells", "status", "ivt")


def _temp(offset: float) -> Callable[[Plant, LevelConfig], None]:
    def violate(plant: Plant, level: LevelConfig) -> None:
        assert level.threshold is not None
        plant.temp[SENSOR] = level.threshold + offset
        plant.force("temps")

    return violate


def _restore_temp(plant: Plant) -> None:
    plant.temp[SENSOR] = 25.0
    plant.force("temps")


def _demand(sign: float) -> Callable[[Plant, LevelConfig], None]:
    def violate(plant: Plant, level: LevelConfig) -> None:
        assert level.threshold is not None
        plant.demand = sign * (level.threshold + 10.0)
        plant.force("ivt")

    return violate


def _restore_demand(plant: Plant) -> None:
    plant.demand = 0.0
    plant.force("ivt")


def _silence(source: str, *resume: str) -> tuple[Callable[..., None], Callable[[Plant], None]]:
    def violate(plant: Plant, level: LevelConfig) -> None:
        plant.silent.add(source)

    def restore(plant: Plant) -> None:
        plant.silent.discard(source)
        plant.force(*resume)

    return violate, restore


def _freeze_ems() -> tuple[Callable[..., None], Callable[[Plant], None]]:
    def violate(plant: Plant, level: LevelConfig) -> None:
        plant.frozen.add("ems")

    def restore(plant: Plant) -> None:
        plant.frozen.discard("ems")
        plant.force("ems")

    return violate, restore


def _flag(attribute: str, index: int, source: str) -> tuple[Callable[..., None], Callable]:
    def set_to(value: bool) -> Callable[..., None]:
        def apply(plant: Plant, *_: object) -> None:
            getattr(plant, attribute)[index] = value
            plant.force(source)

        return apply

    return set_to(True), set_to(False)


def _drift_u1(plant: Plant, level: LevelConfig) -> None:
    assert level.threshold is not None
    plant.u1_offset = level.threshold + 5.0
    plant.force("ivt")


def _restore_u1(plant: Plant) -> None:
    plant.u1_offset = 0.0
    plant.force("ivt")


# -- what each check compares, read from the step's view ------------------------------


def _temperature(stat: str, charge: bool, high: bool) -> Callable[[Rig, StepResult], float]:
    def quantity(rig: Rig, r: StepResult) -> float:
        charging = r.state.protection.charging
        applies = charging is None or charging is charge
        if not applies:
            return -math.inf if high else math.inf
        return getattr(r.view.temperature_stats, stat)

    return quantity


def _current(sign: float) -> Callable[[Rig, StepResult], float]:
    def quantity(rig: Rig, r: StepResult) -> float:
        return sign * r.view.current.value if r.view.current.valid else math.nan

    return quantity


def _plausibility(rig: Rig, r: StepResult) -> float:
    v = r.view
    if not (v.pack_voltage.valid and v.all_cells_valid):
        return math.nan
    return abs(v.pack_voltage.value - v.voltage_stats.total)


def _ems_age(rig: Rig, r: StepResult) -> float:
    return float(r.state.ingest["vehicle"].measurements["ems_request"].age(rig.now)[0])


def _invalid(rig: Rig, r: StepResult) -> float:
    v = r.view
    errors = any(bool(e.any()) for e in v.module_errors.values())
    return float(not v.all_cells_valid or not v.temperature_valid.all() or errors)


def _thr(level: LevelConfig) -> float:
    assert level.threshold is not None
    return level.threshold


SILENT_MODULE = _silence(f"M{MODULE:02}", "cells", "temps", "status")
SILENT_IVT = _silence("ivt", "ivt")
SILENT_EMS = _silence("ems", "ems")
FROZEN_EMS = _freeze_ems()
CELL_FLAG = _flag("cell_invalid", CELL, "cells")
SENSOR_FLAG = _flag("temp_invalid", SENSOR, "temps")
OPEN_WIRE = _flag("open_wire", MODULE, "status")
D, C = Request.DISCHARGE, Request.CHARGE

CASES = [
    Case(
        "cell_overvoltage",
        Check.CELL_OVERVOLTAGE,
        D,
        _cell(lambda lv: _thr(lv) + 0.05),
        _restore_cell,
        lambda rig, r: r.view.voltage_stats.maximum,
    ),
    Case(
        "cell_undervoltage",
        Check.CELL_UNDERVOLTAGE,
        D,
        _cell(lambda lv: _thr(lv) - 0.1),
        _restore_cell,
        lambda rig, r: r.view.voltage_stats.minimum,
    ),
    Case(
        "overtemperature_charge",
        Check.OVERTEMPERATURE_CHARGE,
        C,
        _temp(3.0),
        _restore_temp,
        _temperature("maximum", True, True),
    ),
    Case(
        "undertemperature_charge",
        Check.UNDERTEMPERATURE_CHARGE,
        C,
        _temp(-3.0),
        _restore_temp,
        _temperature("minimum", True, False),
    ),
    Case(
        "overtemperature_discharge",
        Check.OVERTEMPERATURE_DISCHARGE,
        D,
        _temp(3.0),
        _restore_temp,
        _temperature("maximum", False, True),
    ),
    Case(
        "undertemperature_discharge",
        Check.UNDERTEMPERATURE_DISCHARGE,
        D,
        _temp(-3.0),
        _restore_temp,
        _temperature("minimum", False, False),
    ),
    Case(
        "overcurrent_charge",
        Check.OVERCURRENT_CHARGE,
        C,
        _demand(1.0),
        _restore_demand,
        _current(1.0),
    ),
    Case(
        "overcurrent_discharge",
        Check.OVERCURRENT_DISCHARGE,
        D,
        _demand(-1.0),
        _restore_demand,
        _current(-1.0),
    ),
    Case(
        "cell_voltage_spread",
        Check.CELL_VOLTAGE_SPREAD,
        D,
        _cell(lambda lv: BASE_CELL_V + _thr(lv) + 0.02),
        _restore_cell,
        lambda rig, r: r.view.voltage_stats.spread,
    ),
    Case(
        "slave_timeout",
        Check.SLAVE_TIMEOUT,
        D,
        *SILENT_MODULE,
        lambda rig, r: float(r.view.module_age[MODULE]),
    ),
    Case(
        "current_sensor_timeout",
        Check.CURRENT_SENSOR_TIMEOUT,
        D,
        *SILENT_IVT,
        lambda rig, r: r.view.current.age,
    ),
    Case(
        "pack_voltage_plausibility",
        Check.PACK_VOLTAGE_PLAUSIBILITY,
        D,
        _drift_u1,
        _restore_u1,
        _plausibility,
    ),
    Case("ems_timeout_silent", Check.EMS_TIMEOUT, D, *SILENT_EMS, _ems_age, True),
    Case("ems_timeout_frozen_counter", Check.EMS_TIMEOUT, D, *FROZEN_EMS, _ems_age, True),
    Case("invalid_cell_flag", Check.INVALID_MEASUREMENT, D, *CELL_FLAG, _invalid),
    Case("invalid_sensor_flag", Check.INVALID_MEASUREMENT, D, *SENSOR_FLAG, _invalid),
    Case("invalid_open_wire", Check.INVALID_MEASUREMENT, D, *OPEN_WIRE, _invalid),
]


def _violated(direction: Direction, q: float, threshold: float | None) -> bool:
    if direction is Direction.FLAG:
        return q > 0.5
    assert threshold is not None
    return not (q <= threshold) if direction is Direction.HIGH else not (q >= threshold)


def _released(direction: Direction, q: float, level: LevelConfig) -> bool:
    if direction is Direction.FLAG:
        return q < 0.5
    assert level.threshold is not None
    if direction is Direction.HIGH:
        return q <= level.threshold - level.hysteresis
    return q >= level.threshold + level.hysteresis


def _all_open(values: dict[str, float]) -> bool:
    return not any(values[f"ContactorCmd_{c}Close"] for c in ("Minus", "Precharge", "Plus"))


def _isolated() -> ControllerConfig:
    """Defaults without the plausibility checks: the scripted plant steps one quantity at a
    time (30 K at once, a current the cells do not feel), which they rightly call implausible
    (tests/test_closed_loop_plausibility.py); here each check is judged on its own."""
    cfg = default_config()
    off = {c.value: replace(cfg.protection.checks[c], enabled=False) for c in PLAUSIBILITY}
    return replace(cfg, protection=replace(cfg.protection, **off))


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_fault_reaction_and_clear(case: Case) -> None:
    rig = Rig(_isolated())
    cfg = rig.config
    level = cfg.protection.checks[case.check].levels[Level.FAULT]
    direction = SPECS[case.check].direction
    set_delay, clear_delay = level.set_delay_ms / 1000, level.clear_delay_ms / 1000
    cycle, contactors = cfg.cycle_s, cfg.contactors

    rig.close(case.mode)
    rig.run(0.2)
    assert not rig.state.protection.fault_active

    # -- violation: fault after exactly the set delay ----------------------------------
    case.violate(rig.plant, level)
    t_violated = t_any = t_fault = t_open = None
    breakable = True
    while t_fault is None:
        r = rig.step()
        q = case.quantity(rig, r)
        if _violated(direction, q, level.threshold):
            t_violated = rig.now if t_violated is None else t_violated
        else:
            assert t_violated is None, f"violation interrupted at {rig.now:.2f} s (value {q})"
        if t_any is None and r.state.protection.fault_active:
            t_any = rig.now
            current = r.view.current
            breakable = current.valid and abs(current.value) <= contactors.break_current_a
        if rig.level(case.check) is Level.FAULT:
            t_fault = rig.now
        if t_open is None and not any(r.state.contactors.commands):
            t_open = rig.now
        assert rig.now < 30.0, "the fault never set"
    assert t_violated is not None and t_any is not None
    assert t_violated + set_delay - EPS <= t_fault <= t_violated + set_delay + cycle + EPS

    # -- reaction: contactors open at once below the break current, else after the fuse --
    expected_open = t_any if breakable else t_any + contactors.fuse_delay_s
    if t_open is None:
        t_open = rig.run_until(lambda r: not any(r.state.contactors.commands), 5.0)
    if case.stale_request_opens:
        # a stale request already means standby: the contactors opened before the fault
        assert t_open <= t_any
    else:
        assert expected_open - EPS <= t_open <= expected_open + cycle + EPS
    command = [v for t, v in rig.plant.sent("ContactorCommand") if abs(t - t_open) < EPS]
    assert command and _all_open(command[0]), "ContactorCommand on the bus must command open"
    assert rig.state.contactors.state is ContactorState.FAULT

    # -- hold: reset with standby while the cause may persist clears nothing early ------
    history: list[tuple[float, bool]] = []  # (time, cause gone) from the fault on

    def tick() -> StepResult:
        r = rig.step()
        history.append((rig.now, _released(direction, case.quantity(rig, r), level)))
        return r

    def run(seconds: float) -> None:
        end = rig.now + seconds - EPS
        while rig.now < end:
            tick()

    run(t_fault + 0.15 - rig.now)
    rig.plant.request, rig.plant.reset = Request.STANDBY, True
    run(0.3)
    assert rig.level(case.check) is Level.FAULT

    # -- clear: only once the cause has been gone for the clear delay -------------------
    case.restore(rig.plant)
    while rig.level(case.check) is Level.FAULT:
        tick()
        assert rig.now < t_fault + 30.0, "the fault never cleared"
    t_clear = rig.now
    gone = [t for t, ok in history]
    start = len(history) - 1
    while start > 0 and history[start - 1][1]:
        start -= 1
    assert history[-1][1], "cleared although the cause is still there"
    t_release = gone[start]
    assert t_release + clear_delay - EPS <= t_clear <= t_release + clear_delay + cycle + EPS
    while rig.state.contactors.state is not ContactorState.STANDBY:
        tick()
        assert rig.now < t_clear + 5.0, "no return to standby after the reset"
    t_standby = rig.now
    run(0.15)

    # -- the bus: limits zero and the fault shown from the fault on ---------------------
    bit = 1 << case.check.bit
    statuses = rig.plant.sent("BMS_Status", since=t_fault)
    assert statuses[0][0] <= t_fault + 0.1 + cycle + EPS
    during = [v for t, v in statuses if t < t_clear - EPS]
    assert during and all(v["BMS_FaultLevel"] == 3 and v["BMS_ActiveFaults"] & bit for v in during)
    assert all(v["BMS_State"] == ContactorState.FAULT for v in during)
    for _, v in rig.plant.sent("BMS_Limits", since=t_any):
        assert v["BMS_ChargeCurrentLimit"] == 0 and v["BMS_DischargeCurrentLimit"] == 0
    after = [v for t, v in statuses if t > t_standby + EPS]
    assert after[-1]["BMS_State"] == ContactorState.STANDBY
    assert after[-1]["BMS_FaultLevel"] < 3 and not after[-1]["BMS_ActiveFaults"] & bit
    assert all(_all_open(v) for _, v in rig.plant.sent("ContactorCommand", since=t_open))


def test_latched_fault_needs_reset_and_standby() -> None:
    """Cause gone is not enough: the EMS must ask for a reset, and standby to leave FAULT."""
    rig = Rig()
    check = Check.CELL_OVERVOLTAGE
    level = rig.config.protection.checks[check].levels[Level.FAULT]
    ems_period = 0.1 + rig.cycle
    rig.close(Request.DISCHARGE)
    _cell(lambda lv: _thr(lv) + 0.05)(rig.plant, level)
    rig.run_until(lambda r: r.state.protection.levels[check] is Level.FAULT, 5.0)
    _restore_cell(rig.plant)

    rig.run(level.clear_delay_ms / 1000 + 0.3)  # cause long gone, still discharge, no reset
    assert rig.level(check) is Level.FAULT
    rig.plant.request = Request.STANDBY  # standby without reset
    rig.run(0.5)
    assert rig.level(check) is Level.FAULT
    assert rig.state.contactors.state is ContactorState.FAULT

    rig.plant.request, rig.plant.reset = Request.DISCHARGE, True  # reset, but not standby
    t_reset = rig.now
    confirmed = ems_period * rig.config.security.confirm_frames  # the reset bit must repeat
    rig.run_until(lambda r: r.state.protection.levels[check] is not Level.FAULT, confirmed)
    rig.run(0.5)
    assert rig.state.contactors.state is ContactorState.FAULT
    assert not any(rig.state.contactors.commands)
    status = rig.plant.received["BMS_Status"]
    assert status["BMS_State"] == ContactorState.FAULT and status["BMS_FaultLevel"] == 3
    assert not status["BMS_ActiveFaults"] & (1 << check.bit)
    for _, v in rig.plant.sent("BMS_Limits", since=t_reset):
        assert v["BMS_ChargeCurrentLimit"] == 0 and v["BMS_DischargeCurrentLimit"] == 0

    rig.plant.request = Request.STANDBY
    rig.run_until(lambda r: r.state.contactors.state is ContactorState.STANDBY, ems_period)
    rig.run(0.15)
    status = rig.plant.received["BMS_Status"]
    assert status["BMS_State"] == ContactorState.STANDBY and status["BMS_ActiveFaults"] == 0


def test_crc_matches_the_profile_check_value() -> None:
    """The test's bitwise CRC is Profile 11's (check value 0x37) and protects the ID as well."""
    assert crc8_profile11(b"123456789") == 0x37
    payload = bytes([0, 0x05, 1, 2, 3, 4, 5, 6])
    assert with_crc(0x200, payload) != with_crc(0x201, payload)
