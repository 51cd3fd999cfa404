"""The CiA 418 battery node on a `canopen` network, driven by the controller's cycle.

canopen answers SDO requests and NMT commands from its receive thread; everything this node
*sends* on its own (boot-up, heartbeat, TPDOs) is sent from `BatteryNode.update`, at the
time passed in. canopen's own heartbeat producer runs on a bus thread, which would keep a
charger convinced the battery is alive after the control loop has stalled; here a stalled
loop falls silent, the charger's heartbeat consumer times out and it stops.
"""

from __future__ import annotations

import logging

import can
import canopen
from canopen.nmt import NMT_STATES, NmtSlave
from canopen.objectdictionary import ODVariable
from canopen.sdo import SdoAbortedError

from controller.adapters.base import BmsSnapshot
from controller.canopen_node import dictionary as d
from controller.canopen_node.config import BatteryNodeConfig
from controller.canopen_node.values import RequestParams, StatusBit, live_values

logger = logging.getLogger(__name__)

ABORT_READ_ONLY = 0x06010002
ABORT_DEVICE_STATE = 0x08000022  # data cannot be stored: present device state
ABORT_VALUE_TOO_HIGH = 0x06090031
ABORT_VALUE_TOO_LOW = 0x06090032

_STATE_CODES = {name: code for code, name in NMT_STATES.items()}
_EPSILON = 1e-9  # seconds; absorbs float error of accumulated periods


class _ClockedNmt(NmtSlave):
    """canopen's NMT slave with its heartbeat thread removed (`BatteryNode.update` sends it)."""

    def start_heartbeat(self, heartbeat_time_ms: int) -> None:
        """1017h is read back by `BatteryNode.update`; nothing to start."""

    def stop_heartbeat(self) -> None:
        """No thread to stop."""

    def update_heartbeat(self) -> None:
        """The next heartbeat carries the state as it is then."""


class Timer:
    """A fixed-rate schedule driven by the caller's clock.

    Due at the first call, then every ``period`` seconds on the original grid, so the
    average rate stays exact whatever the call jitter; after a gap of more than one period
    it restarts from ``now`` instead of sending a burst.
    """

    def __init__(self) -> None:
        self.last: float | None = None

    def due(self, now: float, period: float) -> bool:
        if period <= 0:
            return False
        if self.last is None or now - self.last >= 2 * period:
            self.last = now
            return True
        if now - self.last >= period - _EPSILON:
            self.last += period
            return True
        return False


