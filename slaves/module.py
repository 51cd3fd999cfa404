"""The slave modules of one bus: measure the plant, send protected frames, obey balancing.

All modules are handled as arrays: each message kind keeps a send schedule per module
(its DBC ``GenMsgCycleTime`` with a per-module phase offset so modules do not all burst at
once), and every frame due in a step is sampled and packed in one vectorised pass. A step
may span many send periods: each frame is sampled at its own send instant, from the plant's
exact solution over the step (`CellArray.voltage_at`, `ModuleThermal.temperature_at`). Layouts
are compiled once from the cantools database; every module's messages must share them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

import can
import cantools
import numpy as np

from dbc.e2e import COUNTER_MODULO, protect_batch
from dbc.topology import Topology
from slaves.balancing import Balancer, BalancingParams
from slaves.codec import Packer, joined, signal_key
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
    """Frames of one message kind, group after group, before protection."""

    stamps: np.ndarray
    ids: np.ndarray
    payload: np.ndarray  # (frames, length) uint8
    counters: np.ndarray
    xor: np.ndarray | None  # XORed into the CRC byte (CRC corruption fault); None: healthy


class _Events(NamedTuple):
    """The send instants of one message kind due in a step: module by module, oldest first."""

    modules: np.ndarray  # (events,) module of each instant
    stamps: np.ndarray  # (events,) virtual send instants
    rank: np.ndarray  # (events,) how many earlier instants of its module the step holds
    first: np.ndarray  # (events,) index of its module's first event in the step
    last: np.ndarray  # (events,) bool: its module's last event in the step
    single: bool  # no module has two: a step no longer than the period


class _Schedule:
    """Send instants ``phase[m] + n * period``; ``due(t)`` gives every one not yet sent up to
    ``t``, however many periods the step spans."""

    EPS = 1e-9

    def __init__(self, period: float, phase: np.ndarray) -> None:
        self.period = period
        self.phase = phase
        self.n = np.zeros(phase.shape, np.int64)  # index of each module's next send instant
        self.instants = phase.copy()  # each module's next send instant
        self.next = float(phase.min())  # nothing is due before it
        self._modules = np.arange(phase.size)
        self._zeros = np.zeros(phase.size, np.int64)
        self._true = np.ones(phase.size, bool)

    def due(self, t: float) -> _Events | None:
        """The instants in ``(last t, t]``; None when there is none."""
        limit = t + self.EPS
        if self.next > limit:
            return None
        due = np.flatnonzero(self.instants <= limit)
        following = self.phase[due] + (self.n[due] + 1) * self.period
        if following.min() <= limit:
            return self._many(limit)
        # a step shorter than the period: one instant per due module
        stamps = self.instants[due]
        self.n[due] += 1
        self.instants[due] = following
        self.next = float(np.minimum.reduce(self.instants))
        size = due.size
        return _Events(
            due, stamps, self._zeros[:size], self._modules[:size], self._true[:size], True
        )

    def _many(self, limit: float) -> _Events:
        phase, period = self.phase, self.period
        last = np.floor((limit - phase) / period).astype(np.int64)
        last -= phase + last * period > limit  # the float division may land one off
        last += phase + (last + 1) * period <= limit
        count = np.maximum(last + 1 - self.n, 0)
        modules = np.repeat(self._modules, count)
        first = np.repeat(np.cumsum(count) - count, count)
        rank = np.arange(modules.size) - first
        stamps = phase[modules] + (self.n[modules] + rank) * period
        self.n += count
        self.instants = phase + self.n * period
        self.next = float(np.minimum.reduce(self.instants))
        return _Events(modules, stamps, rank, first, rank == count[modules] - 1, False)


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
        shapes = {signal_key(v)[1:] for v in full_values}
        if len(shapes) != 1:
            raise ValueError(f"{first.name}: slots differ in length, scaling or sign")
        # each slot's value and invalid flag pack as one column: raw | invalid << bits
        self.values = Packer(full_values, self.length)
        self._value_bits = full_values[0].length
        self._value_mask = (1 << self._value_bits) - 1
        slots = [joined(v, f) for v, f in zip(full_values, full_flags, strict=True)]
        self.packer = Packer([mux, *slots], self.length)
        self._used = self.channels >= 0
        self._all_used = bool(self._used.all())
        self._channel = np.where(self._used, self.channels, 0)
        self._mux = np.arange(len(group_ids))

    @property
    def groups(self) -> int:
        return self.channels.shape[0]

    def encode(self, value: np.ndarray, bad: np.ndarray | None) -> np.ndarray:
        """``(rows, groups, length)`` payloads for the rows of ``value`` (physical, per
        channel) and ``bad`` (invalid flags; None: all valid); unused slots stay zero."""
        raw = self.values.to_raw(value, 0) & self._value_mask
        slot = raw if bad is None else raw | bad.astype(np.int64) << self._value_bits
        columns = slot[:, self._channel]  # (rows, groups, slots)
        if not self._all_used:
            columns = np.where(self._used, columns, 0)
        rows, groups, slots = columns.shape
        frames = np.empty((rows, groups, 1 + slots), np.int64)
        frames[:, :, 0] = self._mux
        frames[:, :, 1:] = columns
        payload = self.packer.pack(frames.reshape(rows * groups, -1))
        return payload.reshape(rows, groups, self.length)

    def value_range(self) -> tuple[float, float]:
        """Physical values of the most negative and most positive raw value of a slot."""
        p = self.values
        return (
            float(p.raw_min[0] * p.scale[0] + p.offset[0]),
            float(p.raw_max[0] * p.scale[0] + p.offset[0]),
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
        # kinds of one period share a schedule, so they share send instants and samples
        by_period: dict[float, _Schedule] = {}
        self._schedules = {
            kind: by_period.setdefault(period, _Schedule(period, spread * period))
            for kind, period in (
                ("voltages", self.voltages.period),
                ("temperatures", self.temperatures.period),
                ("status", self.status_period),
            )
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
        self._since = 0.0  # start of the plant's last step
        self._group_offsets = np.arange(max(self.voltages.groups, self.temperatures.groups, 1))
        self._sampled: tuple[_Events, np.ndarray] | None = None  # voltages of the last events

    @property
    def longest_period(self) -> float:
        """The longest send period of any message kind (s)."""
        return max(s.period for s in self._schedules.values())

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
        frames = self.frames(t, dt)
        return [] if frames is None else frames.messages()

    def frames(self, t: float, dt: float) -> SlaveFrames | None:
        """The frames due in the plant's step ``(t - dt, t]`` as arrays, oldest first, each
        sampled at its own send instant; None when nothing is due."""
        self.t, self._since = t, t - dt
        self.balancer.update(t, self.board_temperature())
        self._sampled = None
        parts: list[_Frames] = []
        due: dict[int, _Events | None] = {}
        for kind, send in (
            ("voltages", self._send_voltages),
            ("temperatures", self._send_temperatures),
            ("status", self._send_status),
        ):
            schedule = self._schedules[kind]
            if id(schedule) not in due:
                due[id(schedule)] = schedule.due(t)
            events = due[id(schedule)]
            if events is not None and events.modules.size:
                parts.append(self._frames(kind, events, send(events)))
        if not parts:
            return None
        return self._protected(parts)

    # --- the plant at the send instants -----------------------------------------------

    def _elapsed(self, events: _Events) -> np.ndarray:
        """Seconds from the start of the plant's step to each event."""
        return events.stamps - self._since

    def _voltages_at(self, events: _Events) -> np.ndarray:
        """``(events, cells)`` true terminal voltages, sampled once for the kinds that share
        the events (cell voltages and module status)."""
        sampled = self._sampled
        if sampled is not None and sampled[0] is events:
            return sampled[1]
        voltages = self.plant.cells.voltage_at(
            self._elapsed(events)[:, None], events.modules, self.topology.cells_per_module
        )
        self._sampled = events, voltages
        return voltages

    def _sensor_temperatures_at(self, events: _Events) -> np.ndarray:
        """``(events, sensors)`` true sensor temperatures."""
        thermal = self.plant.thermal
        module = thermal.temperature_at(self._elapsed(events), events.modules)
        return module[:, None] + thermal.sensor_offset[events.modules]

    def _board_temperature_at(self, events: _Events) -> np.ndarray:
        board = self.plant.thermal.temperature_at(self._elapsed(events), events.modules)
        if self.balancer.idle:
            return board
        rise = self.params.balancing.board_k_per_w * self.balancing_heat()
        return board + rise[events.modules]

    # --- measuring --------------------------------------------------------------------

    def _measured(self, true: np.ndarray, sigma: float) -> np.ndarray:
        """``true`` plus Gaussian noise of ``sigma``, drawn and added in place."""
        measured = self.rng.standard_normal(true.shape)
        measured *= sigma
        measured += true
        return measured

    def _send_voltages(self, events: _Events) -> np.ndarray:
        measured = self._measured(self._voltages_at(events), self.params.voltage_noise_v)
        bad: np.ndarray | None = None
        if not self.faults.healthy:
            f = self.faults.masks
            due = events.modules
            measured = measured + f.voltage_offset[due]
            stuck, bad = f.voltage_stuck[due], f.open_wire[due]

            def reading(held: np.ndarray) -> np.ndarray:
                return np.where(bad, 0.0, np.where(stuck & ~np.isnan(held), held, measured))

            measured = _holding(events, f.stuck_value[due], self.reported_voltage, reading)
        _report(events, measured, self.reported_voltage, bad, self.reported_invalid)
        return self.voltages.encode(measured, bad)

    def _send_temperatures(self, events: _Events) -> np.ndarray:
        true = self._sensor_temperatures_at(events)
        measured = self._measured(true, self.params.temperature_noise_k)
        bad: np.ndarray | None = None
        if not self.faults.healthy:
            f = self.faults.masks
            due = events.modules
            stuck, opened, shorted = f.sensor_stuck[due], f.sensor_open[due], f.sensor_short[due]
            low, high = self.temperatures.value_range()

            def reading(held: np.ndarray) -> np.ndarray:
                value = np.where(opened, low, np.where(stuck, held, measured))
                return np.where(shorted, high, value)

            fixed = f.sensor_stuck_value[due]
            measured = _holding(events, fixed, self.reported_temperature, reading)
            bad = opened | shorted
        _report(events, measured, self.reported_temperature, bad, self.reported_temperature_invalid)
        return self.temperatures.encode(measured, bad)

    def _send_status(self, events: _Events) -> np.ndarray:
        due = events.modules
        module_v = self._voltages_at(events).sum(axis=1)
        module_v += self.params.module_voltage_noise_v * self.rng.standard_normal(due.size)
        values = np.zeros((due.size, len(STATUS_FIELDS)))  # ADC and self-test: not modelled
        values[:, 0] = module_v
        values[:, 1] = self._board_temperature_at(events)
        if not self.balancer.idle:
            values[:, 2] = self.balancer.active[due].sum(axis=1)
        if not self.faults.healthy:
            values[:, 3] = self.faults.masks.open_wire[due].any(axis=1)
        values[:, 6] = self.balancer.overtemp[due]
        if events.single:
            self.reported_status[due] = values
        else:
            self.reported_status[due[events.last]] = values[events.last]
        raw = self.status_packer.to_raw(values, slice(None))
        return self.status_packer.pack(raw)[:, None]

    # --- framing ----------------------------------------------------------------------

    def _frames(self, kind: str, events: _Events, payloads: np.ndarray) -> _Frames:
        """Frames of the due instants (``payloads``: ``(events, groups, length)``), at each
        instant one group after the other; the groups of one ID share its alive counter,
        counting on from instant to instant. Silent modules send nothing, so their
        counters stay."""
        ids = self._ids[kind]
        counter = self._counters[kind]
        groups = payloads.shape[1]
        due, stamps, rank = events.modules, events.stamps, events.rank
        xor = None
        if self.faults.healthy:
            first = counter[due] + rank * groups
            counters = first[:, None] + self._group_offsets[:groups]
            if events.single:
                counter[due] = (first + groups) % COUNTER_MODULO
            else:
                counter += np.bincount(due, minlength=counter.size) * groups
                counter %= COUNTER_MODULO
        else:
            masks = self.faults.masks
            talking = ~masks.silent[due]
            due, stamps, rank = due[talking], stamps[talking], rank[talking]
            payloads = payloads[talking]
            step = masks.counter_step[due]
            first = counter[due] + rank * groups * step
            counters = first[:, None] + self._group_offsets[:groups] * step[:, None]
            counter += np.bincount(due, minlength=counter.size) * groups * masks.counter_step
            counter %= COUNTER_MODULO
            xor = np.where(masks.crc_corrupt[due], CRC_CORRUPTION, 0).astype(np.uint8)
            xor = xor.repeat(groups)
        return _Frames(
            stamps.repeat(groups),
            ids[due].repeat(groups),
            payloads.reshape(-1, payloads.shape[2]),
            counters.ravel(),  # protection takes them modulo COUNTER_MODULO
            xor,
        )

    def _protected(self, parts: list[_Frames]) -> SlaveFrames:
        """Protect all frames of the step, oldest first (kinds and groups in order at one
        instant): at once where all have one length, else kind by kind."""
        widths = [p.payload.shape[1] for p in parts]
        stamps = np.concatenate([p.stamps for p in parts])
        ids = np.concatenate([p.ids for p in parts])
        if len(set(widths)) == 1:
            dlc = np.full(ids.size, widths[0])
            counters = np.concatenate([p.counters for p in parts])
            data = protect_batch(ids, np.concatenate([p.payload for p in parts]), dlc, counters)
            if not self.faults.healthy:
                data[:, 0] ^= np.concatenate([p.xor for p in parts if p.xor is not None])
        else:
            dlc = np.concatenate([np.full(p.ids.size, p.payload.shape[1]) for p in parts])
            data = np.zeros((dlc.size, max(widths)), np.uint8)
            row = 0
            for p in parts:
                frames, width = p.payload.shape
                part = protect_batch(p.ids, p.payload, dlc[row : row + frames], p.counters)
                if p.xor is not None:
                    part[:, 0] ^= p.xor
                data[row : row + frames, :width] = part
                row += frames
        fd, extended = self.topology.fd, self.topology.extended_ids
        sent = [p.stamps for p in parts if p.stamps.size]  # silent modules send nothing
        if all(s[0] == sent[0][0] == s[-1] for s in sent):  # one instant: already in order
            return SlaveFrames(stamps, ids, dlc, data, extended, fd)
        order = np.argsort(stamps, kind="stable")
        return SlaveFrames(stamps[order], ids[order], dlc[order], data[order], extended, fd)


def _holding(
    events: _Events,
    fixed: np.ndarray,
    reported: np.ndarray,
    reading: Callable[[np.ndarray], np.ndarray],
) -> np.ndarray:
    """``reading(held)`` of every event, where a stuck reading without a ``fixed`` value (NaN)
    holds the last one reported: from before the step at a module's first instant, and
    what that instant reported at its later ones (faults change only between steps)."""
    held = np.where(np.isnan(fixed), reported[events.modules], fixed)
    out = reading(held)
    if not events.single:
        later = events.rank > 0
        held = np.where(later[:, None] & np.isnan(fixed), out[events.first], held)
        out = reading(held)
    return out


def _report(
    events: _Events,
    values: np.ndarray,
    reported: np.ndarray,
    flags: np.ndarray | None,
    reported_flags: np.ndarray,
) -> None:
    """Keep what each module sent at its last instant of the step (``flags`` None: valid)."""
    modules = events.modules
    if not events.single:
        modules, values = modules[events.last], values[events.last]
        flags = None if flags is None else flags[events.last]
    reported[modules] = values
    reported_flags[modules] = False if flags is None else flags
