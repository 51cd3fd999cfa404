"""The current sensor against its own charge counter.

A sensor like the IVT-S integrates its current inside (the As result) beside reporting it;
the controller integrates the current readings it receives. Over a window both integrals
must move alike: a reading frozen, corrupted or replayed on the way, while the sensor's
own counter goes on, shows as charge one side counted and the other did not. The value is
the mean disagreement over the window (A) in multiples of what the comparison allows:
``counter_accuracy_a`` (the sensor's offset, the counter's 1 As resolution and the frames'
timing over the window) plus ``counter_accuracy_fraction`` of the mean current.

The counter is sampled when its frame arrives; the controller's integral at that step.
Invalid current or counter restarts the comparison (not judged). A sensor mapping without
a counter gives none, and the check is not judged at all.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from controller.measurements import Measurements
from controller.protection.inputs import ProtectionInputs
from controller.protection.lag import Lag
from controller.protection.plausibility_config import PlausibilityConfig

COUNTER = "charge_counter"  # the measured array a sensor mapping feeds with its counter (As)


@dataclass(frozen=True)
class CounterState:
    integral: float = 0.0  # As, the controller's integral of its current readings
    time: float | None = None  # of the last step with a valid current
    counter_at: float = -math.inf  # arrival of the last counter frame compared
    lag: Lag = Lag()  # (counter, integral, time) at counter frames
    value: float = math.nan  # the last comparison, held until the next counter frame


def counter_inputs(measurements: Measurements, now: float, timeout: float) -> dict[str, float]:
    """The `ProtectionInputs` fields of a valid, fresh counter reading; none when the mapping
    feeds no counter or it is invalid or stale."""
    if COUNTER not in measurements.available:
        return {}
    counter = measurements[COUNTER]
    if not counter.valid(now, timeout).item(0):
        return {}
    value, at = counter.value.item(0), counter.updated_at.item(0)
    return {"charge_counter": value, "charge_counter_at": at}


def step_counter(
    config: PlausibilityConfig, state: CounterState, inputs: ProtectionInputs, now: float
) -> tuple[CounterState, float]:
    """Advance the integral to ``now``; compare at each new counter frame."""
    current, counter = inputs.pack_current, inputs.charge_counter
    if not (inputs.pack_current_valid and math.isfinite(current) and math.isfinite(counter)):
        return CounterState(), math.nan
    integral = state.integral
    if state.time is not None:
        integral += current * (now - state.time)
    if inputs.charge_counter_at == state.counter_at:
        return CounterState(integral, now, state.counter_at, state.lag, state.value), state.value
    sample = np.array([counter, integral, now])
    lag = state.lag.advance(sample, now, config.counter_window_s / 2.0, True)
    change = lag.change(sample)
    value = math.nan
    if change is not None and change[2] > 0.0:
        span = float(change[2])
        disagreement = abs(float(change[0] - change[1])) / span
        mean = abs(float(change[1])) / span
        value = disagreement / (config.counter_accuracy_a + config.counter_accuracy_fraction * mean)
    return CounterState(integral, now, inputs.charge_counter_at, lag, value), value
