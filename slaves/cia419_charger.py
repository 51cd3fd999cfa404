"""Simulated CiA 419 battery charger: a `canopen` node that obeys the battery's current request.

It receives the battery's TPDO3 (6070h charge current requested, 1/16 A, and 6081h state of
charge, 0xFF = not available, kept as ``battery_soc`` None) as its RPDO1 and consumes the
battery's heartbeat (1016h). Its output current follows the request, clamped to its own maximum
and ramped up at a finite rate; it drops at once to zero when the request is 0, when the
request is older than ``request_timeout``, or when the battery's heartbeat is missing for
``heartbeat_timeout`` or reports a state other than OPERATIONAL. It sends its status (6001h)
and the charge returned (6052h, 1/8 Ah) to the battery's RPDO1 COB-ID (0x200 + battery ID), and
its own heartbeat.

Fault injection: ``heartbeat_silent`` stops its own heartbeat (the rest goes on), as a charger
whose communication half-fails; the battery node that consumes it must stop the charge.

Reception runs on canopen's receive thread and only records what arrived; `step(now)` takes
it over, so every time-out and ramp runs on the caller's clock, as in the rest of the plant.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from enum import IntFlag

import canopen
from canopen.objectdictionary import ObjectDictionary, ODArray, ODRecord, ODVariable, datatypes
from canopen.pdo import PdoMap

_U8, _U16, _U32 = datatypes.UNSIGNED8, datatypes.UNSIGNED16, datatypes.UNSIGNED32
OPERATIONAL = 5  # NMT state byte of a heartbeat
SOC_NOT_AVAILABLE = 0xFF  # 6081h of a battery that does not know its SOC
REQUEST = (0x6070, 0)
SOC = (0x6081, 0)
STATUS = (0x6001, 0)
CHARGE_RETURNED = (0x6052, 0)
OUTPUT_CURRENT = (0x2000, 0)


class ChargerStatus(IntFlag):
    """Bits of 6001h as this charger sets them."""

    OUTPUT_ON = 1 << 0
    BATTERY_LOST = 1 << 1  # no battery heartbeat within the consumer time, or not OPERATIONAL
    REQUEST_STALE = 1 << 2  # no current request within request_timeout
    CURRENT_LIMITED = 1 << 3  # request above the charger's maximum


@dataclass(frozen=True)
class ChargerConfig:
    node_id: int = 0x10
    battery_node_id: int = 1
    max_current: float = 50.0  # A
    ramp_rate: float = 100.0  # A/s upwards; reductions are immediate
    heartbeat_timeout: float = 1.5  # s, 1016h consumer time for the battery
    request_timeout: float = 1.0  # s
    heartbeat_ms: int = 500  # own producer heartbeat
    status_ms: int = 500  # TPDO1 period


class _Timer:
    """Fixed-rate schedule on the caller's clock; restarts after a gap instead of bursting."""

    def __init__(self) -> None:
        self.last: float | None = None

    def due(self, now: float, period: float) -> bool:
        if period <= 0:
            return False
        if self.last is None or now - self.last >= 2 * period:
            self.last = now
            return True
        if now - self.last >= period - 1e-9:
            self.last += period
            return True
        return False


def _var(
    name: str, index: int, subindex: int, data_type: int, access: str, default: int
) -> ODVariable:
    var = ODVariable(name, index, subindex)
    var.data_type, var.access_type, var.default = data_type, access, default
    var.pdo_mappable = index >= 0x2000
    return var


def _group(
    kind: type[ODRecord] | type[ODArray], name: str, index: int, values: list[tuple]
) -> ODRecord | ODArray:
    group = kind(name, index)
    group.add_member(_var("Highest sub-index supported", index, 0, _U8, "const", len(values)))
    for sub, (entry_name, data_type, access, default) in enumerate(values, 1):
        group.add_member(_var(entry_name, index, sub, data_type, access, default))
    return group


