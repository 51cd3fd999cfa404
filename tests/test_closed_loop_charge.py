"""Closed loop through the Elcon chargers: the CCL is obeyed and the charge ends at the top.

Shortened runs of `hil.scenarios.charge.Charge` (from 80 % SOC); the full one is
``canbms demo --scenario charge``.
"""

from __future__ import annotations

import numpy as np

from hil.scenarios.charge import Charge
from slaves.faults import CellVoltageOffset

FIELD_RESOLUTION = 0.1  # A, Elcon current field


def test_the_charge_obeys_the_ccl_and_ends_complete_below_the_maximum_cell_voltage():
    with Charge(initial_soc=0.80, ambient=38.0) as charge:
        charge.run()
        record = charge.record
        check = record.check(charge.adapter.config.period, charge.cycle)
        assert charge.finished
        assert check.worst_excess <= FIELD_RESOLUTION, check
        assert charge.complete_at is not None and charge.open_at >= charge.complete_at
        assert charge.bench.state.contactors.state.name == "STANDBY"
        assert np.nanmax(record.max_cell) <= charge.max_charge_cell_voltage
        assert (
            record.phase_time("CC", charge.cycle) > 0 and record.phase_time("CV", charge.cycle) > 0
        )
        assert np.isfinite(charge.lowest_thermal_ccl)  # warm pack: the temperature derated it
        assert all(c.command is not None and not c.command.start for c in charge.chargers)


def test_a_fault_while_charging_stops_the_chargers_within_one_period_then_opens():
    with Charge(initial_soc=0.5) as charge:
        while charge.bench.now < 15.0:
            charge.step()
        assert all(c.current > 5.0 for c in charge.chargers)
        # a cell reads 2.5 V: under-voltage fault, while the CCL (set by the highest cell) stays
        charge.system.faults.inject(CellVoltageOffset(module=2, cell=5, volts=-1.3))
        detected = None
        stopped = None
        opened = None
        while charge.bench.now < 25.0:
            result = charge.step()
            now = charge.bench.now
            if detected is None and result.state.protection.fault_active:
                detected = now
                current_at_detection = result.view.current.value
            if detected is not None and stopped is None:
                if all(not c.command.start and c.current == 0.0 for c in charge.chargers):
                    stopped = now
            if (
                detected is not None
                and opened is None
                and not any(result.state.contactors.commands)
            ):
                opened = now
                current_at_open = result.view.current.value
        assert detected is not None and current_at_detection > 5.0
        assert stopped is not None and stopped - detected <= charge.adapter.config.period
        assert opened is not None and opened >= stopped
        assert abs(current_at_open) < 1.0  # the contactors broke no load current
