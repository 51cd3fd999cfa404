"""Storage inverter speaking CAN-BMS to the BMS (victron / pylontech / sma variants).

The inverter follows a load/solar profile (battery current or power against time, positive
charging the pack) but obeys the BMS: its battery current stays within the last received
CCL/DCL (0x351), charging is held at CVL and discharging at DVL by its voltage loop
(`slaves.power_stage`), and it stops altogether when 0x351 has been missing for
``limits_timeout_s`` (3 s, as Victron), on any active alarm (0x35A two-bit flags or 0x359
protection bits) and, in the variants that have it, when 0x35C withdraws the permission
(Pylontech charge/discharge enable bits; SMA start = 1 / stop = 2). The enable frame counts
only while fresh: a stale permission is no permission. Below ``min_link_voltage`` there is
nothing to run on.

It shows the battery's SOC from 0x355 (``soc``) while that frame is fresh; the BMS withholds
0x355 while its SOC is unknown, and then the inverter has no SOC (None), never 0 %.

It sends its keep-alive (0x305, or 0x307) every ``keepalive_period_s``; ``silent`` (fault
injection) stops it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from functools import cache
from typing import Any

import can
import cantools

import dbc
from slaves.hv_bus import Cyclic, encode
from slaves.power_stage import DcLink, PowerStage, PowerStageConfig
from slaves.profiles import CurrentProfile, as_profile

LIMITS_ID = 0x351
SOC_ID = 0x355
KEEPALIVE_IDS = (0x305, 0x307)
ENABLE_ID = 0x35C
ACTIVE = 1  # raw value of an active flag, in 0x35A (two-bit) and 0x359 (one-bit) alike


class EnableKind(Enum):
    NONE = "none"  # no enable frame: the limits alone govern
    BITS = "bits"  # 0x35C ChargeEnable / DischargeEnable
    START_STOP = "start_stop"  # 0x35C StartStop, 1 = start, 2 = stop


@dataclass(frozen=True)
class Variant:
    dbc: str
    alarm_id: int
    alarm_prefix: str  # signals of ``alarm_id`` that stop the inverter when active (raw 1)
    enable: EnableKind


VARIANTS = {
    "victron": Variant("canbms_inverter_victron.dbc", 0x35A, "Alarm_", EnableKind.NONE),
    "pylontech": Variant("canbms_inverter_pylontech.dbc", 0x359, "Protection_", EnableKind.BITS),
    "sma": Variant("canbms_inverter_sma.dbc", 0x35A, "Alarm_", EnableKind.START_STOP),
}


@cache
def variant_database(variant: str) -> cantools.database.can.Database:
    return cantools.database.load_file(dbc.path(VARIANTS[variant].dbc), strict=True)


class ProfileKind(Enum):
    CURRENT = "current"  # the profile gives battery amps
    POWER = "power"  # the profile gives battery watts, divided by the link voltage


class InverterState(Enum):
    WAITING = "waiting"  # no 0x351 received yet
    RUNNING = "running"
    LIMITS_LOST = "limits_lost"  # 0x351 older than the timeout
    ALARM = "alarm"
    DISABLED = "disabled"  # enable frame says neither charge nor discharge, or is stale
    LINK_DOWN = "link_down"


@dataclass(frozen=True)
class Limits:
    """The last 0x351 as decoded, and when it arrived."""

    cvl: float
    ccl: float
    dcl: float
    dvl: float
    received_at: float


@dataclass(frozen=True)
class InverterConfig:
    variant: str = "victron"
    limits_timeout_s: float = 3.0
    keepalive_period_s: float = 1.0
    keepalive_id: int = 0x305
    min_link_voltage: float = 10.0
    # a low-voltage, high-current machine: milliohm batteries need a stiffer voltage loop
    stage: PowerStageConfig = field(
        default_factory=lambda: PowerStageConfig(
            ramp_up=200.0, ramp_down=1000.0, voltage_gain=1000.0
        )
    )

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise ValueError(f"variant: {self.variant!r} is not one of {', '.join(VARIANTS)}")
        if self.keepalive_id not in KEEPALIVE_IDS:
            raise ValueError(f"keepalive_id: 0x{self.keepalive_id:X} is not 0x305 or 0x307")
        for name in ("limits_timeout_s", "keepalive_period_s"):
            value = getattr(self, name)
            if not (value > 0) or math.isinf(value):
                raise ValueError(f"{name}: expected a finite number > 0, got {value!r}")
        if not (self.min_link_voltage >= 0):
            raise ValueError("min_link_voltage: expected a number >= 0")


class Inverter:
    """A Device on the inverter bus driving its battery current into ``link``."""

    def __init__(
        self,
        link: DcLink,
        profile: float | CurrentProfile | Callable[[float], float] = 0.0,
        kind: ProfileKind = ProfileKind.CURRENT,
        config: InverterConfig | None = None,
    ) -> None:
        self.config = config = config or InverterConfig()
        self.variant = VARIANTS[config.variant]
        self.db = variant_database(config.variant)
        self.stage = PowerStage(link, config.stage)
        self.profile: CurrentProfile = as_profile(profile)
        self.kind = kind
        self.silent = False
        self.limits: Limits | None = None
        self.alarms: frozenset[str] = frozenset()  # active alarm signals of the last alarm frame
        self.enable: tuple[bool, bool] | None = None  # (charge, discharge) of the last 0x35C
        self.enable_at: float | None = None
        self._soc: tuple[float, float] | None = None  # (SOC %, time received)
        self.state = InverterState.WAITING
        self._received: dict[int, dict[str, Any]] = {}
        has_enable = self.variant.enable is not EnableKind.NONE
        self._wanted = (LIMITS_ID, SOC_ID, self.variant.alarm_id) + (
            (ENABLE_ID,) if has_enable else ()
        )
        self._keepalive = Cyclic(config.keepalive_period_s)

    @property
    def current(self) -> float:
        """Battery current the inverter drives now (A, positive charging the pack)."""
        return self.stage.current

    def soc_at(self, t: float) -> float | None:
        """The battery's SOC (%) as last received, None without a fresh 0x355."""
        if self._soc is None or t - self._soc[1] > self.config.limits_timeout_s:
            return None
        return self._soc[0]

    # --- Device -------------------------------------------------------------------------

    def receive(self, msg: can.Message) -> None:
        if msg.is_extended_id or msg.arbitration_id not in self._wanted:
            return
        try:
            values = self.db.decode_message(
                msg.arbitration_id, bytes(msg.data), decode_choices=False
            )
        except (cantools.database.DecodeError, ValueError):
            return  # a malformed frame is not received
        self._received[msg.arbitration_id] = values

    def step(self, t: float, dt: float) -> list[can.Message]:
        self._take_frames(t)
        charge, discharge = self._permissions(t)
        lim = self.limits
        if self.state is InverterState.RUNNING and lim is not None:
            high = max(lim.ccl, 0.0) if charge else 0.0
            low = -max(lim.dcl, 0.0) if discharge else 0.0
            demand = min(max(self._demand(t), low), high)
            self.stage.regulate(demand, dt, v_max=lim.cvl, v_min=lim.dvl)
        else:
            self.stage.stop(dt)
        instants = self._keepalive.due(t)
        if self.silent:
            return []
        return [
            encode(self.db, self.config.keepalive_id, self._keepalive_payload(), instant)
            for instant in instants
        ]

    # --- internals ----------------------------------------------------------------------

    def _take_frames(self, t: float) -> None:
        """Frames received since the last step take effect now."""
        frames, self._received = self._received, {}
        if (v := frames.get(LIMITS_ID)) is not None:
            self.limits = Limits(
                cvl=v["ChargeVoltageLimit"],
                ccl=v["ChargeCurrentLimit"],
                dcl=v["DischargeCurrentLimit"],
                dvl=v["DischargeVoltageLimit"],
                received_at=t,
            )
        if (v := frames.get(SOC_ID)) is not None:
            self._soc = (float(v["StateOfCharge"]), t)
        if (v := frames.get(self.variant.alarm_id)) is not None:
            prefix = self.variant.alarm_prefix
            self.alarms = frozenset(k for k, x in v.items() if k.startswith(prefix) and x == ACTIVE)
        if (v := frames.get(ENABLE_ID)) is not None:
            if self.variant.enable is EnableKind.BITS:
                self.enable = (bool(v["ChargeEnable"]), bool(v["DischargeEnable"]))
            else:
                self.enable = (v["StartStop"] == 1,) * 2
            self.enable_at = t

    def _permissions(self, t: float) -> tuple[bool, bool]:
        """(charge, discharge) allowed now; sets ``state``."""
        timeout = self.config.limits_timeout_s
        charge = discharge = False
        if self.limits is None:
            self.state = InverterState.WAITING
        elif t - self.limits.received_at > timeout:
            self.state = InverterState.LIMITS_LOST
        elif self.alarms:
            self.state = InverterState.ALARM
        else:
            charge = discharge = True
            if self.variant.enable is not EnableKind.NONE:
                fresh = self.enable_at is not None and t - self.enable_at <= timeout
                charge, discharge = self.enable if fresh and self.enable else (False, False)
            self.state = InverterState.RUNNING if charge or discharge else InverterState.DISABLED
        if self.state is InverterState.RUNNING and (
            self.stage.link.link_voltage < self.config.min_link_voltage
        ):
            self.state = InverterState.LINK_DOWN
        return charge, discharge

    def _demand(self, t: float) -> float:
        value = float(self.profile(t))
        if self.kind is ProfileKind.POWER:
            value /= self.stage.link.link_voltage  # running implies a live link
        return value

    def _keepalive_payload(self) -> dict[str, int]:
        message = self.db.get_message_by_frame_id(self.config.keepalive_id)
        return dict.fromkeys((s.name for s in message.signals), 0)
