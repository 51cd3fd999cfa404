"""Closed loop through the CAN-BMS inverter: the DCL is obeyed down to the SOC reserve.

Shortened runs of `hil.scenarios.discharge.Discharge` (from 25 % SOC); the full one is
``canbms demo --scenario discharge``.
"""

from __future__ import annotations

import numpy as np
import pytest

from hil.scenarios.discharge import Discharge

FIELD_RESOLUTION = 0.1  # A, 0x351 current fields


@pytest.mark.parametrize("variant", ["victron", "pylontech"])
def test_the_discharge_obeys_the_dcl_and_stops_at_the_low_soc_derating(variant):
    with Discharge(variant=variant, initial_soc=0.25) as discharge:
        discharge.run()
        record = discharge.record
        check = record.check(discharge.adapter.config.period, discharge.cycle, sign=-1.0)
        assert discharge.finished
        assert check.worst_excess <= FIELD_RESOLUTION, check
        assert discharge.peak > 20.0  # it did follow the load, up to the DCL
        assert discharge.stopped_by in ("soc", "cell_voltage")
        assert discharge.open_at is not None and discharge.open_at >= discharge.stopped_at
        limits = discharge.bench.controller.config.limits
        assert np.nanmin(record.min_cell) > limits.discharge_cell_voltage_v
        assert discharge.inverter.current == 0.0
