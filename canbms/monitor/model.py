"""What the monitor knows, decoded from the frames alone: plain data, no terminal, no clock.

Slave-bus frames go through the controller's own ingest decoder, compiled from the
configured DBCs and mapping (`controller.config.ingest.build_decoders`): the same CRC and
alive-counter checks, so a frame the controller would reject is counted here per source and
reason, and the measured arrays fill exactly as the controller's do. Master frames
(BMS_Status, BMS_Limits, ..., and whatever else the master DBC defines, such as
BMS_RuntimeHealth) are decoded by cantools from that DBC. `feed` takes frames as they came;
`view(now)` is the picture at ``now`` (the frames' clock), with values older than their
timeout shown as unknown.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import can
import cantools
import numpy as np

from canbms.monitor.faults import active, bit_diagnoses
from canbms.monitor.load import Load, LoadMeter
from controller.config.ingest import build_decoders, load_databases
from controller.config.loader import ControllerConfig
from controller.diagnosis import Diagnosis
from controller.frames import FrameBatch
from controller.ingest.decoder import RejectReason
from dbc import master_e2e

INTERNAL = "internal"
SHOWN = (  # master messages with a panel of their own; every other one is listed as it is
    "EMS_StateRequest", "BMS_Status", "BMS_Limits", "BMS_CellStats", "BMS_TempStats",
    "BMS_PackValues", "ContactorCommand", "ContactorFeedback",
)  # fmt: skip
BALANCE_MASK = re.compile(r"^M(\d+)_BalanceMask$")
BALANCE_FRESH_S = 1.5  # three BalancingCommand periods
EVENTS = 200
REJECTS_NOTED_S = 5.0  # a source that keeps failing the checks is noted again after this


@dataclass(frozen=True)
class Rejects:
    """Frames of one source the decoder dropped, cumulative, by reason name."""

    source: str
    by_reason: Mapping[str, int]

    @property
    def total(self) -> int:
        return sum(self.by_reason.values())


@dataclass(frozen=True)
class View:
    """The monitor's picture at one instant; None (NaN in arrays) is unknown."""

    state: str | None
    contactors: str | None
    fault_level: int | None
    requested: str | None
    diagnoses: list[tuple[int, Diagnosis]]
    limits: Mapping[str, float]  # CCL, DCL, CVL, DVL
    soc: float | None
    soh: float | None
    current: float | None
    pack_voltage: float | None
    cells: np.ndarray  # (modules, cells per module) V
    temperatures: np.ndarray  # (modules, sensors per module) degC
    balancing: np.ndarray  # (modules, cells per module) bool
    cell_stats: tuple[float | None, float | None, float | None]  # min, max, mean
    temperature_stats: tuple[float | None, float | None, float | None]
    rejects: list[Rejects]
    loads: Mapping[str, Load]
    frames: Mapping[str, Mapping[str, Any]]  # other master messages: signal -> value
    units: Mapping[str, str]
    events: list[tuple[float, str]]