class BatteryNode:
    """CiA 418 battery node: SDO server, heartbeat producer and timer-driven TPDOs.

    ``network`` is a `canopen.Network` (connected by the caller) or a python-can bus, for
    which the node makes its own network and notifier (stopped again by `close`, the bus
    itself stays open).
    """

    def __init__(
        self, network: canopen.Network | can.BusABC, config: BatteryNodeConfig | None = None
    ) -> None:
        self.config = config or BatteryNodeConfig()
        self._own_network = isinstance(network, can.BusABC)
        if isinstance(network, can.BusABC):
            network = canopen.Network(network).connect()
        self.network = network
        self.od = d.build_dictionary(self.config)
        self.node = canopen.LocalNode(self.config.node_id, self.od)
        self.node.nmt.__class__ = _ClockedNmt  # keeps its registered 1017h write callback
        self.node.add_write_callback(self._on_write)
        network.add_node(self.node)
        self.node.tpdo.read()  # through the local SDO server: the dictionary's start-up values
        self._heartbeat = Timer()
        self._tpdo_timers = {n: Timer() for n in self.node.tpdo.map}
        self._pdo_changed = False
        self.writes: list[str] = []  # every SDO write attempt, taken by ``take_writes``
        self._charger_heard = False  # set by the receive thread, taken by ``update``
        self._charger_seen: float | None = None
        self._charger_lost = False
        self._charger_heartbeat = 0x700 + self.config.charger_node_id
        if self.config.charger_node_id:
            network.subscribe(self._charger_heartbeat, self._on_charger_heartbeat)

    # --- run time ------------------------------------------------------------------------

    def update(self, snapshot: BmsSnapshot, now: float) -> None:
        """Publish ``snapshot`` and send whatever is due at ``now`` (seconds, any epoch)."""
        if self.node.nmt.state == "INITIALISING":
            self._boot(now)
        params = RequestParams(self.read(d.REQUEST_SCALE), self.read(d.REQUEST_CAP))
        store = self.node.data_store
        values = live_values(snapshot, params)
        if self._charger_missing(now):  # stop charging: no request, charging not allowed
            values[d.CHARGE_CURRENT_REQUEST] = 0
            values[d.BATTERY_STATUS] &= ~int(StatusBit.CHARGE_ALLOWED)
        for (index, subindex), raw in values.items():
            var = self._variable((index, subindex))
            store.setdefault(index, {})[subindex] = var.encode_raw(raw)
        if self._pdo_changed:
            self._pdo_changed = False
            self.node.tpdo.read()
        if self.node.nmt.state == "OPERATIONAL":
            self._send_tpdos(now)
        if self._heartbeat.due(now, self.read(d.HEARTBEAT_TIME) / 1000):
            self.network.send_message(0x700 + self.node.id, bytes([self.nmt_code]))

    @property
    def charger_lost(self) -> bool:
        """The consumed charger heartbeat is missing (as of the last ``update``)."""
        return self._charger_lost

    def take_writes(self) -> list[str]:
        """What each SDO write attempt since the last call wrote, or why it was refused."""
        out, self.writes = self.writes, []
        return out

    def take_reset_request(self) -> bool:
        """Was 1 written to 2101h since the last call? It reads 0 again from now on."""
        if self.read(d.FAULT_RESET) == 0:
            return False
        var = self._variable(d.FAULT_RESET)
        self.node.data_store.setdefault(var.index, {})[var.subindex] = var.encode_raw(0)
        return True

    def read(self, key: tuple[int, int]) -> int:
        """Current raw value of an object, as an SDO client would read it."""
        return int(self._variable(key).decode_raw(self.node.get_data(*key)))

    @property
    def nmt_code(self) -> int:
        """NMT state as the heartbeat byte encodes it."""
        return _STATE_CODES[self.node.nmt.state]

    def close(self) -> None:
        """Leave the network; stop the notifier if this node made it."""
        del self.network[self.node.id]
        if self.config.charger_node_id:
            self.network.unsubscribe(self._charger_heartbeat, self._on_charger_heartbeat)
        if self._own_network and self.network.notifier is not None:
            self.network.notifier.stop()

    # --- internals -----------------------------------------------------------------------

    def _boot(self, now: float) -> None:
        """Boot-up message, then PRE-OPERATIONAL (and OPERATIONAL when self-starting)."""
        self.network.send_message(0x700 + self.node.id, bytes([0]))
        self.node.nmt.state = "PRE-OPERATIONAL"
        if self.config.self_start:
            self.node.nmt.state = "OPERATIONAL"
        self._heartbeat.last = now  # the boot-up message starts the heartbeat period

    def _send_tpdos(self, now: float) -> None:
        for n, pdo in self.node.tpdo.map.items():
            period = (pdo.event_timer or 0) / 1000
            if pdo.enabled and self._tpdo_timers[n].due(now, period):
                for var in pdo.map:
                    var.set_data(self.node.get_data(var.index, var.subindex))
                pdo.transmit()

    def _variable(self, key: tuple[int, int]) -> ODVariable:
        index, subindex = key
        var = self.od.get_variable(index, subindex)
        if var is None:
            raise KeyError(f"0x{index:04X}:{subindex:02X} is not in the dictionary")
        return var

    def _charger_missing(self, now: float) -> bool:
        """1016h sub 1 names a charger that was not heard OPERATIONAL within its time."""
        consumer = self.read(d.CONSUMER_HEARTBEAT)
        node, time_ms = consumer >> 16 & 0x7F, consumer & 0xFFFF
        if self._charger_heard:
            self._charger_heard, self._charger_seen = False, now
        if not node or not time_ms:
            self._charger_lost = False
            return False
        seen = self._charger_seen
        self._charger_lost = seen is None or now - seen > time_ms / 1000 + _EPSILON
        return self._charger_lost

    def _on_charger_heartbeat(self, can_id: int, data: bytes, timestamp: float) -> None:
        """Receive thread: an OPERATIONAL heartbeat of the charger (taken by ``update``)."""
        if len(data) >= 1 and data[0] == _STATE_CODES["OPERATIONAL"]:
            self._charger_heard = True

    def _on_write(self, index: int, subindex: int, od: ODVariable, data: bytes) -> None:
        """SDO download hook (receive thread): who may write what, range checks, PDO
        reconfiguration; every attempt is kept for ``take_writes``."""
        value = od.decode_raw(bytes(data))
        where = f"0x{index:04X}:{subindex:02X} = {value!r}"
        refusal = self._refusal(index, value, od)
        if refusal is not None:
            code, why = refusal
            self.writes.append(f"{where} refused: {why}")
            logger.warning("SDO write %s refused: %s", where, why)
            raise SdoAbortedError(code)
        if index in d.TPDO_COMMUNICATION:
            self._pdo_changed = True
        self.writes.append(f"{where} written")
        logger.info("0x%04X:%02X written: %r", index, subindex, value)

    def _refusal(self, index: int, value: int, od: ODVariable) -> tuple[int, str] | None:
        """The abort code and reason for a write this node does not take, else None."""
        if index in d.COMMUNICATION_AREA:
            if not self.config.allow_remote_config:
                return ABORT_READ_ONLY, "communication objects are read-only (allow_remote_config)"
            if self.node.nmt.state != "PRE-OPERATIONAL":
                return ABORT_DEVICE_STATE, f"only in PRE-OPERATIONAL, not {self.node.nmt.state}"
        if od.max is not None and value > od.max:
            return ABORT_VALUE_TOO_HIGH, f"above {od.max}"
        if od.min is not None and value < od.min:
            return ABORT_VALUE_TOO_LOW, f"below {od.min}"
        return None
