"""Elcon/TC chargers (29-bit J1939-style IDs, big-endian), one or several sharing the CCL.

Each configured charger address ``xx`` gets its command ``0x1806xxF4`` every period and
answers with status ``0x18FF50xx``. Only chargers whose status is fresh and free of a
hardware-fault or communication-time-out bit take part; the allowed current is split between
them, each share capped at the charger's rating, so the sum never exceeds the CCL.

Charging stops (stop bit and 0 A, sent at once rather than at the next period) on a fault at
or above ``stop_level``, when the pack is not closed for charge or its data is invalid, when
the CCL is zero, and once the charge has terminated: pack at CVL with the current below
``termination_current`` for ``termination_delay``. Termination is latched until the SOC falls
below ``restart_soc`` or a new charge request (the pack closing for charge again) arrives.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np

from controller.adapters.base import BmsSnapshot, Level
from controller.adapters.framing import FrameEncoder, load_dbc, schedule
from controller.config.declare import load, setting
from controller.diagnosis.events import Event
from controller.errors import ConfigError
from controller.frames import FrameBatch, OutFrame, frame_key
from controller.stage import StageInputs, StageOutput, Traffic
from dbc import path as dbc_path

ADDRESSES = (0xE5, 0xE7, 0xE8, 0xE9)  # those the DBC defines
STATUS_BITS = (
    "hardware fault",
    "over-temperature",
    "wrong input voltage",
    "battery not detected or reversed",
    "communication time-out",
)
STOPPING_BITS = 0b1_0001  # hardware fault, communication time-out
# catalogue IDs (and levels) of the charger diagnoses
STALE = "charger_status_stale"
STOPPED = "charging_stopped"
FLAG_STOP = ("charger_stop_flag", Level.ALARM)
FLAG_WARNING = ("charger_warning_flag", Level.WARNING)
START, STOP = 0, 1


def command_id(address: int) -> int:
    return 0x1806_00F4 | (address << 8)


def status_id(address: int) -> int:
    return 0x18FF_5000 | address


@dataclass(frozen=True)
class ElconConfig:
    """An ``[[adapters]]`` table of type ``elcon``."""

    max_current: float = setting(ge=0.1, le=6553.5, unit="A", doc="rating of each charger")
    type: Literal["elcon"] = setting("elcon", doc="Elcon/TC chargers")
    addresses: tuple[int, ...] = setting(
        (0xE5,),
        choices=ADDRESSES,
        min_items=1,
        unique=True,
        doc="charger addresses sharing the CCL",
    )
    name: str = setting("elcon", doc="name in events (default: the type, made unique)")
    bus: str = setting("charger", doc="the configured bus the chargers are on")
    period: float = setting(1.0, ge=0.1, le=4.0, unit="s", doc="command period")
    status_timeout: float = setting(
        5.0, unit="s", doc="a charger whose status is older gets no current (>= period)"
    )
    stop_level: Level = setting(
        Level.FAULT, choices=(Level.ALARM, Level.FAULT), doc="fault level that stops charging"
    )
    termination_current: float = setting(
        1.0, ge=0.0, unit="A", doc="charge ends below this current at CVL ..."
    )
    termination_margin: float = setting(
        0.5, ge=0.0, unit="V", doc="... with the pack within this of CVL ..."
    )
    termination_delay: float = setting(10.0, ge=0.0, unit="s", doc="... for this long")
    restart_soc: float = setting(
        95.0, ge=0.0, le=100.0, unit="%", doc="a terminated charge restarts below this SOC"
    )

    def validate(self, path: str) -> None:
        if self.status_timeout < self.period:
            raise ConfigError(
                f"{path}.status_timeout",
                f"{self.status_timeout} is below the minimum {self.period} (the period)",
            )

    @classmethod
    def from_table(cls, data: Mapping[str, Any], path: str) -> ElconConfig:
        """Parse ``[[adapters]]`` of type ``elcon``; errors name the key."""
        return load(cls, data, path)


@dataclass(frozen=True)
class ChargerStatus:
    """The last status frame of one charger."""

    seen_at: float | None = None
    voltage: float = 0.0
    current: float = 0.0
    flags: int = 0


@dataclass(frozen=True)
class ElconState:
    next_due: dict[int, float] = field(default_factory=dict)
    chargers: dict[int, ChargerStatus] = field(default_factory=dict)
    fresh: frozenset[int] = frozenset()
    running: frozenset[int] = frozenset()
    permitted: bool = False
    terminated: bool = False
    full_since: float | None = None
    soc_at_end: float = 100.0
    reason: str = ""


def decode_status(rx: FrameBatch, addresses: tuple[int, ...]) -> dict[int, ChargerStatus]:
    """The newest status frame per charger address in ``rx`` (big-endian, 0.1 V / 0.1 A)."""
    ids = np.array([status_id(a) for a in addresses], np.uint32)
    rows = np.flatnonzero(np.isin(rx.ids, ids) & rx.extended & (rx.dlc >= 5))
    if rows.size == 0:
        return {}
    data = rx.data[rows].astype(np.uint16)
    volts = ((data[:, 0] << 8) | data[:, 1]) * 0.1
    amps = ((data[:, 2] << 8) | data[:, 3]) * 0.1
    found: dict[int, ChargerStatus] = {}
    for address, frame_id in zip(addresses, ids, strict=True):
        hits = np.flatnonzero(rx.ids[rows] == frame_id)
        if hits.size:
            k = hits[-1]
            found[address] = ChargerStatus(
                float(rx.timestamps[rows[k]]), float(volts[k]), float(amps[k]), int(data[k, 4])
            )
    return found


class ElconCharger:
    """One or several Elcon/TC chargers on ``config.bus``."""

    def __init__(self, config: ElconConfig) -> None:
        self.config = config
        self.name = config.name
        self.bus = config.bus
        db = load_dbc(dbc_path("elcon_charger.dbc"))
        self.encoders = {
            a: FrameEncoder.of(db, command_id(a), config.bus) for a in config.addresses
        }
        self.periods = {a: config.period for a in config.addresses}

    @classmethod
    def from_config(cls, data: Mapping[str, Any], path: str) -> ElconCharger:
        return cls(ElconConfig.from_table(data, path))

    def initial_state(self) -> ElconState:
        return ElconState()

    @property
    def traffic(self) -> Traffic:
        """Reads each charger's status, writes its command (both 29-bit)."""
        addresses = self.config.addresses
        return Traffic(
            consumes=frozenset(frame_key(status_id(a), True) for a in addresses),
            produces=frozenset(frame_key(command_id(a), True) for a in addresses),
        )

    def step(
        self, state: ElconState, inputs: StageInputs, now: float
    ) -> tuple[ElconState, StageOutput]:
        snapshot, rx = inputs.snapshot, inputs.frames
        cfg = self.config
        events: list[Event] = []
        chargers = dict(state.chargers)
        for address, status in decode_status(rx, cfg.addresses).items():
            # arrival time as the core saw it: the frame's own clock may differ from ``now``
            status = replace(status, seen_at=now)
            old = chargers.get(address, ChargerStatus())
            events += self._flag_events(now, address, old, status)
            chargers[address] = status
        fresh = frozenset(
            a
            for a, st in chargers.items()
            if st.seen_at is not None and now - st.seen_at <= cfg.status_timeout
        )
        for a in sorted(fresh ^ state.fresh):
            events.append(self._status_event(now, a, a in fresh, a in state.chargers))
        usable = frozenset(a for a in fresh if not chargers[a].flags & STOPPING_BITS)

        permitted = snapshot.data_valid and snapshot.contactors_closed and snapshot.charge_allowed
        terminated, full_since, soc_at_end = self._termination(state, snapshot, permitted, now)
        ccl = snapshot.ccl if math.isfinite(snapshot.ccl) else 0.0
        cvl = snapshot.cvl if math.isfinite(snapshot.cvl) else 0.0
        reason = self._stop_reason(snapshot, permitted, terminated, ccl, cvl, usable)
        if reason != state.reason:
            if state.reason:
                on = f"{self.name}: charging on" if not reason else f"{self.name}: {state.reason}"
                events.append(Event(now, STOPPED, Level.OK, "cleared", detail=on))
            if reason:
                stopped = f"{self.name}: charging stopped: {reason}"
                events.append(Event(now, STOPPED, Level.OK, "set", detail=stopped))
        running = frozenset() if reason else usable
        # floor to the field's 0.1 A so that rounding never lifts the sum above the CCL
        share = math.floor(min(ccl / len(running), cfg.max_current) * 10) / 10 if running else 0.0

        force = state.running - running  # a charger told to stop hears it this cycle
        due, next_due = schedule(state.next_due, self.periods, now, force)
        frames = tuple(self._command(a, cvl, share, a in running) for a in due)
        new = ElconState(
            next_due=next_due,
            chargers=chargers,
            fresh=fresh,
            running=running,
            permitted=permitted,
            terminated=terminated,
            full_since=full_since,
            soc_at_end=soc_at_end,
            reason=reason,
        )
        return new, StageOutput(frames, tuple(events))

    def _termination(
        self, state: ElconState, s: BmsSnapshot, permitted: bool, now: float
    ) -> tuple[bool, float | None, float]:
        """Latch 'charge complete' after the pack sat at CVL with little current for a while.

        The SOC restart threshold keeps its distance below the SOC at termination, so a
        charge that ends below ``restart_soc`` (an estimate not yet at 100 %) cannot restart
        at once and oscillate.
        """
        cfg = self.config
        if state.terminated:
            restart_below = min(cfg.restart_soc, state.soc_at_end - (100.0 - cfg.restart_soc))
            if (permitted and not state.permitted) or s.soc < restart_below:
                return False, None, state.soc_at_end  # new charge request, or pack used since
            return True, None, state.soc_at_end
        at_cvl = s.pack_voltage >= s.cvl - cfg.termination_margin
        full = bool(state.running) and at_cvl and s.pack_current < cfg.termination_current
        if not full:
            return False, None, state.soc_at_end
        since = now if state.full_since is None else state.full_since
        done = now - since >= cfg.termination_delay
        return done, since, s.soc if done else state.soc_at_end

    def _stop_reason(
        self,
        s: BmsSnapshot,
        permitted: bool,
        terminated: bool,
        ccl: float,
        cvl: float,
        usable: frozenset[int],
    ) -> str:
        if s.fault_level >= self.config.stop_level:
            return f"fault level {s.fault_level.name}"
        if not s.data_valid:
            return "BMS data invalid"
        if not permitted:
            return "pack not closed for charge"
        if terminated:
            return "charge complete (CVL reached, current below termination)"
        if ccl <= 0.0 or cvl <= 0.0:
            return "no charge current or voltage allowed"
        if not usable:
            return "no charger with a valid status"
        return ""

    def _status_event(self, now: float, address: int, fresh: bool, known: bool) -> Event:
        """A status that went missing, came back, or arrived for the first time."""
        who = f"{self.name}: charger {address:02X}"
        if not fresh:
            missing = f"{who} status missing, charger gets no current"
            return Event(now, STALE, Level.WARNING, "set", detail=missing)
        if known:
            return Event(now, STALE, Level.WARNING, "cleared", detail=f"{who} status received")
        return Event(now, "device_present", Level.OK, "set", detail=f"{who} status received")

    def _flag_events(
        self, now: float, address: int, old: ChargerStatus, new: ChargerStatus
    ) -> list[Event]:
        changed = old.flags ^ new.flags
        out = []
        for bit, text in enumerate(STATUS_BITS):
            if changed >> bit & 1:
                stopping = bool(STOPPING_BITS >> bit & 1)
                severity = "fault" if stopping else "warning"
                active = bool(new.flags >> bit & 1)
                state = "active" if active else "cleared"
                detail = f"{self.name}: charger {address:02X} {severity} {text} {state}"
                diagnosis, level = FLAG_STOP if stopping else FLAG_WARNING
                out.append(
                    Event(now, diagnosis, level, "set" if active else "cleared", detail=detail)
                )
        return out

    def _command(self, address: int, cvl: float, current: float, run: bool) -> OutFrame:
        encoder = self.encoders[address]
        a = f"{address:02X}"
        return encoder.encode(
            {
                f"Cmd{a}_MaxChargeVoltage": cvl,
                f"Cmd{a}_MaxChargeCurrent": current if run else 0.0,
                f"Cmd{a}_Control": START if run else STOP,
            }
        )
