"""The whole simulated plant: pack, HV side, current sensor, contactor driver and EMS.

Two buses, named by role: ``internal`` carries the slave modules, the IVT-S current sensor
and the contactor driver; ``vehicle`` carries the EMS and any load model (inverter,
charger) attached there. ``step(dt)`` returns the frames of each role in a dict, and
``receive(role, frames)`` hands master frames to the devices of that bus.

Cells and circuit are coupled both ways in every step. The cells are a Thevenin source for
the circuit: the sum of open-circuit and RC-pair voltages behind the sum of the series
resistances R0 (the ``pack_resistance_ohm`` of the circuit configuration is replaced by it
every step). The circuit is solved exactly over the step, split at contactor instants, and
the charge it drew from the pack (node balance of the DC link: capacitor, bleed resistor,
load) becomes the cells' current for that step. So the cells see nothing while the
contactors are open, the precharge inrush while precharging, and the load once closed, and
charge is conserved between circuit and cells to rounding.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace

import can
import numpy as np

from dbc.topology import Topology
from slaves.chemistry import Chemistry
from slaves.contactor_driver import ContactorDriver, ContactorDriverConfig
from slaves.current_sensor import CurrentSensor, CurrentSensorConfig
from slaves.device import Device
from slaves.ems import Ems, EmsCommand
from slaves.faults import Faults
from slaves.hv_circuit import ContactorId, HvCircuit, HvCircuitConfig
from slaves.profiles import CurrentProfile, as_profile
from slaves.simulator import PackSimulator, SimConfig

INTERNAL = "internal"
VEHICLE = "vehicle"
ROLES = (INTERNAL, VEHICLE)


class SimulatedSystem:
    """Pack and HV side in virtual time.

    ``load`` is a current drawn from the DC link in A (+ = discharging the pack, - = a
    charger feeding it), a number or a function of virtual time evaluated at the start of
    each step. It is one share of ``circuit.load_current``: a load model attached on the
    vehicle bus either is (or is read by) that function, or adds its own share to
    ``circuit.load_current`` as `slaves.power_stage.PowerStage` does; the shares add up.

    Like a real inverter or charger, the ``load`` share has an under-voltage lock-out: it
    draws only once the main contactors are closed on a DC link that is up (above
    ``LOAD_ON_FRACTION`` of the pack's source voltage) and stops when they open or the link
    collapses below ``LOAD_OFF_FRACTION``. A constant current drawn from a link that is
    still precharging through its resistor would drive the link voltage negative.
    """

    LOAD_ON_FRACTION = 0.9
    LOAD_OFF_FRACTION = 0.5

    def __init__(
        self,
        topology: Topology | None = None,
        chemistry: str | Chemistry = "NMC",
        seed: int = 0,
        initial_soc: float | np.ndarray = 0.5,
        ambient: float = 25.0,
        load: float | CurrentProfile | Callable[[float], float] = 0.0,
        ems_script: Sequence[EmsCommand] = (),
        config: SimConfig | None = None,
        hv: HvCircuitConfig | None = None,
        sensor: CurrentSensorConfig | None = None,
        driver: ContactorDriverConfig | None = None,
        ems_period_s: float = 0.100,
    ) -> None:
        self.pack = PackSimulator(
            topology, chemistry, seed, initial_soc, ambient, current=0.0, config=config
        )
        self.circuit = HvCircuit(hv)
        self._couple()
        self.driver = ContactorDriver(self.circuit, driver)
        self.sensor = CurrentSensor(self.circuit, sensor)
        self.sensor.temperature_c = ambient
        self.ems = Ems(ems_script, ems_period_s)
        # the driver sets coils at the end of a step, the sensor then measures the circuit
        self.pack.add_device("contactor_driver", self.driver)
        self.pack.add_device("current_sensor", self.sensor)
        self.vehicle_devices: dict[str, Device] = {"ems": self.ems}
        self.load: CurrentProfile = as_profile(load)
        self._load_share = 0.0  # what ``load`` put into circuit.load_current
        self._load_on = False
        self.charge_drawn_c = 0.0  # charge the circuit took from the cells (+ = discharge)

    # --- access for scenarios and fault injection ----------------------------------------

    @property
    def t(self) -> float:
        return self.pack.t

    @property
    def topology(self) -> Topology:
        return self.pack.topology

    @property
    def faults(self) -> Faults:
        return self.pack.faults

    @property
    def pack_current(self) -> float:
        """Mean pack current of the last step (A, + = charging): what the cells carried."""
        return self.pack.pack_current

    @property
    def link_voltage(self) -> float:
        return self.circuit.link_voltage

    # --- inputs -----------------------------------------------------------------------

    def set_load(self, load: float | CurrentProfile | Callable[[float], float]) -> None:
        """Load current from now on (A, + = drawn from the DC link)."""
        self.load = as_profile(load)

    def add_device(self, role: str, name: str, device: Device) -> None:
        """Put ``device`` on the bus ``role``; it is stepped after the devices already there."""
        if role == INTERNAL:
            self.pack.add_device(name, device)
        elif role == VEHICLE:
            if name in self.vehicle_devices:
                raise ValueError(f"device {name!r} already on the vehicle bus")
            self.vehicle_devices[name] = device
        else:
            raise ValueError(f"role: {role!r} is not one of {ROLES}")

    def receive(self, role: str, messages: Iterable[can.Message]) -> None:
        """Master frames sent on the bus ``role``, in order; every device there sees each."""
        if role == INTERNAL:
            self.pack.receive(messages)
        elif role == VEHICLE:
            for msg in messages:
                for device in self.vehicle_devices.values():
                    device.receive(msg)
        else:
            raise ValueError(f"role: {role!r} is not one of {ROLES}")

    # --- stepping ---------------------------------------------------------------------

    def step(self, dt: float) -> dict[str, list[can.Message]]:
        """Advance by ``dt`` seconds; the frames sent meanwhile on each bus, in time order."""
        if not dt > 0:
            raise ValueError(f"dt: {dt} must be positive")
        start = self.pack.t
        self._couple()
        share = float(self.load(start)) if self._load_enabled() else 0.0
        self.circuit.load_current += share - self._load_share
        self._load_share = share
        drawn = self._advance_circuit(start, dt)
        self.charge_drawn_c += drawn
        internal = self.pack.step(dt, current=-drawn / dt)
        t = self.pack.t
        vehicle: list[can.Message] = []
        for device in self.vehicle_devices.values():
            vehicle.extend(device.step(t, dt))
        vehicle.sort(key=lambda m: m.timestamp)
        return {INTERNAL: internal, VEHICLE: vehicle}

    def run(self, duration: float, dt: float = 0.01) -> dict[str, list[can.Message]]:
        """Step for ``duration`` seconds; every frame sent, per bus."""
        out: dict[str, list[can.Message]] = {role: [] for role in ROLES}
        for _ in range(round(duration / dt)):
            for role, frames in self.step(dt).items():
                out[role].extend(frames)
        return out

    def _load_enabled(self) -> bool:
        """Under-voltage lock-out of the ``load`` share, with hysteresis; the precharge path
        alone cannot carry a load, so the main contactors must be closed."""
        k = self.circuit.contactors
        link, source = self.circuit.link_voltage, self.circuit.pack_voltage
        main_closed = k[ContactorId.MINUS].closed and k[ContactorId.PLUS].closed
        if not main_closed or link < self.LOAD_OFF_FRACTION * source:
            self._load_on = False
        elif link >= self.LOAD_ON_FRACTION * source:
            self._load_on = True
        return self._load_on

    def _couple(self) -> None:
        """The cells as the circuit's source: EMF (OCV + RC voltage) behind the sum of R0."""
        self.circuit.pack_voltage, resistance = self.pack.plant.cells.source()
        if resistance != self.circuit.config.pack_resistance_ohm:
            self.circuit.config = replace(self.circuit.config, pack_resistance_ohm=resistance)

    def _advance_circuit(self, start: float, dt: float) -> float:
        """Step the circuit over ``(start, start + dt]``; the charge it drew from the pack.

        Split at contactor instants so the contactors are fixed in each piece; there the
        charge leaving the pack is what the link node took: capacitor charge, bleed
        (trapezoid: a few mA) and the load, all zero unless the pack is connected.
        """
        end = start + dt
        now = start
        drawn = 0.0
        while now < end:
            upcoming = [
                k.switch_at
                for k in self.circuit.contactors.values()
                if k.switch_at is not None and now < k.switch_at < end
            ]
            until = min(upcoming, default=end)
            drawn += self._piece(now, until)
            now = until
        return drawn

    def _piece(self, begin: float, until: float) -> float:
        circuit = self.circuit
        before = circuit.link_voltage
        circuit.step(until, until - begin)
        k = circuit.contactors
        connected = k[ContactorId.MINUS].closed and (
            k[ContactorId.PLUS].closed or k[ContactorId.PRECHARGE].closed
        )
        if not connected:
            return 0.0
        c = circuit.config
        after = circuit.link_voltage
        span = until - begin
        bleed = span * 0.5 * (before + after) / c.bleed_resistance_ohm
        return c.capacitance_f * (after - before) + bleed + circuit.load_current * span
