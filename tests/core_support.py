"""A closed-loop stand-in for everything around the controller core, frame by frame.

`Plant` plays the slave modules, the IVT-S current sensor, the contactor driver and the
EMS: it encodes their frames with cantools from the DBC files the controller is configured
with and protects slave frames with an alive counter and a CRC computed here bit by bit (not
with ``dbc.e2e``), so the core is checked against an independent encoder. It decodes what the
core sends with cantools too. The HV side is simple but closed: the DC link charges through
the precharge resistor while minus and precharge are closed, the load current flows only
while minus and plus read closed, and the aux contacts follow the coil commands.

`Rig` steps the core and the plant in lockstep at the configured cycle.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field

import cantools
import numpy as np
from e2e_reference import frame_crc

from controller.adapters.base import Level
from controller.config.loader import ControllerConfig, default_config
from controller.contactors import ContactorState, Request
from controller.core import Controller, StepResult
from controller.frames import MAX_PAYLOAD, FrameBatch, OutFrame
from controller.protection import Check
from dbc import e2e, master_e2e

BUSES = ("internal", "vehicle")  # the bus names a batch of `to_batch` carries
INTERNAL, VEHICLE = 0, 1  # indices into BUSES
BASE_CELL_V = 3.7
BASE_TEMP = 25.0
PRECHARGE_OHM = 50.0
LINK_FARAD = 0.002  # with the resistor: a 0.1 s precharge time constant
LINK_BLEED_S = 2.0  # discharge time constant of the DC link with everything open
DRIVER_TIMEOUT_S = 0.1  # the driver opens every coil without a fresh command this long
STATE_NAMES = {s.value: s for s in ContactorState}


def with_crc(frame_id: int, payload: bytes) -> bytes:
    """``payload`` with byte 0 set to the CRC over the ID (2 bytes, LE) and bytes 1..DLC-1."""
    data = bytearray(payload)
    data[0] = frame_crc(frame_id, bytes(data))
    return bytes(data)


@dataclass(frozen=True)
class SlaveFrame:
    """One multiplexer group (or the status frame) of one module, as signals to fill."""

    message: cantools.database.can.Message
    mux: int | None
    cells: tuple[tuple[str, str, int], ...]  # (signal, "voltage"/"invalid", pack cell)
    sensors: tuple[tuple[str, str, int], ...]  # (signal, "value"/"invalid", pack sensor)


_CELL = re.compile(r"^M(\d+)_Cell(\d+)_(Voltage|Invalid)$")
_TEMP = re.compile(r"^M(\d+)_Temp(\d+)(_Invalid)?$")


def _groups(message: cantools.database.can.Message, cpm: int, spm: int) -> list[SlaveFrame]:
    muxes = sorted({i for s in message.signals for i in (s.multiplexer_ids or ())})
    out = []
    for mux in muxes or [None]:
        cells, sensors = [], []
        for s in message.signals:
            if mux is not None and mux not in (s.multiplexer_ids or ()):
                continue
            if m := _CELL.match(s.name):
                kind = "voltage" if m[3] == "Voltage" else "invalid"
                cells.append((s.name, kind, int(m[1]) * cpm + int(m[2])))
            elif m := _TEMP.match(s.name):
                sensors.append(
                    (s.name, "invalid" if m[3] else "value", int(m[1]) * spm + int(m[2]))
                )
        out.append(SlaveFrame(message, mux, tuple(cells), tuple(sensors)))
    return out


@dataclass
class Plant:
    """Slaves, sensor, contactor driver and EMS around one controller configuration."""

    config: ControllerConfig
    cell_v: np.ndarray = field(init=False)
    cell_invalid: np.ndarray = field(init=False)
    temp: np.ndarray = field(init=False)
    temp_invalid: np.ndarray = field(init=False)
    open_wire: np.ndarray = field(init=False)
    demand: float = 0.0  # A through the closed pack, + = charging
    u1_offset: float = 0.0  # V added to the sensor's pack voltage (a drifting sensor)
    link: float = 0.0  # V on the DC link
    request: Request = Request.STANDBY
    reset: bool = False
    silent: set[str] = field(default_factory=set)  # "M03", "cells", "temps", "ivt", "ems", ...
    frozen: set[str] = field(default_factory=set)  # sources whose counter stops advancing
    commands: tuple[bool, bool, bool] = (False, False, False)
    contacts: tuple[bool, bool, bool] = (False, False, False)
    log: list[tuple[float, str, dict[str, float]]] = field(default_factory=list)
    received: dict[str, dict[str, float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        pack = self.config.pack
        self.cell_v = np.full(pack.cells, BASE_CELL_V)
        self.cell_invalid = np.zeros(pack.cells, bool)
        self.temp = np.full(pack.sensors, BASE_TEMP)
        self.temp_invalid = np.zeros(pack.sensors, bool)
        self.open_wire = np.zeros(pack.modules, bool)
        self.slaves = cantools.database.load_file(str(self.config.dbc.slaves))
        self.sensor = cantools.database.load_file(str(self.config.dbc.sensor))
        self.master = cantools.database.load_file(str(self.config.dbc.master))
        cpm, spm = pack.cells_per_module, pack.sensors_per_module
        name = "{}_M{:02}"
        self.modules = [
            {
                kind: _groups(self.slaves.get_message_by_name(name.format(kind, m)), cpm, spm)
                for kind in ("CellVoltages", "Temperatures", "ModuleStatus")
            }
            for m in range(pack.modules)
        ]
        self.counters: dict[int, int] = {}
        self._forced: set[str] = set()
        self._cache: dict[tuple[object, ...], bytes] = {}
        self._last_fresh = -math.inf
        self._last_command_counter: int | None = None
        self._time = 0.0

    # -- what the test changes -------------------------------------------------------

    def force(self, *sources: str) -> None:
        """Send these sources at the next step whatever their schedule ("cells", "ivt"...)."""
        self._forced.update(sources)

    @property
    def pack_voltage(self) -> float:
        return float(self.cell_v.sum())

    @property
    def current(self) -> float:
        minus, precharge, plus = self.contacts
        if minus and plus:
            return self.demand
        if minus and precharge:
            return -(self.pack_voltage - self.link) / PRECHARGE_OHM
        return 0.0

    # -- frames out ------------------------------------------------------------------

    def frames(self, k: int, now: float, dt: float) -> list[tuple[int, int, bytes]]:
        """(bus, id, payload) of every frame due at step ``k`` (1-based) at ``now``."""
        self._advance(now, dt)
        forced, self._forced = self._forced, set()

        def due(source: str, period: float) -> bool:
            n = max(1, round(period / dt))
            return source in forced or (k - 1) % n == 0

        out: list[tuple[int, int, bytes]] = []
        for m, groups in enumerate(self.modules):
            tag = f"M{m:02}"
            if tag in self.silent:
                continue
            for kind, period, source in (
                ("CellVoltages", 0.1, "cells"),
                ("Temperatures", 1.0, "temps"),
                ("ModuleStatus", 0.1, "status"),
            ):
                if source in self.silent or not due(source, period):
                    continue
                for group in groups[kind]:
                    out.append((INTERNAL, *self._slave(m, group, tag)))
        if "ivt" not in self.silent:
            readings = (
                ("I", self.current, 0.02),
                ("U1", self.pack_voltage + self.u1_offset, 0.1),
                ("U2", self.link, 0.1),
            )
            for q, value, period in readings:
                if due("ivt", period):
                    out.append((INTERNAL, *self._ivt(q, round(value * 1000.0))))  # mA, mV
        if "feedback" not in self.silent and due("feedback", 0.02):
            values = dict(zip(("Minus", "Precharge", "Plus"), self.contacts, strict=True))
            signals = {f"ContactorFbk_{c}Closed": int(v) for c, v in values.items()}
            signals["ContactorFbk_CommandTimeout"] = int(now - self._last_fresh > DRIVER_TIMEOUT_S)
            out.append(
                (
                    INTERNAL,
                    *self._plain("ContactorFeedback", signals, "ContactorFbk_Counter", "feedback"),
                )
            )
        if "ems" not in self.silent and due("ems", 0.1):
            signals = {"EMS_RequestedState": int(self.request), "EMS_FaultReset": int(self.reset)}
            out.append(
                (VEHICLE, *self._plain("EMS_StateRequest", signals, "EMS_AliveCounter", "ems"))
            )
        return out

    def _advance(self, now: float, dt: float) -> None:
        self._time = now
        if now - self._last_fresh > DRIVER_TIMEOUT_S:
            self.commands = (False, False, False)  # the driver's own fail-safe
        self.contacts = self.commands
        minus, precharge, plus = self.contacts
        if minus and plus:
            self.link = self.pack_voltage
        elif minus and precharge:
            tau = PRECHARGE_OHM * LINK_FARAD
            self.link += (self.pack_voltage - self.link) * (1.0 - math.exp(-dt / tau))
        else:
            self.link *= math.exp(-dt / LINK_BLEED_S)

    def _counter(self, frame_id: int, source: str, modulo: int = 16) -> int:
        """Next alive counter; Profile 11 counters (CRC-protected slave frames) count 0..14."""
        start = frame_id % modulo - 1  # counters start anywhere
        value = self.counters.get(frame_id, start)
        if source not in self.frozen or frame_id not in self.counters:
            value = (value + 1) % modulo
        self.counters[frame_id] = value
        return value

    def _encode(self, message: cantools.database.can.Message, signals: dict[str, float]) -> bytes:
        key = (message.frame_id, tuple(sorted(signals.items())))
        payload = self._cache.get(key)
        if payload is None:
            payload = message.encode(signals, scaling=True, strict=False)
            self._cache[key] = payload
        return payload

    def _slave(self, m: int, group: SlaveFrame, tag: str) -> tuple[int, bytes]:
        msg = group.message
        signals: dict[str, float] = {s.name: 0 for s in msg.signals if s.multiplexer_ids is None}
        if group.mux is not None:
            signals[f"{msg.name}_Mux"] = group.mux
        for name, kind, i in group.cells:
            signals[name] = (
                round(float(self.cell_v[i]), 4) if kind == "voltage" else int(self.cell_invalid[i])
            )
        for name, kind, i in group.sensors:
            signals[name] = (
                round(float(self.temp[i]), 1) if kind == "value" else int(self.temp_invalid[i])
            )
        if msg.name.startswith("ModuleStatus"):
            cpm = self.config.pack.cells_per_module
            signals[f"M{m:02}_ModuleVoltage"] = round(
                float(self.cell_v[m * cpm : (m + 1) * cpm].sum()), 2
            )
            signals[f"M{m:02}_BoardTemperature"] = BASE_TEMP
            signals[f"M{m:02}_OpenWire"] = int(self.open_wire[m])
        signals[f"{msg.name}_Counter"] = self._counter(msg.frame_id, tag, modulo=15)
        return msg.frame_id, with_crc(msg.frame_id, self._encode(msg, signals))

    def _ivt(self, q: str, raw: int) -> tuple[int, bytes]:
        msg = self.sensor.get_message_by_name(f"IVT_Result_{q}")
        signals = {s.name: 0 for s in msg.signals}
        signals[f"IVT_{q}_Id"] = {"I": 0, "U1": 1, "U2": 2}[q]
        signals[f"IVT_{q}_Value"] = raw
        signals[f"IVT_{q}_Counter"] = self._counter(msg.frame_id, "ivt")
        return msg.frame_id, self._encode(msg, signals)

    def _plain(
        self, name: str, signals: dict[str, float], counter: str, source: str
    ) -> tuple[int, bytes]:
        msg = self.master.get_message_by_name(name)
        full = {s.name: 0 for s in msg.signals} | signals
        value = self._counter(msg.frame_id, source, e2e.COUNTER_MODULO)
        return msg.frame_id, master_e2e.seal(msg.frame_id, self._encode(msg, full), value)

    # -- frames in -------------------------------------------------------------------

    def receive(self, frame_id: int, data: bytes, now: float) -> None:
        """Take one frame the controller sent; master frames are decoded and logged."""
        try:
            msg = self.master.get_message_by_frame_id(frame_id)
        except KeyError:
            return  # balancing commands: the plant has no balancing resistors
        values = msg.decode(data, decode_choices=False)
        self.log.append((now, msg.name, values))
        self.received[msg.name] = values
        if msg.name == "ContactorCommand" and master_e2e.intact(frame_id, data):
            counter = int(values["ContactorCmd_Counter"])
            if counter != self._last_command_counter:
                self._last_command_counter = counter
                self._last_fresh = now
                self.commands = tuple(
                    bool(values[f"ContactorCmd_{c}Close"]) for c in ("Minus", "Precharge", "Plus")
                )

    def sent(self, name: str, since: float = -math.inf) -> list[tuple[float, dict[str, float]]]:
        """(time, signals) of every ``name`` frame the controller sent at or after ``since``."""
        return [(t, v) for t, n, v in self.log if n == name and t >= since - 1e-9]


def to_batch(frames: list[tuple[int, int, bytes]], now: float) -> FrameBatch:
    n = len(frames)
    data = np.zeros((n, MAX_PAYLOAD), np.uint8)
    for i, (_, _, payload) in enumerate(frames):
        data[i, : len(payload)] = np.frombuffer(payload, np.uint8)
    return FrameBatch(
        ids=np.array([f[1] for f in frames], np.uint32),
        dlc=np.array([len(f[2]) for f in frames], np.uint8),
        data=data,
        timestamps=np.full(n, now),
        bus=np.array([f[0] for f in frames], np.uint8),
        bus_names=BUSES,
    )


class Rig:
    """Controller core and plant in lockstep; ``now`` is the time of the last step."""

    def __init__(self, config: ControllerConfig | None = None) -> None:
        self.config = config or default_config()
        self.controller = Controller(self.config)
        self.plant = Plant(self.config)
        self.state = self.controller.initial_state(0.0)
        self.cycle = self.config.cycle_s
        self.k = 0
        self.now = 0.0
        self.result: StepResult | None = None
        self.frames_in: list[tuple[int, int, bytes]] = []  # (bus, id, payload) of the last step

    def step(self) -> StepResult:
        self.k += 1
        self.now = round(self.k * self.cycle, 9)
        self.frames_in = self.plant.frames(self.k, self.now, self.cycle)
        batch = to_batch(self.frames_in, self.now)
        self.result = self.controller.step(self.state, batch, self.now)
        self.state = self.result.state
        self.deliver(self.result.frames)
        return self.result

    def deliver(self, frames: tuple[OutFrame, ...]) -> None:
        for frame in frames:
            self.plant.receive(frame.arbitration_id, frame.data, self.now)

    def run(self, seconds: float) -> None:
        end = self.now + seconds - 1e-9
        while self.now < end:
            self.step()

    def run_until(self, predicate: Callable[[StepResult], bool], limit: float) -> float:
        """Step until ``predicate`` holds; its time (fails the test after ``limit`` s)."""
        end = self.now + limit
        while self.now < end:
            if predicate(self.step()):
                return self.now
        raise AssertionError(f"condition not reached within {limit} s (t = {self.now:.2f} s)")

    def close(self, request: Request = Request.DISCHARGE, limit: float = 5.0) -> float:
        """Request a closed mode and step until the contactors are closed in it."""
        self.plant.request = request
        target = (
            ContactorState.CLOSED_CHARGE
            if request is Request.CHARGE
            else ContactorState.CLOSED_DISCHARGE
        )
        return self.run_until(lambda r: r.state.contactors.state is target, limit)

    def level(self, check: Check) -> Level:
        return self.state.protection.levels[check]