class MonitorModel:
    """Decodes one installation's frames; ``bitrates`` per bus name (None: unknown)."""

    def __init__(self, config: ControllerConfig, bitrates: Mapping[str, int | None]) -> None:
        dbs, _ = load_databases(config.dbc)
        build = build_decoders(
            config.pack, config.ingest, dbs["slaves"], dbs["sensor"], dbs["master"],
            provides=config.dbc.provides,
        )  # fmt: skip
        self.pack = config.pack
        self.timeouts = config.ingest
        self.decoder = build.decoders[INTERNAL]
        self.ingest = self.decoder.new_state()
        self.master: cantools.database.can.Database = dbs["master"]
        self.by_id = {m.frame_id: m for m in self.master.messages}
        self.units = {s.name: s.unit or "" for m in self.master.messages for s in m.signals}
        self.faults = bit_diagnoses(config.diagnosis)
        self.loads = {bus: LoadMeter(rate) for bus, rate in bitrates.items()}
        self.latest: dict[str, dict[str, Any]] = {}
        self.latest_at: dict[str, float] = {}
        self.events: deque[tuple[float, str]] = deque(maxlen=EVENTS)
        self._balance = _balance_messages(dbs["slaves"])
        self.balancing = np.zeros((self.pack.modules, self.pack.cells_per_module), bool)
        self._balanced_at = np.full(self.pack.modules, -np.inf)
        self._rejected = self.ingest.rejected.sum(axis=1)
        self._rejects_noted = np.full(len(self.decoder.sources), -np.inf)

    # -- frames in ----------------------------------------------------------------------

    def feed(self, messages: Sequence[can.Message], bus: str) -> None:
        if not messages:
            return
        batch = FrameBatch.from_messages(messages, bus=bus)
        if bus in self.loads:
            extended = np.array([m.is_extended_id for m in messages], bool)
            self.loads[bus].add(batch.timestamps, batch.dlc, extended)
        if bus == INTERNAL:
            self.decoder.decode(batch, self.ingest)
            self._note_rejects(float(batch.timestamps.max()))
        for msg in messages:  # master frames: a few per cycle, decoded by cantools
            if msg.is_extended_id:
                continue
            if (balance := self._balance.get(msg.arbitration_id)) is not None:
                self._balance_command(balance, msg)
            elif (message := self.by_id.get(msg.arbitration_id)) is not None:
                self._master(message, msg)

    def _master(self, message: Any, msg: can.Message) -> None:
        if message.name in master_e2e.PROTECTED and not master_e2e.intact(
            msg.arbitration_id, msg.data
        ):
            return  # fails its E2E check: corrupted, or not from a node of the contract
        try:
            values = message.decode(bytes(msg.data), decode_choices=True)
        except (cantools.database.DecodeError, ValueError, KeyError):
            return  # a frame that does not fit its message: not this DBC's sender
        before = self.latest.get(message.name)
        self.latest[message.name] = values
        self.latest_at[message.name] = msg.timestamp
        if message.name == "BMS_Status":
            self._status_events(msg.timestamp, before, values)
        elif message.name == "EMS_StateRequest" and before is not None:
            for key in ("EMS_RequestedState", "EMS_FaultReset"):
                if str(before[key]) != str(values[key]):
                    self.events.append((msg.timestamp, f"EMS {key[4:]}: {values[key]}"))

    def _status_events(self, t: float, before: Any, now: Mapping[str, Any]) -> None:
        if before is None or str(before["BMS_State"]) != str(now["BMS_State"]):
            self.events.append((t, f"state {now['BMS_State']}"))
        old = 0 if before is None else int(before["BMS_ActiveFaults"])
        new = int(now["BMS_ActiveFaults"])
        for bit, d in active(new & ~old, self.faults):
            self.events.append((t, f"fault set: {d.id} ({d.code}, bit {bit})"))
        for bit, d in active(old & ~new, self.faults):
            self.events.append((t, f"fault cleared: {d.id} ({d.code}, bit {bit})"))

    def _balance_command(self, balance: tuple[Any, int, str], msg: can.Message) -> None:
        message, module, signal = balance
        try:
            mask = int(message.decode(bytes(msg.data), decode_choices=False)[signal])
        except (cantools.database.DecodeError, ValueError, KeyError):
            return
        if module < self.pack.modules:
            cells = np.arange(self.pack.cells_per_module)
            self.balancing[module] = (mask >> cells) & 1 == 1
            self._balanced_at[module] = msg.timestamp

    def _note_rejects(self, t: float) -> None:
        rejected = self.ingest.rejected.sum(axis=1)
        grew = (rejected > self._rejected) & (t - self._rejects_noted >= REJECTS_NOTED_S)
        for i in np.flatnonzero(grew):
            self._rejects_noted[i] = t
            row = self.ingest.rejected[i]
            reasons = ", ".join(r.name for r in RejectReason if row[r] > 0)
            self.events.append((t, f"{self.decoder.sources[i]}: frames rejected ({reasons})"))
        self._rejected = rejected

    # -- picture out --------------------------------------------------------------------

    def view(self, now: float) -> View:
        status = self._fresh("BMS_Status", now)
        limits = self._fresh("BMS_Limits", now) or {}
        pack = self._fresh("BMS_PackValues", now) or {}
        request = self._fresh("EMS_StateRequest", now)
        cells = self._measured("cell_voltage", now).reshape(self.pack.modules, -1)
        temps = self._measured("cell_temperature", now).reshape(self.pack.modules, -1)
        balancing = self.balancing & (now - self._balanced_at <= BALANCE_FRESH_S)[:, None]
        faults = self.faults
        return View(
            state=None if status is None else str(status["BMS_State"]),
            contactors=None if status is None else str(status["BMS_ContactorState"]),
            fault_level=None if status is None else _level(status["BMS_FaultLevel"]),
            requested=None if request is None else str(request["EMS_RequestedState"]),
            diagnoses=[] if status is None else active(int(status["BMS_ActiveFaults"]), faults),
            limits={
                k: float(limits[s])
                for k, s in (
                    ("CCL", "BMS_ChargeCurrentLimit"),
                    ("DCL", "BMS_DischargeCurrentLimit"),
                    ("CVL", "BMS_ChargeVoltageLimit"),
                    ("DVL", "BMS_DischargeVoltageLimit"),
                )  # fmt: skip
                if s in limits
            },
            soc=_number(pack.get("BMS_SOC")),
            soh=_number(pack.get("BMS_SOH")),
            current=_number(pack.get("BMS_PackCurrent")),
            pack_voltage=_number(pack.get("BMS_PackVoltage")),
            cells=cells,
            temperatures=temps,
            balancing=balancing,
            cell_stats=_stats(cells),
            temperature_stats=_stats(temps),
            rejects=self._rejects(),
            loads={bus: meter.load(now) for bus, meter in self.loads.items()},
            frames={
                name: values
                for name, values in self.latest.items()
                if name not in SHOWN and self._fresh(name, now) is not None
            },
            units=self.units,
            events=list(self.events),
        )

    def _fresh(self, name: str, now: float) -> dict[str, Any] | None:
        """The newest decoded frame of a master message, unless three periods old."""
        values = self.latest.get(name)
        if values is None:
            return None
        period = (self.master.get_message_by_name(name).cycle_time or 1000) / 1000.0
        return values if now - self.latest_at[name] <= 3 * period else None

    def _measured(self, target: str, now: float) -> np.ndarray:
        array = self.ingest.measurements[target]
        valid = array.valid(now, self.timeouts.timeout(target))
        return np.where(valid, array.value, np.nan)

    def _rejects(self) -> list[Rejects]:
        rows = self.ingest.rejected
        return [
            Rejects(source, {r.name: int(rows[i, r]) for r in RejectReason if rows[i, r]})
            for i, source in enumerate(self.decoder.sources)
        ]


