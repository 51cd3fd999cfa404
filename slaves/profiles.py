"""Pack current inputs: functions of virtual time returning amps (+ = charging)."""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol


class CurrentProfile(Protocol):
    """Pack current in A at virtual time ``t`` (s); positive charges the pack."""

    def __call__(self, t: float) -> float: ...


@dataclass(frozen=True)
class Constant:
    amps: float

    def __call__(self, t: float) -> float:
        return self.amps


class Scripted:
    """Piecewise profile from ``(t, amps)`` points.

    By default each value holds until the next point (step profile: what a drive-cycle or a
    test script means); ``interpolate=True`` ramps linearly between points instead. Before
    the first point the current is zero; after the last point it holds, or with
    ``repeat=True`` the script starts over with period equal to the last point's time.
    """

    def __init__(
        self,
        points: Sequence[tuple[float, float]],
        interpolate: bool = False,
        repeat: bool = False,
    ) -> None:
        if not points:
            raise ValueError("profile: needs at least one (t, amps) point")
        times = [float(t) for t, _ in points]
        if any(b <= a for a, b in zip(times, times[1:], strict=False)):
            raise ValueError("profile: times must be strictly increasing")
        if repeat and times[-1] <= 0.0:
            raise ValueError("profile: a repeating script needs a last time > 0")
        self.times = times
        self.amps = [float(a) for _, a in points]
        self.interpolate = interpolate
        self.repeat = repeat

    def __call__(self, t: float) -> float:
        if self.repeat:
            t = t % self.times[-1]
        i = bisect.bisect_right(self.times, t) - 1
        if i < 0:
            return 0.0
        if not self.interpolate or i == len(self.times) - 1:
            return self.amps[i]
        t0, t1 = self.times[i], self.times[i + 1]
        a0, a1 = self.amps[i], self.amps[i + 1]
        return a0 + (a1 - a0) * (t - t0) / (t1 - t0)


def as_profile(value: float | CurrentProfile | Callable[[float], float]) -> CurrentProfile:
    """A number becomes a constant current; any callable of time (a charger or inverter
    model, a test hook) is used as is."""
    if isinstance(value, int | float):
        return Constant(float(value))
    if callable(value):
        return value
    raise TypeError(f"current: expected amps or a callable of time, got {value!r}")