def build_charger_dictionary(config: ChargerConfig) -> ObjectDictionary:
    """The charger's objects: communication area, PDOs, and the 419/418 objects it uses."""
    od = ObjectDictionary()
    bat = config.battery_node_id
    consumer_ms = round(config.heartbeat_timeout * 1000)
    od.add_object(_var("Device type", 0x1000, 0, _U32, "const", 419))
    od.add_object(_var("Error register", 0x1001, 0, _U8, "ro", 0))
    entries: list[tuple] = [("Consumer heartbeat time", _U32, "const", bat << 16 | consumer_ms)]
    od.add_object(_group(ODArray, "Consumer heartbeat time", 0x1016, entries))
    od.add_object(_var("Producer heartbeat time", 0x1017, 0, _U16, "const", config.heartbeat_ms))
    # RPDO1 <- battery TPDO3: 6070h (16 bit) + 6081h (8 bit)
    entries = [("COB-ID", _U32, "const", 0x380 + bat), ("Transmission type", _U8, "const", 254)]
    od.add_object(_group(ODRecord, "RPDO1 communication parameter", 0x1400, entries))
    entries = [("Mapped object 1", _U32, "const", 0x60700010)]
    entries.append(("Mapped object 2", _U32, "const", 0x60810008))
    od.add_object(_group(ODRecord, "RPDO1 mapping parameter", 0x1600, entries))
    # TPDO1 -> battery RPDO1: 6001h (16 bit) + 6052h (16 bit), timer-driven
    entries = [
        ("COB-ID", _U32, "const", 0x200 + bat),
        ("Transmission type", _U8, "const", 254),
        ("Inhibit time", _U16, "const", 0),
        ("Reserved", _U8, "const", 0),
        ("Event timer", _U16, "const", config.status_ms),
    ]
    od.add_object(_group(ODRecord, "TPDO1 communication parameter", 0x1800, entries))
    entries = [("Mapped object 1", _U32, "const", 0x60010010)]
    entries.append(("Mapped object 2", _U32, "const", 0x60520010))
    od.add_object(_group(ODRecord, "TPDO1 mapping parameter", 0x1A00, entries))
    od.add_object(_var("Charger status", *STATUS, _U16, "ro", 0))
    od.add_object(_var("Charge returned", *CHARGE_RETURNED, _U16, "ro", 0))
    od.add_object(_var("Charge current requested", *REQUEST, _U16, "ro", 0))
    od.add_object(_var("Battery state of charge", *SOC, _U8, "ro", 0))
    od.add_object(_var("Output current", *OUTPUT_CURRENT, _U16, "ro", 0))  # 1/16 A
    return od


