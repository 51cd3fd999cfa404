"""What a fault-matrix row saw: the controller's frames as decoded from the bus, the plant's
coils, and (in lock-step) the controller's own diagnosis events.

Times are bus times: in lock-step the virtual time of the step, in real time the timestamp
python-can gave the frame. Plant steps are numbered and get their bus time afterwards (the
timestamp of the first frame the plant sent in that step, as the bus echoed it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import can
import cantools

from dbc import path as dbc_path

WATCHED = ("BMS_Status", "BMS_Limits", "ContactorCommand", "BMS_CellStats", "BMS_PackValues")
STATE_NAMES = {0: "init", 1: "standby", 2: "precharge", 3: "closed_discharge",
               4: "closed_charge", 5: "opening", 6: "error"}  # fmt: skip
CHARGER_COMMAND = "ChargerCommand_"
FAULT_LEVEL, ALARM_LEVEL = 3, 2


def master_db() -> cantools.database.can.Database:
    return cantools.database.load_file(dbc_path("canbms_master.dbc"))


def charger_commands() -> list[cantools.database.can.Message]:
    """The Elcon charger commands (29-bit): whether the controller lets a charger charge."""
    db = cantools.database.load_file(dbc_path("elcon_charger.dbc"))
    return [m for m in db.messages if m.name.startswith(CHARGER_COMMAND)]


@dataclass
class Record:
    """Everything a row observed, in arrival order."""

    frames: list[tuple[float, str, dict[str, Any]]] = field(default_factory=list)
    coils: list[tuple[int, bool]] = field(default_factory=list)  # (plant step, any coil on)
    events: list[tuple[float, str, int]] = field(default_factory=list)  # (t, diagnosis, level)
    status: dict[str, Any] = field(default_factory=dict)  # the last BMS_Status
    plus_commanded: bool = False
    soc_known: bool = False  # BMS_SOC is a number: the cells have been measured

    def forget(self) -> None:
        """Before a row: what the controller reported so far no longer counts."""
        self.status, self.soc_known, self.plus_commanded = {}, False, False

    def __post_init__(self) -> None:
        db = master_db()
        self._by_id = {
            (db.get_message_by_name(n).frame_id, False): db.get_message_by_name(n) for n in WATCHED
        }
        self._by_id |= {(m.frame_id, True): m for m in charger_commands()}

    def frame(self, msg: can.Message, t: float) -> None:
        message = self._by_id.get((msg.arbitration_id, msg.is_extended_id))
        if message is None:
            return
        try:
            signals = message.decode(bytes(msg.data), decode_choices=False)
        except (cantools.database.DecodeError, ValueError):
            return
        self.frames.append((t, message.name, signals))
        if message.name == "BMS_Status":
            self.status = signals
        elif message.name == "BMS_PackValues":
            self.soc_known = float(signals["BMS_SOC"]) <= 100.0
        elif message.name == "ContactorCommand" and signals["ContactorCmd_PlusClose"]:
            self.plus_commanded = True

    @property
    def state(self) -> str:
        return STATE_NAMES.get(int(self.status.get("BMS_State", 0)), "init")

    @property
    def level(self) -> int:
        return int(self.status.get("BMS_FaultLevel", 0))

    def series(self, name: str, since: float = -math.inf) -> list[tuple[float, dict[str, Any]]]:
        return [(t, s) for t, n, s in self.frames if n == name and t >= since]
