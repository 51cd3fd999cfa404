"""``canbms reset``: ask the BMS for a fault reset over the vehicle bus and tell whether it worked.

The request uses the frame the contract already has for it, ``EMS_StateRequest`` with
``EMS_FaultReset`` = 1 and ``Standby`` requested: the BMS honours the bit only in standby and
only for latches whose cause is gone, so the command can clear nothing a real EMS could not,
and can close nothing. It stands in for an EMS that is absent or silent (bench, workshop,
an EMS that lost its own state): it listens first and refuses while another node sends
``EMS_StateRequest`` (two senders of one identifier would break the alive-counter check);
otherwise it continues the E2E Profile 11 counter it last heard (0..14), so its first frame
is not a repeat, and seals every request with the profile's CRC (``dbc.master_e2e``).

Sequence: standby for ``--lead`` seconds (a fresh request lets ``ems_timeout`` clear), the
reset bit for ``--pulse`` seconds, standby until ``--timeout``; success is a ``BMS_Status``
with a state other than ``Error`` after the pulse began. Exit 0 on success or when the BMS
was not in its error state, 1 when it stayed there, 2 when no BMS (or another EMS) was heard.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass

import can
import can.cli
import cantools

import dbc
from dbc import master_e2e

PERIOD_S = 0.1  # EMS_StateRequest period (dbc/canbms_master.dbc)
ERROR = 6  # BMS_State Error
STANDBY = 0  # EMS_RequestedState Standby
EMS_ACTIVE_S = 0.3  # an EMS heard this recently is still sending


@dataclass(frozen=True)
class Outcome:
    """What the session saw."""

    code: int  # the exit code
    message: str
    state: int | None = None  # the last BMS_State heard
    active_faults: int = 0


def _database() -> cantools.database.can.Database:
    return cantools.database.load_file(dbc.path("canbms_master.dbc"), strict=True)


class ResetSession:
    """One reset request on ``bus``; ``clock`` in seconds (monotonic)."""

    def __init__(
        self,
        bus: can.BusABC,
        listen: float = 0.5,
        lead: float = 1.0,
        pulse: float = 1.0,
        timeout: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.bus, self.clock = bus, clock
        self.listen, self.lead, self.pulse, self.timeout = listen, lead, pulse, timeout
        db = _database()
        self.request = db.get_message_by_name("EMS_StateRequest")
        self.status = db.get_message_by_name("BMS_Status")
        self.counter: int | None = None  # the last EMS alive counter heard
        self.ems_heard_at: float | None = None
        self.state: int | None = None
        self.faults = 0

    def run(self) -> Outcome:
        end = self.clock() + self.listen
        self._receive_until(end)
        if self.state is None:
            return Outcome(2, "no BMS_Status heard: is the BMS on this bus?")
        if self.ems_heard_at is not None and end - self.ems_heard_at <= EMS_ACTIVE_S:
            return Outcome(
                2,
                "another node sends EMS_StateRequest: request the reset from the EMS, or "
                "write 1 to object 2101h of the CiA 418 node",
                self.state,
                self.faults,
            )
        if self.state != ERROR:
            return Outcome(0, "the BMS is not in its error state: nothing to reset", self.state)
        start = self.clock()
        pulse_from, pulse_to = start + self.lead, start + self.lead + self.pulse
        deadline = start + max(self.timeout, self.lead + self.pulse)
        due = start
        while (now := self.clock()) < deadline:
            if now >= due:
                self._send(pulse_from <= now < pulse_to)
                due += PERIOD_S
            self._receive_until(min(due, deadline))
            if self.clock() >= pulse_from and self.state != ERROR:
                return Outcome(0, "the BMS left its error state", self.state, self.faults)
        return Outcome(
            1,
            f"the BMS stayed in its error state (BMS_ActiveFaults 0x{self.faults:08X}); "
            "its event log says what stays latched and why",
            self.state,
            self.faults,
        )

    def _send(self, reset: bool) -> None:
        self.counter = master_e2e.next_counter(self.counter)
        encoded = self.request.encode(
            {
                "EMS_RequestedState": STANDBY,
                "EMS_FaultReset": int(reset),
                "EMS_AliveCounter": 0,
                "EMS_CRC": 0,
            }
        )
        data = master_e2e.seal(self.request.frame_id, encoded, self.counter)
        self.bus.send(
            can.Message(arbitration_id=self.request.frame_id, data=data, is_extended_id=False)
        )

    def _receive_until(self, end: float) -> None:
        """Take every frame until ``end``: the BMS status, and any other EMS's counter."""
        while (left := end - self.clock()) > 0:
            msg = self.bus.recv(timeout=left)
            if msg is None or msg.is_extended_id:
                continue
            if msg.arbitration_id not in (self.status.frame_id, self.request.frame_id):
                continue
            if not master_e2e.intact(msg.arbitration_id, msg.data):
                continue  # corrupted, or not from a node of the contract
            if msg.arbitration_id == self.status.frame_id:
                values = self.status.decode(bytes(msg.data), decode_choices=False)
                self.state = int(values["BMS_State"])
                self.faults = int(values["BMS_ActiveFaults"])
            else:
                self.counter = master_e2e.counter_of(msg.data)
                self.ems_heard_at = self.clock()


def add_subparser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "reset",
        help="request a fault reset from the BMS over the vehicle bus",
        description=__doc__.split("\n\n")[1].replace("\n", " "),
    )
    can.cli.add_bus_arguments(parser, group_title="vehicle bus")
    timing = parser.add_argument_group("timing")
    timing.add_argument("--listen", type=float, default=0.5, help="s to listen first (0.5)")
    timing.add_argument("--lead", type=float, default=1.0, help="s of standby before (1.0)")
    timing.add_argument("--pulse", type=float, default=1.0, help="s of the reset bit (1.0)")
    timing.add_argument("--timeout", type=float, default=5.0, help="s to wait in all (5.0)")
    parser.set_defaults(func=run_reset)


def run_reset(args: argparse.Namespace) -> int:
    if getattr(args, "interface", None) is None:
        args.interface = "virtual"
    with can.cli.create_bus_from_namespace(args) as bus:
        outcome = ResetSession(bus, args.listen, args.lead, args.pulse, args.timeout).run()
    print(f"canbms reset: {outcome.message}", flush=True)
    return outcome.code
