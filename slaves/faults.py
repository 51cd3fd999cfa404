"""Fault injection on the simulated slave bus.

Each fault is a small frozen object; `Faults.inject` activates it and `Faults.clear` removes
it, at any time while the simulator runs. The slave modules read the combined effect of all
active faults from `FaultMasks`, rebuilt on every change, so overlapping faults clear
independently. Random-frame bursts are sent by `Faults` itself, which is a device.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import can
import numpy as np

from dbc.topology import Topology

CLASSIC_LENGTHS = np.arange(9)
FD_LENGTHS = np.array([0, 1, 2, 3, 4, 5, 6, 7, 8, 12, 16, 20, 24, 32, 48, 64])


@dataclass
class FaultMasks:
    """The combined effect of the active faults, as arrays the slave modules apply."""

    voltage_offset: np.ndarray  # (modules, cells) V added to the measurement
    voltage_stuck: np.ndarray  # (modules, cells) bool
    stuck_value: np.ndarray  # (modules, cells) V; NaN = hold the value reported at injection
    open_wire: np.ndarray  # (modules, cells) bool
    sensor_open: np.ndarray  # (modules, sensors) bool
    sensor_short: np.ndarray  # (modules, sensors) bool
    sensor_stuck: np.ndarray  # (modules, sensors) bool
    sensor_stuck_value: np.ndarray  # (modules, sensors) degC; NaN = hold the last reading
    silent: np.ndarray  # (modules,) bool
    crc_corrupt: np.ndarray  # (modules,) bool
    counter_step: np.ndarray  # (modules,) int: 1 normal, 0 frozen, >1 jumping

    @classmethod
    def healthy(cls, topology: Topology) -> FaultMasks:
        m, c, s = topology.modules, topology.cells_per_module, topology.sensors_per_module
        return cls(
            voltage_offset=np.zeros((m, c)),
            voltage_stuck=np.zeros((m, c), bool),
            stuck_value=np.full((m, c), np.nan),
            open_wire=np.zeros((m, c), bool),
            sensor_open=np.zeros((m, s), bool),
            sensor_short=np.zeros((m, s), bool),
            sensor_stuck=np.zeros((m, s), bool),
            sensor_stuck_value=np.full((m, s), np.nan),
            silent=np.zeros(m, bool),
            crc_corrupt=np.zeros(m, bool),
            counter_step=np.ones(m, np.int64),
        )


class Fault(Protocol):
    """Anything that can mark its effect on the masks."""

    def apply(self, masks: FaultMasks) -> None: ...


@dataclass(frozen=True)
class CellVoltageOffset:
    """The measurement of one cell reads ``volts`` off (the cell itself is fine)."""

    module: int
    cell: int
    volts: float

    def apply(self, masks: FaultMasks) -> None:
        masks.voltage_offset[self.module, self.cell] += self.volts


@dataclass(frozen=True)
class CellVoltageStuck:
    """The measurement stops following the cell: ``volts``, or the last value if None."""

    module: int
    cell: int
    volts: float | None = None

    def apply(self, masks: FaultMasks) -> None:
        masks.voltage_stuck[self.module, self.cell] = True
        masks.stuck_value[self.module, self.cell] = np.nan if self.volts is None else self.volts


@dataclass(frozen=True)
class OpenWire:
    """A broken sense wire: the cell is reported invalid with raw voltage 0."""

    module: int
    cell: int

    def apply(self, masks: FaultMasks) -> None:
        masks.open_wire[self.module, self.cell] = True


@dataclass(frozen=True)
class SensorOpen:
    """An open thermistor: invalid, value at the negative end of the signal's range."""

    module: int
    sensor: int

    def apply(self, masks: FaultMasks) -> None:
        masks.sensor_open[self.module, self.sensor] = True


@dataclass(frozen=True)
class SensorShort:
    """A shorted thermistor: invalid, value at the positive end of the signal's range."""

    module: int
    sensor: int

    def apply(self, masks: FaultMasks) -> None:
        masks.sensor_short[self.module, self.sensor] = True


@dataclass(frozen=True)
class SensorStuck:
    """A temperature reading stops following: ``celsius``, or the last reading if None.

    ``sensor`` None sticks every sensor of the module (a hung multiplexer or ADC).
    """

    module: int
    sensor: int | None = None
    celsius: float | None = None

    def apply(self, masks: FaultMasks) -> None:
        which = slice(None) if self.sensor is None else self.sensor
        masks.sensor_stuck[self.module, which] = True
        value = np.nan if self.celsius is None else self.celsius
        masks.sensor_stuck_value[self.module, which] = value


