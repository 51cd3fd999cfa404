"""HV side of the pack: contactors, precharge resistor and DC-link capacitor.

The circuit is a handful of scalars, so it is solved exactly rather than integrated: with
the contactor states and the inputs constant, the link voltage relaxes exponentially
towards its final value, and every step is split at the instants contactors change. A
precharge test against ``V * (1 - exp(-t / RC))`` therefore holds for any step size.

Topology: the pack (source voltage ``pack_voltage`` behind ``pack_resistance``) connects to
the link through the minus contactor on the return path and, on the plus side, the main
plus contactor (``path_resistance``) in parallel with precharge contactor + precharge
resistor. A bleed resistor always sits across the link. The load draws ``load_current``
from the link (negative: a charger feeds the link) only while the link is connected to the
pack: an inverter cannot draw from a dead link, an isolated link only bleeds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from enum import Enum

import can


class ContactorId(Enum):
    MINUS = "minus"
    PRECHARGE = "precharge"
    PLUS = "plus"


class ContactorFault(Enum):
    """Injectable contactor faults."""

    NONE = "none"
    WELDED = "welded"  # main contacts do not open any more once closed
    FAILS_TO_CLOSE = "fails_to_close"  # coil energised, main contacts stay open
    AUX_STUCK_OPEN = "aux_stuck_open"  # auxiliary contact reads open whatever the main does
    AUX_STUCK_CLOSED = "aux_stuck_closed"  # auxiliary contact reads closed


@dataclass(frozen=True)
class HvCircuitConfig:
    """Electrical values; defaults are a 400 V car-sized DC link."""

    capacitance_f: float = 1.0e-3
    precharge_resistance_ohm: float = 50.0
    pack_resistance_ohm: float = 0.05  # internal resistance of the pack
    path_resistance_ohm: float = 0.002  # busbars and main contacts
    bleed_resistance_ohm: float = 100.0e3
    close_delay_s: float = 0.030  # coil energised -> main contacts closed
    open_delay_s: float = 0.015  # coil off -> main contacts open

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{f.name}: expected a finite number >= 0, got {value!r}")
        for name in (
            "capacitance_f",
            "precharge_resistance_ohm",
            "path_resistance_ohm",
            "bleed_resistance_ohm",
        ):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name}: must be > 0")


class Contactor:
    """Coil, main contacts that follow after a delay, auxiliary contact that follows them."""

    def __init__(self, close_delay_s: float, open_delay_s: float) -> None:
        self.close_delay_s = close_delay_s
        self.open_delay_s = open_delay_s
        self.fault = ContactorFault.NONE
        self.coil = False
        self.closed = False
        self.switch_at: float | None = None  # when the main contacts next try to follow the coil

    def set_coil(self, on: bool, t: float) -> None:
        """Energise or release the coil at time ``t``."""
        if on == self.coil:
            return
        self.coil = on
        if on == self.closed:
            self.switch_at = None  # released before the contacts moved
        else:
            self.switch_at = t + (self.close_delay_s if on else self.open_delay_s)

    def settle(self, t: float) -> None:
        """Move the main contacts if their switching instant has come."""
        if self.switch_at is None or self.switch_at > t:
            return
        self.switch_at = None
        if self.coil and self.fault is ContactorFault.FAILS_TO_CLOSE:
            return
        if not self.coil and self.fault is ContactorFault.WELDED:
            return
        self.closed = self.coil

    @property
    def aux_closed(self) -> bool:
        """What the auxiliary (feedback) contact reports."""
        if self.fault is ContactorFault.AUX_STUCK_OPEN:
            return False
        if self.fault is ContactorFault.AUX_STUCK_CLOSED:
            return True
        return self.closed


class HvCircuit:
    """The DC link behind the pack contactors, advanced exactly in time.

    A Device: ``step(t, dt)`` advances the state from ``t - dt`` to ``t`` and sends nothing;
    step it before the devices that measure it. Inputs ``pack_voltage`` (V, source voltage)
    and ``load_current`` (A) are set by whoever couples the pack and the load.
    """

    def __init__(self, config: HvCircuitConfig | None = None, pack_voltage: float = 0.0) -> None:
        self.config = config or HvCircuitConfig()
        self.pack_voltage = pack_voltage
        self.load_current = 0.0
        self.link_voltage = 0.0
        c = self.config
        self.contactors = {cid: Contactor(c.close_delay_s, c.open_delay_s) for cid in ContactorId}

    def set_coil(self, contactor: ContactorId, on: bool, t: float) -> None:
        self.contactors[contactor].set_coil(on, t)

    def _conductance(self) -> float:
        """Conductance between pack source and link (0 when the circuit is open)."""
        k = self.contactors
        if not k[ContactorId.MINUS].closed:
            return 0.0
        plus_side = 0.0
        if k[ContactorId.PLUS].closed:
            plus_side += 1.0 / self.config.path_resistance_ohm
        if k[ContactorId.PRECHARGE].closed:
            plus_side += 1.0 / self.config.precharge_resistance_ohm
        if plus_side == 0.0:
            return 0.0
        return 1.0 / (self.config.pack_resistance_ohm + 1.0 / plus_side)

    @property
    def discharge_current(self) -> float:
        """Current leaving the pack into the link now (A)."""
        return self._conductance() * (self.pack_voltage - self.link_voltage)

    @property
    def pack_current(self) -> float:
        """Pack current now, positive when charging (what a shunt in the pack measures)."""
        return -self.discharge_current

    @property
    def pack_terminal_voltage(self) -> float:
        """Voltage at the battery side of the contactors (V)."""
        return self.pack_voltage - self.config.pack_resistance_ohm * self.discharge_current

    def _relax(self, duration: float) -> None:
        """Advance the link voltage exactly over ``duration`` with the contactors fixed."""
        if duration <= 0.0:
            return
        g = self._conductance()
        load = self.load_current if g > 0.0 else 0.0
        g_total = g + 1.0 / self.config.bleed_resistance_ohm
        final = (g * self.pack_voltage - load) / g_total
        tau = self.config.capacitance_f / g_total
        self.link_voltage = final + (self.link_voltage - final) * math.exp(-duration / tau)

    def step(self, t: float, dt: float) -> list[can.Message]:
        end = t
        now = t - dt
        for contactor in self.contactors.values():
            contactor.settle(now)
        while True:
            pending = [k.switch_at for k in self.contactors.values() if k.switch_at is not None]
            event = min(pending, default=math.inf)
            if event >= end:
                break
            self._relax(event - now)
            now = max(now, event)
            for contactor in self.contactors.values():
                contactor.settle(now)
        self._relax(end - now)
        return []

    def receive(self, msg: can.Message) -> None:
        """The circuit is not on the bus; the contactor driver commands it."""
