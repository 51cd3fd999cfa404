"""Vehicle / energy management system on the vehicle bus (frames from dbc/canbms_master.dbc).

Sends ``EMS_StateRequest`` every 100 ms following a script of timed requests and keeps the
last BMS frames it received for scenarios to check; the request and the BMS frames it
reads carry the E2E Profile 11 header (``dbc.master_e2e``), and a BMS frame failing it is
ignored. With a ``key`` every request is followed by its ``EMS_StateRequestAuth`` (freshness
value +1 per request, truncated HMAC, ``dbc.secoc``). Fault injection: ``silent`` stops the
request frames, ``counter_frozen`` repeats the alive counter.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

import can
import cantools

from dbc import master_e2e, secoc
from slaves.hv_bus import Cyclic, encode, encode_sealed, master_database

REQUEST = "EMS_StateRequest"
AUTH = "EMS_StateRequestAuth"


class EmsRequest(IntEnum):
    """Values of ``EMS_RequestedState``."""

    STANDBY = 0
    DISCHARGE = 1
    CHARGE = 2


@dataclass(frozen=True)
class EmsCommand:
    """From ``at_s`` on, request ``request`` (and a fault reset if ``fault_reset``)."""

    at_s: float
    request: EmsRequest
    fault_reset: bool = False


class Ems:
    """A Device sending the scripted state request; before the first entry it asks standby."""

    def __init__(
        self,
        script: Sequence[EmsCommand] = (),
        period_s: float = 0.100,
        key: bytes | None = None,
    ) -> None:
        self.script = sorted(script, key=lambda c: c.at_s)
        self.silent = False
        self.counter_frozen = False
        self.received: dict[str, dict[str, Any]] = {}  # last decoded frame per BMS message
        self._schedule = Cyclic(period_s)
        self._counter = 0
        self._message = master_database().get_message_by_name(REQUEST)
        self._auth = master_database().get_message_by_name(AUTH)
        self.key = key
        self._freshness = 0

    def command_at(self, t: float) -> EmsCommand:
        """The script entry in force at ``t``."""
        current = EmsCommand(float("-inf"), EmsRequest.STANDBY)
        for command in self.script:
            if command.at_s > t:
                break
            current = command
        return current

    def receive(self, msg: can.Message) -> None:
        if msg.is_extended_id:
            return
        try:
            message = master_database().get_message_by_frame_id(msg.arbitration_id)
        except KeyError:
            return
        if message.senders != ["BMS"] or message.dbc.attributes["BusRole"].value != "vehicle":
            return
        if message.name in master_e2e.PROTECTED and not master_e2e.intact(
            msg.arbitration_id, msg.data
        ):
            return  # corrupted or not from the BMS: the last good frame stays
        try:
            self.received[message.name] = message.decode(bytes(msg.data), decode_choices=False)
        except (cantools.database.DecodeError, ValueError):
            return  # a malformed frame leaves the last good one in place

    def step(self, t: float, dt: float) -> list[can.Message]:
        instants = self._schedule.due(t)
        if self.silent:
            return []
        return [msg for instant in instants for msg in self._request(instant)]

    def _request(self, t: float) -> list[can.Message]:
        command = self.command_at(t)
        signals = {
            "EMS_RequestedState": int(command.request),
            "EMS_FaultReset": int(command.fault_reset),
            "EMS_AliveCounter": 0,
            "EMS_CRC": 0,
        }
        counter = self._counter
        if not self.counter_frozen:
            self._counter = master_e2e.next_counter(self._counter)
        request = encode_sealed(master_database(), self._message.frame_id, signals, counter, t)
        if self.key is None:
            return [request]
        self._freshness += 1
        tag = secoc.mac(self.key, self._message.frame_id, request.data, self._freshness)
        auth = {"EMS_AuthFreshness": self._freshness, "EMS_AuthMac": int.from_bytes(tag, "little")}
        return [request, encode(master_database(), self._auth.frame_id, auth, t)]
