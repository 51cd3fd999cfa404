"""Every check at every level: set after its delay, the event names the cause, clear rules."""

from __future__ import annotations

import pytest
from protection_support import (
    Driver,
    base_for,
    config,
    disturb,
    expected_element,
    level_value,
    where,
)

from controller.adapters.base import Level
from controller.protection import Check, Protection
from controller.protection.checks import PLAUSIBILITY, SPECS, Direction

CFG = config("nmc")
# The plausibility checks judge values derived over time: tests/test_protection_plausibility.py
CASES = [(c, lv) for c, cc in CFG.checks.items() if c not in PLAUSIBILITY for lv in cc.levels]
IDS = [f"{c.value}-{lv.name.lower()}" for c, lv in CASES]
EPS = 1e-9


def _is(check: Check, level: Level, kind: str):
    wanted = (check, level, kind)
    return lambda events: any((e.diagnosis, e.level, e.kind) == wanted for e in events)


def _set_level(check: Check, level: Level) -> tuple[Driver, float]:
    """A driver with ``level`` of ``check`` just set; returns it and the violating value."""
    d = Driver(Protection(CFG))
    base = base_for(check)
    d.run(base, 1.0)
    assert d.events == [], "the healthy pack must not raise anything"
    value = level_value(CFG, check, level)
    first_seen = d.now + d.period
    # the pack current is dated by its sample: the violation counts from the sample's
    # arrival, at most one period before the step that first sees it
    dated = check in (Check.OVERCURRENT_CHARGE, Check.OVERCURRENT_DISCHARGE)
    onset = first_seen - (min(base.current_sensor_age, d.period) if dated else 0.0)
    delay = CFG.checks[check].levels[level].set_delay_ms / 1000
    t_set = d.run_until(disturb(base, check, value), _is(check, level, "set"), delay + 1.0)
    assert t_set is not None, "level never set"
    assert onset + delay - EPS <= t_set <= onset + delay + d.period + EPS
    return d, value


@pytest.mark.parametrize(("check", "level"), CASES, ids=IDS)
def test_level_sets_after_its_delay_and_event_names_the_cause(check: Check, level: Level) -> None:
    d, value = _set_level(check, level)
    (event,) = d.find(check, level, "set")
    assert where(event) == expected_element(check)
    assert event.value == pytest.approx(value)
    assert event.threshold == CFG.checks[check].levels[level].threshold
    assert event.time == pytest.approx(d.now)
    assert d.state.levels[check] is level
    assert d.state.highest >= level
    if SPECS[check].element is not None:
        kind, element = d.state.worst[check]
        assert (kind, [element]) == expected_element(check)
    assert d.state.fault_active == (level is Level.FAULT), "only a fault opens the contactors"
    if level is Level.FAULT:
        assert d.state.fault_bits & (1 << check.bit)
        assert d.state.alarm_active and d.state.warning_active


NON_LATCHING = [(c, lv) for c, lv in CASES if lv is not Level.FAULT]


@pytest.mark.parametrize(
    ("check", "level"), NON_LATCHING, ids=[f"{c.value}-{lv.name.lower()}" for c, lv in NON_LATCHING]
)
def test_level_clears_after_clear_delay_once_beyond_hysteresis(check: Check, level: Level) -> None:
    d, _ = _set_level(check, level)
    cfg = CFG.checks[check].levels[level]
    base = base_for(check)
    if cfg.hysteresis > 0:
        sign = 1.0 if SPECS[check].direction is Direction.HIGH else -1.0
        band = cfg.threshold - sign * cfg.hysteresis / 2
        d.run(disturb(base, check, band), cfg.clear_delay_ms / 1000 + 0.5)
        assert d.find(check, level, "cleared") == [], "cleared inside the hysteresis band"
        assert d.state.levels[check] >= level
    gone = d.now + d.period
    t_clear = d.run_until(base, _is(check, level, "cleared"), cfg.clear_delay_ms / 1000 + 1.0)
    assert t_clear is not None, "level never cleared"
    delay = cfg.clear_delay_ms / 1000
    assert gone + delay - EPS <= t_clear <= gone + delay + d.period + EPS
    assert d.state.levels[check] < level


FAULTS = [c for c, lv in CASES if lv is Level.FAULT]


@pytest.mark.parametrize("check", FAULTS, ids=[c.value for c in FAULTS])
def test_fault_latches_until_cause_gone_and_reset(check: Check) -> None:
    d, value = _set_level(check, Level.FAULT)
    cfg = CFG.checks[check].levels[Level.FAULT]
    base = base_for(check)
    d.run(disturb(base, check, value), 0.5, reset=True)
    assert d.state.levels[check] is Level.FAULT, "reset while the cause persists"
    if cfg.clear_delay_ms > 0:
        d.step(base, reset=True)
        assert d.state.levels[check] is Level.FAULT, "reset before the clear delay elapsed"
    d.run(base, cfg.clear_delay_ms / 1000 + 1.0)
    assert d.state.levels[check] is Level.FAULT, "fault cleared without a reset"
    assert d.find(check, Level.FAULT, "cleared") == []
    events = d.step(base, reset=True)
    (cleared,) = [e for e in events if e.diagnosis == check and e.level is Level.FAULT]
    assert cleared.kind == "cleared"
    assert where(cleared) == expected_element(check)
    assert d.state.levels[check] < Level.FAULT
    assert not d.state.fault_bits & (1 << check.bit)
