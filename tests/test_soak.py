"""A healthy pack driven and charged with rests raises no alarm and no fault: the day's
schedule of `canbms hil --soak`, each phase shortened, in lock-step virtual time."""

from __future__ import annotations

from controller.adapters.base import Level
from hil.run_matrix import load
from hil.soak import CYCLE, run_soak, scaled

FACTOR = 1 / 18  # the six-hour schedule in 20 minutes: drive 200 s, rest, charge, rest


def test_a_healthy_drive_and_charge_schedule_raises_no_alarm_and_no_fault() -> None:
    cycle = scaled(CYCLE, FACTOR)
    hours = sum(p.seconds for p in cycle) / 3600.0
    result = run_soak(load(None, cycle_ms=100), hours, cycle=cycle)
    assert result.false_alarms == [], "\n".join(result.lines())
    assert result.count(Level.FAULT) == 0
    assert dict(result.phases) == {"drive": 1, "rest": 2, "charge": 1}
    assert result.simulated_s >= hours * 3600.0 - 0.2
    low, high = result.soc
    assert high - low > 2.0  # the drive and the charge moved the pack
    assert result.peak_current[0] < -10.0 and result.peak_current[1] > 5.0  # both ways
