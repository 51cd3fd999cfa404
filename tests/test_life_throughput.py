"""Throughput adds to its own counters only: every other life counter passes through."""

from __future__ import annotations

from dataclasses import fields

import pytest

from controller.life import LifeConfig, LifeCounters, LifeInputs, LifeState, step_life

_CLOSED = (True, False, True)


def _distinct() -> LifeCounters:
    """Counters with a different value in every field, so a field left behind shows."""
    values = {}
    for k, f in enumerate(fields(LifeCounters), start=1):
        default = getattr(LifeCounters(), f.name)
        values[f.name] = (k, k + 1, k + 2) if isinstance(default, tuple) else type(default)(k)
    return LifeCounters(**values)


@pytest.mark.parametrize(("current", "grown"), [(50.0, "charged"), (-50.0, "discharged")])
def test_an_interval_with_current_changes_only_its_direction_s_throughput(current, grown):
    before = _distinct()
    state = LifeState(before, time=0.0, voltage=400.0, current=current)
    inputs = LifeInputs(400.0, True, current, True, _CLOSED, _CLOSED)
    after = step_life(LifeConfig(), state, inputs, 36.0).counters
    for f in fields(LifeCounters):
        old, new = getattr(before, f.name), getattr(after, f.name)
        if f.name.startswith(grown + "_"):
            assert new > old, f.name
        else:
            assert new == old, f.name
    assert after.charged_ah - before.charged_ah + after.discharged_ah - before.discharged_ah == (
        pytest.approx(0.5)
    )
