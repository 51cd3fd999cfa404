"""Test plant for the charger and inverter models: an RC battery on the DC link and a loop."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import can


@dataclass
class RcBattery:
    """Open-circuit voltage rising linearly with charge, series resistance, one RC pair.

    A DC link for the load models: ``load_current`` is what the machines draw (charging is
    negative), ``link_voltage`` the terminal voltage, updated in ``step`` as `HvCircuit` does.
    """

    ocv: float = 95.0
    volts_per_as: float = 0.01
    r0: float = 0.1
    r1: float = 0.05
    c1: float = 100.0
    load_current: float = 0.0
    v_rc: float = 0.0
    link_voltage: float = field(init=False)

    def __post_init__(self) -> None:
        self.link_voltage = self.ocv

    def step(self, t: float, dt: float) -> list[can.Message]:
        i = -self.load_current  # into the battery
        self.ocv += self.volts_per_as * i * dt
        settled = i * self.r1
        tau = self.r1 * self.c1
        self.v_rc = settled + (self.v_rc - settled) * math.exp(-dt / tau) if tau > 0 else 0.0
        self.link_voltage = self.ocv + self.v_rc + self.r0 * i
        return []

    def receive(self, msg: can.Message) -> None:
        """Not on the bus."""


@dataclass
class Trace:
    """What the loop saw at each step end."""

    t: list[float] = field(default_factory=list)
    current: list[float] = field(default_factory=list)
    voltage: list[float] = field(default_factory=list)
    frames: list[can.Message] = field(default_factory=list)


def run(
    link,
    device,
    t0: float,
    t1: float,
    dt: float,
    inbox: Iterable[can.Message] = (),
    others: Sequence = (),
) -> Trace:
    """Step ``link`` then ``device`` (then ``others``) from ``t0`` to ``t1``.

    Frames of ``inbox`` are delivered, in timestamp order, before the first step ending
    at or after their timestamp (the master sent them during that step).
    """
    pending = sorted(inbox, key=lambda m: m.timestamp)
    trace = Trace()
    k = 0
    for n in range(1, round((t1 - t0) / dt) + 1):
        t = t0 + n * dt
        while k < len(pending) and pending[k].timestamp <= t + 1e-9:
            for d in (device, *others):
                d.receive(pending[k])
            k += 1
        link.step(t, dt)
        trace.frames += device.step(t, dt)
        for d in others:
            trace.frames += d.step(t, dt)
        trace.t.append(t)
        trace.current.append(device.current)
        trace.voltage.append(link.link_voltage)
    return trace


def every(period: float, start: float, stop: float) -> list[float]:
    """Send instants ``start, start + period, ...`` before ``stop``."""
    return [start + n * period for n in range(math.ceil((stop - start) / period - 1e-9))]
