"""The slave modules of one bus: measure the plant, send protected frames, obey balancing.

All modules are handled as arrays: each message kind keeps a send schedule per module
(its DBC ``GenMsgCycleTime`` with a per-module phase offset so modules do not all burst at
once), and every frame due in a step is sampled and packed in one vectorised pass. Layouts
are compiled once from the cantools database; every module's messages must share them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import NamedTuple

import can
import cantools
import numpy as np

from dbc.e2e import COUNTER_MODULO, protect_batch
from dbc.topology import Topology
from slaves.balancing import Balancer, BalancingParams
from slaves.codec import Packer, signal_key
from slaves.device import Plant
from slaves.faults import Faults
from slaves.frames import SlaveFrames

CRC_CORRUPTION = 0xA5  # XORed into the CRC byte: always a wrong CRC
STATUS_FIELDS = (
    "ModuleVoltage",
    "BoardTemperature",
    "CellsBalancing",
    "OpenWire",
    "AdcFault",
    "SelfTestFailed",
    "BalancingOvertemp",
)


@dataclass(frozen=True)
class ModuleParams:
    """Measurement and balancing behaviour of every slave module."""

    voltage_noise_v: float = 0.5e-3  # standard deviation of each cell measurement
    module_voltage_noise_v: float = 0.02
    temperature_noise_k: float = 0.1
    balancing: BalancingParams = field(default_factory=BalancingParams)

    def __post_init__(self) -> None:
        for name in ("voltage_noise_v", "module_voltage_noise_v", "temperature_noise_k"):
            if getattr(self, name) < 0:
                raise ValueError(f"modules.{name}: must be >= 0")


class _Frames(NamedTuple):
    """Frames of one message kind and group, before protection."""

    stamps: np.ndarray
    ids: np.ndarray
    payload: np.ndarray  # (frames, length) uint8
    counters: np.ndarray
    xor: np.ndarray  # XORed into the CRC byte (CRC corruption fault)


class _Schedule:
    """Send instants ``phase[m] + n * period``; ``due(t)`` marks modules with one in (.., t]."""

    EPS = 1e-9
    NONE = np.zeros(0, np.int64)

    def __init__(self, period: float, phase: np.ndarray) -> None:
        self.period = period
        self.phase = phase
        self.n = np.zeros(phase.shape, np.int64)
        self.instants = phase + self.n * period  # each module's next send instant
        self.next = float(self.instants.min())  # nothing is due before it

    def due(self, t: float) -> tuple[np.ndarray, np.ndarray]:
        """Modules due at ``t`` and their send instants; one frame per module per step."""
        if self.next > t + self.EPS:
            return self.NONE, self.NONE.astype(np.float64)
        due = np.flatnonzero(self.instants <= t + self.EPS)
        stamps = self.instants[due]
        # skip instants a step longer than the period jumped over
        n = np.floor((t + self.EPS - self.phase[due]) / self.period).astype(np.int64) + 1
        self.n[due] = n
        self.instants[due] = self.phase[due] + n * self.period
        self.next = float(self.instants.min())
        return due, stamps


class _SlotKind:
    """CellVoltages or Temperatures: one packer for every mux group, and which channel
    (cell or sensor of the module) each slot of each group carries (-1: unused slot)."""

    def __init__(self, db: cantools.database.can.Database, topology: Topology, kind: str) -> None:
        value_re = re.compile(r"M00_(?:Cell|Temp)(\d\d)(?:_Voltage)?$")
        flag_re = re.compile(r"M00_(?:Cell|Temp)(\d\d)_Invalid$")
        first = db.get_message_by_name(f"{kind}_M00")
        _check_same_layout(db, topology, kind)
        self.ids = np.array(
            [db.get_message_by_name(f"{kind}_M{m:02}").frame_id for m in range(topology.modules)]
        )
        self.period = first.cycle_time / 1000.0
        self.length = first.length
        mux = next(s for s in first.signals if s.is_multiplexer)
        group_ids = sorted({i for s in first.signals for i in (s.multiplexer_ids or [])})
        per_group = []
        for g in group_ids:
            members = [s for s in first.signals if s.multiplexer_ids == [g]]
            values = sorted((s for s in members if value_re.match(s.name)), key=lambda s: s.start)
            flags = sorted((s for s in members if flag_re.match(s.name)), key=lambda s: s.start)
            per_group.append((values, flags))
        full_values, full_flags = per_group[0]
        self.channels = np.full((len(group_ids), len(full_values)), -1, np.int64)
        for g, (values, flags) in enumerate(per_group):
            for slot, (v, f) in enumerate(zip(values, flags, strict=True)):
                same = signal_key(v) == signal_key(full_values[slot])
                if not same or signal_key(f) != signal_key(full_flags[slot]):
                    raise ValueError(f"{first.name} group {g}: slot {slot} differs from group 0")
                channel = int(value_re.match(v.name).group(1))
                if int(flag_re.match(f.name).group(1)) != channel:
                    raise ValueError(f"{first.name} group {g}: value and invalid flag disagree")
                self.channels[g, slot] = channel
        self.packer = Packer([mux, *full_values, *full_flags], self.length)
        self._used = self.channels >= 0
        self._all_used = bool(self._used.all())
        self._channel = np.where(self._used, self.channels, 0)

    @property
    def groups(self) -> int:
        return self.channels.shape[0]

    def encode(self, value: np.ndarray, bad: np.ndarray) -> np.ndarray:
        """``(groups, modules, length)`` payloads for the modules in the rows of ``value``
        (physical, per channel) and ``bad`` (invalid flags); unused slots stay zero."""
        groups, slots = self.channels.shape
        rows = value.shape[0]
        used, ch = self._used, self._channel
        raw = np.zeros((groups, rows, 1 + 2 * slots), np.int64)
        raw[:, :, 0] = np.arange(groups)[:, None]
        values = self.packer.to_raw(value[:, ch], slice(1, 1 + slots))  # (rows, groups, slots)
        flags = bad[:, ch]
        if not self._all_used:
            values = np.where(used, values, 0)
            flags = flags & used
        raw[:, :, 1 : 1 + slots] = values.transpose(1, 0, 2)
        raw[:, :, 1 + slots :] = flags.transpose(1, 0, 2)
        payload = self.packer.pack(raw.reshape(groups * rows, -1))
        return payload.reshape(groups, rows, self.length)

    def value_range(self) -> tuple[float, float]:
        """Physical values of the most negative and most positive raw value of a slot."""
        p = self.packer
        return (
            float(p.raw_min[1] * p.scale[1] + p.offset[1]),
            float(p.raw_max[1] * p.scale[1] + p.offset[1]),
        )


def _check_same_layout(db: cantools.database.can.Database, topology: Topology, kind: str) -> None:
    """Every module's message must pack exactly like module 0's (names aside)."""
    reference = [signal_key(s) for s in db.get_message_by_name(f"{kind}_M00").signals]
    for m in range(1, topology.modules):
        msg = db.get_message_by_name(f"{kind}_M{m:02}")
        if [signal_key(s) for s in msg.signals] != reference:
            raise ValueError(f"{msg.name}: layout differs from {kind}_M00")


class SlaveModules:
    """Every slave module on one bus, as one device."""

    def __init__(
        self,
        db: cantools.database.can.Database,
        topology: Topology,
        plant: Plant,
        faults: Faults,
        rng: np.random.Generator,
        params: ModuleParams | None = None,
    ) -> None:
        self.params = params or ModuleParams()
        self.topology = topology
        self.plant = plant
        self.faults = faults
        self.rng = rng
        n = topology.modules
        self.voltages = _SlotKind(db, topology, "CellVoltages")
        self.temperatures = _SlotKind(db, topology, "Temperatures")
        _check_same_layout(db, topology, "ModuleStatus")
        status = db.get_message_by_name("ModuleStatus_M00")
        self.status_ids = np.array(
            [db.get_message_by_name(f"ModuleStatus_M{m:02}").frame_id for m in range(n)]
        )
        by_name = {s.name: s for s in status.signals}
        self.status_packer = Packer([by_name[f"M00_{f}"] for f in STATUS_FIELDS], status.length)
        self.status_period = status.cycle_time / 1000.0
        self.balancer = Balancer(db, topology, self.params.balancing)

        spread = np.arange(n) / n  # phase offsets: modules spread over the shortest period
        self._schedules = {
            "voltages": _Schedule(self.voltages.period, spread * self.voltages.period),
            "temperatures": _Schedule(self.temperatures.period, spread * self.temperatures.period),
            "status": _Schedule(self.status_period, spread * self.status_period),
        }
        self._counters = {kind: np.zeros(n, np.int64) for kind in self._schedules}
        self._ids = {
            "voltages": self.voltages.ids,
            "temperatures": self.temperatures.ids,
            "status": self.status_ids,
        }
        c, s = topology.cells_per_module, topology.sensors_per_module
        self.reported_voltage = np.full((n, c), np.nan)  # last measurement sent (before ADC)
        self.reported_invalid = np.zeros((n, c), bool)
        self.reported_temperature = np.full((n, s), np.nan)
        self.reported_temperature_invalid = np.zeros((n, s), bool)
        self.reported_status = np.full((n, len(STATUS_FIELDS)), np.nan)
        self.t = 0.0

    @property
    def shortest_period(self) -> float:
        """The shortest send period of any message kind (s)."""
        return min(s.period for s in self._schedules.values())

    # --- physics coupling -------------------------------------------------------------

    def cell_voltage(self) -> np.ndarray:
        """``(modules, cells)`` true terminal voltages."""
        p = self.plant
        return p.cells.voltage.reshape(p.modules, p.cells_per_module)

    def bleed(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-cell A drawn by the bleed resistors (flattened in pack order) and the per-module
        W they dissipate (heating the module)."""
        if self.balancer.idle:
            return np.zeros(self.plant.cells.n), np.zeros(self.plant.modules)
        v = self.cell_voltage()
        current = self.balancer.bleed_current(v)
        return current.ravel(), (current * v).sum(axis=1)

    def bleed_current(self) -> np.ndarray:
        """Per-cell A drawn by the bleed resistors (flattened in pack order)."""
        return self.bleed()[0]

    def balancing_heat(self) -> np.ndarray:
        """Per-module W dissipated by the bleed resistors (heats the module)."""
        return self.bleed()[1]

    def board_temperature(self) -> np.ndarray:
        if self.balancer.idle:
            return self.plant.thermal.temperature.copy()
        rise = self.params.balancing.board_k_per_w * self.balancing_heat()
        return self.plant.thermal.temperature + rise

    # --- device -----------------------------------------------------------------------

    def receive(self, msg: can.Message) -> None:
        self.balancer.receive(msg)

    def step(self, t: float, dt: float) -> list[can.Message]:
        frames = self.frames(t)
        return [] if frames is None else frames.messages()

    def frames(self, t: float) -> SlaveFrames | None:
        """The frames due at ``t`` as arrays, oldest first; None when nothing is due."""
        self.t = t
        self.balancer.update(t, self.board_temperature())
        parts: list[_Frames] = []
        for kind, send in (
            ("voltages", self._send_voltages),
            ("temperatures", self._send_temperatures),
            ("status", self._send_status),
        ):
            due, stamps = self._schedules[kind].due(t)
            if due.size:
                parts.extend(self._frames(kind, due, stamps, send(due)))
        if not parts:
            return None
        return self._protected(parts)

    def _send_voltages(self, due: np.ndarray) -> np.ndarray:
        f = self.faults.masks
        true = self.cell_voltage()[due]
        noise = self.params.voltage_noise_v * self.rng.standard_normal(true.shape)
        if self.faults.healthy:
            measured = true + noise
            bad = np.zeros(measured.shape, bool)
            self.reported_voltage[due] = measured
            self.reported_invalid[due] = bad
            return self.voltages.encode(measured, bad)
        measured = true + noise + f.voltage_offset[due]
        stuck = f.voltage_stuck[due]
        held = np.where(
            np.isnan(f.stuck_value[due]), self.reported_voltage[due], f.stuck_value[due]
        )
        measured = np.where(stuck & ~np.isnan(held), held, measured)
        bad = f.open_wire[due]
        measured = np.where(bad, 0.0, measured)
        self.reported_voltage[due] = measured
        self.reported_invalid[due] = bad
        return self.voltages.encode(measured, bad)

    def _send_temperatures(self, due: np.ndarray) -> np.ndarray:
        f = self.faults.masks
        true = self.plant.thermal.sensor_temperatures[due]
        measured = true + self.params.temperature_noise_k * self.rng.standard_normal(true.shape)
        if self.faults.healthy:
            bad = np.zeros(measured.shape, bool)
            self.reported_temperature[due] = measured
            self.reported_temperature_invalid[due] = bad
            return self.temperatures.encode(measured, bad)
        held = f.sensor_stuck_value[due]
        held = np.where(np.isnan(held), self.reported_temperature[due], held)
        measured = np.where(f.sensor_stuck[due], held, measured)
        low, high = self.temperatures.value_range()
        measured = np.where(f.sensor_open[due], low, measured)
        measured = np.where(f.sensor_short[due], high, measured)
        bad = f.sensor_open[due] | f.sensor_short[due]
        self.reported_temperature[due] = measured
        self.reported_temperature_invalid[due] = bad
        return self.temperatures.encode(measured, bad)

    def _send_status(self, due: np.ndarray) -> np.ndarray:
        module_v = self.cell_voltage()[due].sum(axis=1)
        module_v += self.params.module_voltage_noise_v * self.rng.standard_normal(due.size)
        values = np.zeros((due.size, len(STATUS_FIELDS)))  # ADC and self-test: not modelled
        values[:, 0] = module_v
        values[:, 1] = self.board_temperature()[due]
        if not self.balancer.idle:
            values[:, 2] = self.balancer.active[due].sum(axis=1)
        if not self.faults.healthy:
            values[:, 3] = self.faults.masks.open_wire[due].any(axis=1)
        values[:, 6] = self.balancer.overtemp[due]
        self.reported_status[due] = values
        raw = self.status_packer.to_raw(values, slice(None))
        return self.status_packer.pack(raw)[None]

    def _frames(
        self, kind: str, due: np.ndarray, stamps: np.ndarray, payloads: np.ndarray
    ) -> list[_Frames]:
        """Frames of the due modules, one group after the other; the groups of one ID share
        its alive counter. Silent modules send nothing, so their counters stay."""
        ids = self._ids[kind]
        counter = self._counters[kind]
        if self.faults.healthy:
            ids, first = ids[due], counter[due]
            xor = np.zeros(due.size, np.uint8)
            out = [
                _Frames(stamps, ids, payload, (first + g) % COUNTER_MODULO, xor)
                for g, payload in enumerate(payloads)
            ]
            counter[due] = (first + len(payloads)) % COUNTER_MODULO
            return out
        masks = self.faults.masks
        talking = ~masks.silent[due]
        due, stamps = due[talking], stamps[talking]
        step = masks.counter_step[due]
        xor = np.where(masks.crc_corrupt[due], CRC_CORRUPTION, 0).astype(np.uint8)
        out = []
        for g, payload in enumerate(payloads):
            counters = (counter[due] + g * step) % COUNTER_MODULO
            out.append(_Frames(stamps, ids[due], payload[talking], counters, xor))
        counter[due] = (counter[due] + len(payloads) * step) % COUNTER_MODULO
        return out

    def _protected(self, parts: list[_Frames]) -> SlaveFrames:
        """Protect all frames of the step at once, oldest first."""
        if len(parts) == 1:
            (p,) = parts
            ids, data, stamps = p.ids, p.payload, p.stamps
            dlc = np.full(ids.size, data.shape[1])
            data = protect_batch(ids, data, dlc, p.counters)
            if not self.faults.healthy:
                data[:, 0] ^= p.xor
        else:
            width = max(p.payload.shape[1] for p in parts)
            dlc = np.concatenate([np.full(len(p.ids), p.payload.shape[1]) for p in parts])
            data = np.zeros((dlc.size, width), np.uint8)
            row = 0
            for p in parts:
                data[row : row + len(p.ids), : p.payload.shape[1]] = p.payload
                row += len(p.ids)
            ids = np.concatenate([p.ids for p in parts])
            data = protect_batch(ids, data, dlc, np.concatenate([p.counters for p in parts]))
            if not self.faults.healthy:
                data[:, 0] ^= np.concatenate([p.xor for p in parts])
            stamps = np.concatenate([p.stamps for p in parts])
        order = np.argsort(stamps, kind="stable")
        fd = self.topology.fd
        return SlaveFrames(
            stamps[order], ids[order], dlc[order], data[order], self.topology.extended_ids, fd
        )
