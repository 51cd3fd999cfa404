"""Startup: data that is still arriving is not a fault; data missing at the timeout is."""

from __future__ import annotations

import pytest
from core_support import Rig

from controller.adapters.base import Level
from controller.contactors import ContactorState, Request
from controller.protection import Check

EPS = 1e-6


def test_late_data_before_the_timeout_is_no_fault() -> None:
    rig = Rig()
    timeout = rig.config.startup_timeout_s
    late = round(0.6 * timeout, 2)
    rig.plant.request = Request.DISCHARGE
    rig.plant.silent.add("temps")  # the first temperature frames come late
    rig.run(late - rig.cycle)
    assert not rig.state.initialised
    assert rig.state.protection.highest is Level.OK
    assert rig.state.contactors.state is ContactorState.STANDBY
    assert all(not any(v.values()) for _, v in _commands(rig))
    for _, v in rig.plant.sent("BMS_Limits"):
        assert v["BMS_ChargeCurrentLimit"] == 0 and v["BMS_DischargeCurrentLimit"] == 0

    rig.plant.silent.discard("temps")
    rig.plant.force("temps")
    rig.step()
    assert rig.state.initialised  # complete data ends the startup at once
    t_closed = rig.run_until(
        lambda r: r.state.contactors.state is ContactorState.CLOSED_DISCHARGE, 3.0
    )
    rig.run(max(0.0, timeout + 0.5 - rig.now))
    assert t_closed < timeout
    assert rig.state.protection.highest < Level.ALARM
    assert all(v["BMS_FaultLevel"] == 0 for _, v in rig.plant.sent("BMS_Status"))


@pytest.mark.parametrize(
    ("source", "check"),
    [("M03", Check.SLAVE_TIMEOUT), ("ivt", Check.CURRENT_SENSOR_TIMEOUT)],
)
def test_data_missing_at_the_timeout_faults(source: str, check: Check) -> None:
    rig = Rig()
    timeout = rig.config.startup_timeout_s
    delay = rig.config.protection.checks[check].levels[Level.FAULT].set_delay_ms / 1000
    rig.plant.request = Request.DISCHARGE
    rig.plant.silent.add(source)
    t_any = rig.run_until(lambda r: r.state.protection.fault_active, timeout + 2.0)
    t_check = rig.run_until(lambda r: r.state.protection.levels[check] is Level.FAULT, 2.0)
    assert timeout - EPS <= t_any <= t_check
    assert timeout + delay - EPS <= t_check <= timeout + delay + rig.cycle + EPS
    rig.run(0.15)
    assert all(not any(v.values()) for _, v in _commands(rig))  # never closed
    status = rig.plant.received["BMS_Status"]
    assert status["BMS_FaultLevel"] == 3 and status["BMS_ActiveFaults"] & (1 << check.bit)
    assert status["BMS_State"] == ContactorState.FAULT


def _commands(rig: Rig) -> list[tuple[float, dict[str, float]]]:
    """Coil commands sent so far (E2E header left out)."""
    return [
        (t, {k: x for k, x in v.items() if k not in ("ContactorCmd_Counter", "ContactorCmd_CRC")})
        for t, v in rig.plant.sent("ContactorCommand")
    ]


def test_no_close_while_a_measurement_is_missing() -> None:
    """A close request is held, not started, while any cell or the sensor is unmeasured."""
    rig = Rig()
    rig.run(0.3)
    assert rig.state.initialised and rig.state.contactors.state is ContactorState.STANDBY
    rig.plant.silent.add("M03")
    rig.run_until(lambda r: not r.view.all_cells_valid, 1.0)
    rig.plant.request = Request.DISCHARGE
    rig.plant.force("ems")
    rig.run(0.05)
    assert not rig.state.protection.fault_active  # its fault is still being debounced
    assert rig.state.contactors.state is ContactorState.STANDBY
    assert all(not any(v.values()) for _, v in _commands(rig))