@dataclass(frozen=True)
class ModuleSilent:
    """The module stops sending (it still measures and obeys balancing commands)."""

    module: int

    def apply(self, masks: FaultMasks) -> None:
        masks.silent[self.module] = True


@dataclass(frozen=True)
class CrcCorruption:
    """Every frame of the module goes out with a wrong CRC byte."""

    module: int

    def apply(self, masks: FaultMasks) -> None:
        masks.crc_corrupt[self.module] = True


@dataclass(frozen=True)
class CounterFrozen:
    """The module repeats its alive counters (a hung sender)."""

    module: int

    def apply(self, masks: FaultMasks) -> None:
        masks.counter_step[self.module] = 0


@dataclass(frozen=True)
class CounterJump:
    """The module's alive counters advance by ``step`` per frame instead of 1."""

    module: int
    step: int = 5

    def apply(self, masks: FaultMasks) -> None:
        masks.counter_step[self.module] = self.step


@dataclass(frozen=True)
class RandomFrames:
    """Random frames (IDs, lengths, payloads from the simulator seed) at ``rate_hz``."""

    rate_hz: float = 500.0
    max_id: int = 0x7FF

    def apply(self, masks: FaultMasks) -> None:
        """Nothing to mask: `Faults.step` sends the frames."""


class Faults:
    """Active faults of one simulated slave bus; a device that sends the random bursts."""

    def __init__(self, topology: Topology, rng: np.random.Generator) -> None:
        self.topology = topology
        self.rng = rng
        self.active: list[Fault] = []
        self.masks = FaultMasks.healthy(topology)
        self.healthy = True  # no active fault touches the masks: the modules skip them

    def inject(self, fault: Fault) -> Fault:
        """Activate ``fault`` now; returns it so it can be cleared later."""
        self._check(fault)
        self.active.append(fault)
        self._rebuild()
        return fault

    def clear(self, fault: Fault | None = None) -> None:
        """Remove ``fault`` (every equal instance), or every fault when None."""
        if fault is None:
            self.active.clear()
        else:
            if fault not in self.active:
                raise ValueError(f"fault not active: {fault!r}")
            self.active = [f for f in self.active if f != fault]
        self._rebuild()

    def _rebuild(self) -> None:
        masks = FaultMasks.healthy(self.topology)
        for fault in self.active:
            fault.apply(masks)
        self.masks = masks
        self.healthy = all(isinstance(f, RandomFrames) for f in self.active)

    def _check(self, fault: Fault) -> None:
        topo = self.topology
        limits = {
            "module": topo.modules,
            "cell": topo.cells_per_module,
            "sensor": topo.sensors_per_module,
        }
        if isinstance(fault, RandomFrames):
            if fault.rate_hz <= 0 or not 0 <= fault.max_id <= 0x7FF:
                raise ValueError(f"{fault!r}: rate_hz must be > 0 and max_id 0..0x7FF")
            return
        for name, limit in limits.items():
            value = getattr(fault, name, None)
            if value is not None and not 0 <= value < limit:
                raise ValueError(f"{type(fault).__name__}.{name}: {value} is not in 0..{limit - 1}")
        if isinstance(fault, CounterJump) and not 2 <= fault.step <= 15:
            raise ValueError(f"CounterJump.step: {fault.step} is not in 2..15")

    def step(self, t: float, dt: float) -> list[can.Message]:
        """The random frames of the active bursts falling in ``[t, t + dt)``."""
        if not self.active:
            return []
        out: list[can.Message] = []
        for fault in self.active:
            if isinstance(fault, RandomFrames):
                out.extend(self._burst(fault, t, dt))
        out.sort(key=lambda m: m.timestamp)
        return out

    def _burst(self, fault: RandomFrames, t: float, dt: float) -> list[can.Message]:
        n = int(self.rng.poisson(fault.rate_hz * dt))
        fd = self.topology.fd
        lengths = self.rng.choice(FD_LENGTHS if fd else CLASSIC_LENGTHS, n)
        ids = self.rng.integers(0, fault.max_id + 1, n)
        stamps = t + dt * self.rng.random(n)
        return [
            can.Message(
                arbitration_id=int(ids[k]),
                data=self.rng.bytes(int(lengths[k])),
                timestamp=float(stamps[k]),
                is_extended_id=False,
                is_fd=fd,
            )
            for k in range(n)
        ]

    def receive(self, msg: can.Message) -> None:
        """Faults react to nothing the master sends."""
