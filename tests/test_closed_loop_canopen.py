"""CANopen loop: the CiA 419 charger follows the CiA 418 node's request and stops on a fault.

A shortened run of `hil.scenarios.canopen.CanopenCharge` (from 85 % SOC); the full one is
``canbms demo --scenario canopen``.
"""

from __future__ import annotations

from hil.scenarios.canopen import CanopenCharge

REQUEST_RESOLUTION = 1 / 16  # A, 6070h


def test_the_charger_follows_the_request_and_stops_when_the_bms_faults():
    with CanopenCharge(initial_soc=0.85) as charge:
        charge.run()
        record = charge.record
        check = record.check(charge.request_period, charge.cycle)
        assert charge.finished
        assert check.worst_excess <= REQUEST_RESOLUTION, check
        # it followed: while the CCL tapered the charger delivered what was asked
        assert record.phase_time("CV", charge.cycle) > 5.0
        assert charge.charger.charger.requested_current == 0.0
        assert charge.charger.current == 0.0
        assert charge.charger_stopped is not None and charge.open_at is not None
        assert charge.charger_stopped <= charge.open_at
        assert charge.bench.state.contactors.state.name == "FAULT"
