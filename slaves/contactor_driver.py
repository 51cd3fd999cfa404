"""Contactor driver board on the internal bus (frames from dbc/canbms_master.dbc).

Receives ``ContactorCommand``, drives the coils of an :class:`HvCircuit` and reports the
auxiliary contacts in ``ContactorFeedback``; both carry the E2E Profile 11 header
(``dbc.master_e2e``). Fail-safe: only a command with an intact header and a new counter is
fresh, and without a fresh command for ``command_timeout_s`` every coil is
released until fresh commands return.
"""

from __future__ import annotations

from dataclasses import dataclass

import can
import cantools

from dbc import master_e2e
from slaves.hv_bus import Cyclic, encode_sealed, master_database
from slaves.hv_circuit import ContactorId, HvCircuit

COMMAND = "ContactorCommand"
FEEDBACK = "ContactorFeedback"
_COMMAND_BITS = {
    ContactorId.MINUS: "ContactorCmd_MinusClose",
    ContactorId.PRECHARGE: "ContactorCmd_PrechargeClose",
    ContactorId.PLUS: "ContactorCmd_PlusClose",
}
_FEEDBACK_BITS = {
    ContactorId.MINUS: "ContactorFbk_MinusClosed",
    ContactorId.PRECHARGE: "ContactorFbk_PrechargeClosed",
    ContactorId.PLUS: "ContactorFbk_PlusClosed",
}


@dataclass(frozen=True)
class ContactorDriverConfig:
    period_s: float = 0.020  # feedback period
    command_timeout_s: float = 0.100  # five command periods


class ContactorDriver:
    """A Device: ``receive`` takes commands, ``step`` drives the coils and sends feedback.

    ``silent`` (fault injection) stops the feedback frames; the coils are still driven.
    """

    def __init__(self, circuit: HvCircuit, config: ContactorDriverConfig | None = None) -> None:
        self.circuit = circuit
        self.config = config or ContactorDriverConfig()
        self.silent = False
        self.timed_out = True  # no command yet: coils off
        self._schedule = Cyclic(self.config.period_s)
        self._counter = 0
        self._last_rx_counter: int | None = None
        self._fresh: dict[ContactorId, bool] | None = None
        self._commanded = dict.fromkeys(ContactorId, False)
        self._last_fresh_t: float | None = None
        self._command_id = master_database().get_message_by_name(COMMAND).frame_id
        self._feedback_id = master_database().get_message_by_name(FEEDBACK).frame_id

    def receive(self, msg: can.Message) -> None:
        if msg.arbitration_id != self._command_id or msg.is_extended_id:
            return
        if not master_e2e.intact(self._command_id, msg.data):
            return  # corrupted, or not from the BMS
        try:
            cmd = master_database().decode_message(self._command_id, bytes(msg.data))
        except (cantools.database.DecodeError, ValueError):
            return  # a malformed frame is not a command
        counter = int(cmd["ContactorCmd_Counter"])
        if counter == self._last_rx_counter:
            return  # repeated frame: the sender may be hung
        self._last_rx_counter = counter
        self._fresh = {cid: bool(cmd[name]) for cid, name in _COMMAND_BITS.items()}

    def step(self, t: float, dt: float) -> list[can.Message]:
        if self._fresh is not None:
            self._commanded = self._fresh
            self._fresh = None
            self._last_fresh_t = t
        self.timed_out = (
            self._last_fresh_t is None or t - self._last_fresh_t > self.config.command_timeout_s
        )
        for cid, on in self._commanded.items():
            self.circuit.set_coil(cid, on and not self.timed_out, t)
        instants = self._schedule.due(t)
        if self.silent:
            return []
        return [self._feedback(instant) for instant in instants]

    def _feedback(self, t: float) -> can.Message:
        signals = {
            name: int(self.circuit.contactors[cid].aux_closed)
            for cid, name in _FEEDBACK_BITS.items()
        }
        signals["ContactorFbk_CommandTimeout"] = int(self.timed_out)
        signals["ContactorFbk_Counter"] = 0
        signals["ContactorFbk_CRC"] = 0
        counter = self._counter
        self._counter = master_e2e.next_counter(self._counter)
        return encode_sealed(master_database(), self._feedback_id, signals, counter, t)
