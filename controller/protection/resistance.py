"""The cell resistance the plausibility checks predict voltage steps with, held by protection.

An aged cell's resistance is far above the nominal one (1.8 times late in life), so the
checks take each cell's R0 from what the controller learnt: the state-of-health estimator's
measurement of a current step starts it, the SOC filter's resistance (normalised to 25 degC,
updated at every reading) moves it on. Both learn from the same current sensor the checks
judge: a gain error would teach them a resistance that hides it. So protection follows the
learnt value at most ``resistance_follow_per_hour`` (relative) — ageing takes months — and a
sensor fault stays visible against the resistance learnt before it. A first measurement is
taken at once only when it is at least ``min_resistance_share`` of the nominal R0: a cell's
resistance only grows as it ages, while a current read too high (a gain error present from
the first step) gives one too low; below that share the held value starts from the nominal
and follows from there. Held at 25 degC; the checks bring it to the mean temperature.
"""

from __future__ import annotations

import math

import numpy as np

from controller.protection.plausibility_config import PlausibilityConfig

SECONDS_PER_HOUR = 3600.0
_T_REF_K = 298.15


def temperature_factor(config: PlausibilityConfig, temperature_c: float) -> float:
    """R(T) / R(25 degC); 1 when the temperature is unknown."""
    if not math.isfinite(temperature_c):
        return 1.0
    return math.exp(config.activation_k * (1.0 / (temperature_c + 273.15) - 1.0 / _T_REF_K))


def follow(
    config: PlausibilityConfig,
    held: np.ndarray | None,
    measured: np.ndarray | None,
    filtered_at_25c: np.ndarray | None,
    temperature_c: float,
    dt: float,
) -> np.ndarray | None:
    """Per cell R0 at 25 degC, NaN until measured: a first measurement is taken at once
    (brought to 25 degC from the mean temperature now), then the held value moves toward the
    filter's by at most the follow rate over ``dt``."""
    if measured is None:
        return held
    if held is None or held.shape != measured.shape:
        held = np.full(measured.shape, np.nan)
    first = np.isnan(held) & ~np.isnan(measured)
    if first.any():
        at_25c = measured / temperature_factor(config, temperature_c)
        nominal = config.cell_r0_ohm
        start = np.where(at_25c >= config.min_resistance_share * nominal, at_25c, nominal)
        held = np.where(first, start, held)
    if filtered_at_25c is None or filtered_at_25c.shape != held.shape:
        return held
    reach = held * (config.resistance_follow_per_hour * max(dt, 0.0) / SECONDS_PER_HOUR)
    low = np.subtract(held, reach)
    high = np.add(held, reach, out=reach)
    return np.clip(filtered_at_25c, low, high, out=low)