def _balance_messages(db: cantools.database.can.Database) -> dict[int, tuple[Any, int, str]]:
    """BalancingCommand frames by ID: (message, module, mask signal), where the DBC has them."""
    out: dict[int, tuple[Any, int, str]] = {}
    for message in db.messages:
        for signal in message.signals:
            if (match := BALANCE_MASK.match(signal.name)) and not message.is_extended_frame:
                out[message.frame_id] = (message, int(match.group(1)), signal.name)
    return out


def _number(value: Any) -> float | None:
    if value is None or isinstance(value, str) or not isinstance(value, int | float):
        return None  # absent, or a named raw value such as NotAvailable
    return float(value)


def _level(value: Any) -> int:
    names = ("None", "Warning", "Alarm", "Fault")
    return names.index(str(value)) if str(value) in names else int(value)


def _stats(values: np.ndarray) -> tuple[float | None, float | None, float | None]:
    known = values[np.isfinite(values)]
    if known.size == 0:
        return None, None, None
    return float(known.min()), float(known.max()), float(known.mean())


def history_lines(rows: Iterable[tuple[float, str, str, str]]) -> list[str]:
    """Lines of the state store's event history (`Store.history`), oldest first."""
    return [f"{d} {kind}" + (f": {detail}" if detail else "") for _, d, kind, detail in rows]
