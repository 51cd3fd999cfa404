"""The SOH estimator looks for resistance pairs only while the current is a step away from a
reading kept before the present steady current: the same estimate as looking every step."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from controller.estimation import SohConfig, SohEstimator
from controller.limits import parse_soc
from controller.presets import load_preset

CELLS = 5
SOC = parse_soc({**load_preset("soc", "nmc"), "rest_current_a": 0.5, "rest_time_s": 2.0})
CONFIG = SohConfig(settle_ms=50.0, max_sample_interval_ms=300.0, min_soc_swing_percent=5.0)

legs = st.lists(
    st.tuples(
        st.sampled_from([0.0, 0.2, 2.0, 9.0, 10.0, 11.0, 30.0, -10.0, -25.0, math.nan]),
        st.integers(1, 40),  # steps of the leg
        st.booleans(),  # the current is valid
    ),
    min_size=1,
    max_size=12,
)


@given(legs=legs, seed=st.integers(0, 2**32 - 1))
def test_the_pairing_shortcut_never_misses_a_measurement(legs, seed):
    rng = np.random.default_rng(seed)
    estimator = SohEstimator(CONFIG, SOC, CELLS)
    shortcut = looking = estimator.initial_state()
    updated_at = np.full(CELLS, -np.inf)
    now = 0.0
    resistance = rng.uniform(0.5e-3, 3e-3, CELLS)
    for level, steps, valid in legs:
        for _ in range(steps):
            now += float(rng.choice([0.01, 0.05, 0.1]))
            current = level + 0.05 * rng.standard_normal()
            fresh = rng.random(CELLS) < 0.5
            updated_at = np.where(fresh, now - rng.choice([0.0, 0.02]), updated_at)
            voltage = 3.7 + current * resistance + 1e-4 * rng.standard_normal(CELLS)
            readable = rng.random(CELLS) < 0.9
            bleeding = rng.random(CELLS) < 0.05
            args = (voltage, readable, updated_at.copy(), current, valid, bleeding, now)
            shortcut = estimator.step(shortcut, *args)
            everywhere = replace(looking, earlier_low=-math.inf, earlier_high=math.inf)
            looking = estimator.step(everywhere, *args)
            ours, reference = shortcut.health, looking.health
            assert np.array_equal(ours.resistance_ohm, reference.resistance_ohm, equal_nan=True)
            assert np.array_equal(ours.capacity_ah, reference.capacity_ah, equal_nan=True)
            assert np.array_equal(shortcut.sample_time, looking.sample_time)
