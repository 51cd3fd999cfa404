"""A small HV plant for contactor tests: coils, aux contacts, precharge RC and a load current."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from controller.contactors import (
    OPEN,
    Commands,
    ContactorConfig,
    ContactorEvent,
    ContactorInputs,
    ContactorMachine,
    Feedback,
    Request,
)


@dataclass
class Plant:
    """Contacts follow the coils after ``delay``; ``welded``/``stuck_open`` ignore them."""

    pack_voltage: float = 350.0
    link_voltage: float = 0.0
    precharge_tau: float = 0.15  # s, RC of resistor and DC-link capacitance
    precharge_resistance: float = 50.0  # ohm
    load_current: float = 0.0  # A through the closed main path, positive = charging
    delay: float = 0.02  # s, coil/aux response
    welded: set[int] = field(default_factory=set)
    stuck_open: set[int] = field(default_factory=set)
    silent: bool = False  # aux feedback unknown
    contacts: list[bool] = field(default_factory=lambda: [False, False, False])
    _changed: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
    _coils: Commands = OPEN

    def drive(self, commands: Commands, now: float) -> None:
        for i, (old, new) in enumerate(zip(self._coils, commands, strict=True)):
            if old != new:
                self._changed[i] = now
        self._coils = commands

    def advance(self, now: float, dt: float) -> None:
        for i, coil in enumerate(self._coils):
            if now - self._changed[i] >= self.delay:
                target = coil
                if i in self.welded and self.contacts[i]:
                    target = True
                if i in self.stuck_open:
                    target = False
                self.contacts[i] = target
        minus, pre, plus = self.contacts
        if minus and plus:
            self.link_voltage = self.pack_voltage
        elif minus and pre:
            gap = self.pack_voltage - self.link_voltage
            self.link_voltage += gap * (1.0 - math.exp(-dt / self.precharge_tau))
        else:
            self.link_voltage *= math.exp(-dt / 2.0)

    @property
    def current(self) -> float:
        minus, pre, plus = self.contacts
        if minus and plus:
            return self.load_current
        if minus and pre:
            return -(self.pack_voltage - self.link_voltage) / self.precharge_resistance
        return 0.0

    @property
    def feedback(self) -> Feedback:
        if self.silent:
            return Feedback(None, None, None)
        return Feedback(*self.contacts)


class Rig:
    """Machine and plant stepped together at a fixed period."""

    def __init__(self, config: ContactorConfig | None = None, dt: float = 0.01) -> None:
        self.config = config or ContactorConfig()
        self.machine = ContactorMachine(self.config)
        self.plant = Plant()
        self.dt = dt
        self.now = 0.0
        self.status = self.machine.initial_status(self.now)
        self.commands = OPEN
        self.events: list[ContactorEvent] = []
        self.trace: list[tuple[float, Commands, float, float]] = []  # t, commands, U1-U2, I
        self.request = Request.STANDBY
        self.fault_open = False
        self.reset = False
        self.voltage_valid = True
        self.current_valid = True

    def inputs(self) -> ContactorInputs:
        p = self.plant
        return ContactorInputs(
            request=self.request,
            fault_open=self.fault_open,
            reset_requested=self.reset,
            pack_voltage=p.pack_voltage,
            pack_voltage_valid=self.voltage_valid,
            link_voltage=p.link_voltage,
            link_voltage_valid=self.voltage_valid,
            current=p.current,
            current_valid=self.current_valid,
            feedback=p.feedback,
        )

    def tick(self) -> list[ContactorEvent]:
        self.now = round(self.now + self.dt, 9)
        self.plant.advance(self.now, self.dt)
        inputs = self.inputs()
        self.status, self.commands, events = self.machine.step(self.status, inputs, self.now)
        self.plant.drive(self.commands, self.now)
        self.events.extend(events)
        self.trace.append(
            (self.now, self.commands, inputs.pack_voltage - inputs.link_voltage, inputs.current)
        )
        return events

    def run(self, seconds: float) -> None:
        for _ in range(round(seconds / self.dt)):
            self.tick()

    def run_until(self, predicate, limit: float = 60.0) -> float:  # noqa: ANN001
        """Step until ``predicate(rig)``; return the time it became true."""
        end = self.now + limit
        while self.now < end:
            self.tick()
            if predicate(self):
                return self.now
        raise AssertionError(f"not reached within {limit} s (state {self.status.state.name})")

    def close(self, request: Request = Request.DISCHARGE) -> float:
        self.request = request
        return self.run_until(lambda r: r.status.current_allowed)
