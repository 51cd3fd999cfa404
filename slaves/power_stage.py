"""The DC power stage shared by the charger and inverter models: a current regulator.

Both machines push or pull a current on the DC link and hold its voltage inside a window
(the inverter between DVL and CVL, the charger below its commanded maximum). The stage is
the usual cascaded regulator reduced to its essentials:

- an integral voltage loop limits the current so the measured link voltage settles at the
  window edge rather than beyond it: near ``v_max`` the charge current may change by
  ``voltage_gain * (v_max - v) * dt`` per step (likewise at ``v_min`` for discharge). The
  loop only ever reduces a current towards zero, it never reverses its direction; with a
  battery of incremental resistance ``R`` it settles with time constant
  ``1 / (voltage_gain * R)`` and is stable while ``voltage_gain * R * dt < 2``;
- the output current then slews towards its target at ``ramp_up`` (magnitude growing, the
  soft start) or ``ramp_down`` (magnitude falling, stops and voltage limiting).

Sign: ``current`` is the battery current, positive when charging the pack. On the link the
stage draws ``-current`` (``HvCircuit.load_current``, positive = the load draws).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Protocol


class DcLink(Protocol):
    """What a machine on the DC link sees and drives: `slaves.hv_circuit.HvCircuit` or a
    test battery model."""

    link_voltage: float
    load_current: float  # A drawn from the link by all loads together


@dataclass(frozen=True)
class PowerStageConfig:
    ramp_up: float = 20.0  # A/s while the current magnitude grows
    ramp_down: float = 100.0  # A/s while it falls
    voltage_gain: float = 100.0  # A/s per V of voltage error at the window edges

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not (value > 0) or math.isnan(value):
                raise ValueError(f"{f.name}: expected a number > 0, got {value!r}")


class PowerStage:
    """Battery current of one machine on ``link``, adding its share to ``link.load_current``.

    Several machines on one link each add their own share and take back only their own
    previous one, so they coexist as long as nothing else overwrites the link's load.
    """

    def __init__(self, link: DcLink, config: PowerStageConfig | None = None) -> None:
        self.link = link
        self.config = config or PowerStageConfig()
        self.current = 0.0

    def regulate(
        self,
        demand: float,
        dt: float,
        v_max: float = math.inf,
        v_min: float = -math.inf,
    ) -> float:
        """Move the current towards ``demand`` within the voltage window; returns it."""
        c = self.config
        v = self.link.link_voltage
        i = self.current
        high = max(0.0, i + c.voltage_gain * (v_max - v) * dt) if v_max < math.inf else math.inf
        low = min(0.0, i + c.voltage_gain * (v_min - v) * dt) if v_min > -math.inf else -math.inf
        target = min(max(demand, low), high)
        self._set(_slew(i, target, c.ramp_up * dt, c.ramp_down * dt))
        return self.current

    def stop(self, dt: float) -> float:
        """Ramp the current down to zero (at ``ramp_down``)."""
        return self.regulate(0.0, dt)

    def _set(self, current: float) -> None:
        self.link.load_current += self.current - current  # own share only: load = -current
        self.current = current


def _slew(i: float, target: float, up: float, down: float) -> float:
    """One step from ``i`` towards ``target``: magnitude grows by at most ``up``, falls by at
    most ``down``; crossing zero stops at zero for this step."""
    if (i >= 0.0 and target >= i) or (i <= 0.0 and target <= i):
        return min(target, i + up) if target >= i else max(target, i - up)
    if target > i:  # discharging (i < 0) less
        return min(target, i + down, 0.0)
    return max(target, i - down, 0.0)  # charging (i > 0) less