class Cia419Charger:
    """The charger on a `canopen.Network`; `step(now)` returns the output current in amperes."""

    def __init__(self, network: canopen.Network, config: ChargerConfig | None = None) -> None:
        self.config = config or ChargerConfig()
        self.network = network
        self.node = canopen.LocalNode(self.config.node_id, build_charger_dictionary(self.config))
        network.add_node(self.node)
        self.node.rpdo.read()
        self.node.tpdo.read()
        self.node.rpdo.map[1].add_callback(self._on_request)
        self._heartbeat_id = 0x700 + self.config.battery_node_id
        network.subscribe(self._heartbeat_id, self._on_heartbeat)
        self._lock = threading.Lock()
        self._rx_request: int | None = None
        self._rx_heartbeat: int | None = None
        self._request_raw = 0
        self._rx_soc: int | None = None
        self.battery_soc: float | None = None  # % from 6081h; None while not available
        self._request_time: float | None = None
        self._battery_state: int | None = None
        self._heartbeat_time: float | None = None
        self._last_step: float | None = None
        self._charge_as = 0.0
        self.output_current = 0.0
        self.status = ChargerStatus(0)
        self.heartbeat_silent = False
        self._heartbeat = _Timer()
        self._status_timer = _Timer()

    @property
    def requested_current(self) -> float:
        """The last received request in amperes (whether or not it is still fresh)."""
        return self._request_raw / 16

    def step(self, now: float) -> float:
        """Take over what arrived, update the output current and send what is due at ``now``."""
        if self.node.nmt.state == "INITIALISING":
            self.network.send_message(0x700 + self.node.id, bytes([0]))
            self.node.nmt.state = "OPERATIONAL"  # self-starting; no NMT master needed
            self._heartbeat.last = now
        with self._lock:
            request, heartbeat, soc = self._rx_request, self._rx_heartbeat, self._rx_soc
            self._rx_request = self._rx_heartbeat = self._rx_soc = None
        if request is not None:
            self._request_raw, self._request_time = request, now
        if soc is not None:
            self.battery_soc = float(soc) if soc <= 100 else None  # 0xFF: not available
        if heartbeat is not None:
            self._battery_state, self._heartbeat_time = heartbeat, now
        dt = 0.0 if self._last_step is None else max(now - self._last_step, 0.0)
        self._last_step = now
        self._charge_as += self.output_current * dt
        self.output_current = self._follow(self._target(now), dt)
        if self.output_current > 0:
            self.status |= ChargerStatus.OUTPUT_ON
        self._publish()
        if self._status_timer.due(now, self.config.status_ms / 1000):
            self.node.tpdo.map[1].transmit()
        due = self._heartbeat.due(now, self.config.heartbeat_ms / 1000)
        if due and not self.heartbeat_silent:
            self.network.send_message(0x700 + self.node.id, bytes([OPERATIONAL]))
        return self.output_current

    def close(self) -> None:
        self.network.unsubscribe(self._heartbeat_id, self._on_heartbeat)
        del self.network[self.node.id]

    def _target(self, now: float) -> float:
        """The current the charger aims at, and the status explaining it."""
        cfg = self.config
        self.status = ChargerStatus(0)
        if (
            self._heartbeat_time is None
            or now - self._heartbeat_time > cfg.heartbeat_timeout
            or self._battery_state != OPERATIONAL
        ):
            self.status |= ChargerStatus.BATTERY_LOST
        if self._request_time is None or now - self._request_time > cfg.request_timeout:
            self.status |= ChargerStatus.REQUEST_STALE
        if self.status:
            return 0.0
        request = self._request_raw / 16
        if request > cfg.max_current:
            self.status |= ChargerStatus.CURRENT_LIMITED
        return min(request, cfg.max_current)

    def _follow(self, target: float, dt: float) -> float:
        if target <= self.output_current:
            return target
        return min(target, self.output_current + self.config.ramp_rate * dt)

    def _publish(self) -> None:
        """Status and charge returned into the dictionary and the TPDO."""
        values = {
            STATUS: int(self.status),
            CHARGE_RETURNED: min(int(self._charge_as / 3600 * 8), 0xFFFF),
            OUTPUT_CURRENT: min(int(self.output_current * 16), 0xFFFF),
        }
        for (index, subindex), raw in values.items():
            var = self.node.object_dictionary.get_variable(index, subindex)
            self.node.data_store.setdefault(index, {})[subindex] = var.encode_raw(raw)
        for var in self.node.tpdo.map[1].map:
            var.set_data(self.node.get_data(var.index, var.subindex))

    def _on_request(self, pdo: PdoMap) -> None:
        """Receive thread: keep the raw request (and mirror both objects for SDO reads)."""
        for var in pdo.map:
            self.node.data_store.setdefault(var.index, {})[var.subindex] = bytes(var.get_data())
        raw, soc = pdo[REQUEST[0]].raw, pdo[SOC[0]].raw
        with self._lock:
            self._rx_request, self._rx_soc = int(raw), int(soc)

    def _on_heartbeat(self, can_id: int, data: bytes, timestamp: float) -> None:
        if data:
            with self._lock:
                self._rx_heartbeat = data[0]
