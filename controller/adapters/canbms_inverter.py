"""CAN-BMS protocol towards storage inverters (Victron, Pylontech-compatible, SMA variants).

The inverter obeys 0x351 (CVL, CCL, DCL, DVL) and reads state, alarms and identity from the
other frames; the variants differ in the alarm frame (0x35A two-bit vs 0x359 one-bit), in
0x35C (enable bits vs start/stop) and in the optional frames. The DBC of each variant is the
contract: frames are encoded from it.

Fault reaction, in this order: in the very cycle a fault (or a lost charge/discharge
permission) appears, the fast frames go out at once, not at the next period: CVL lowered to
the present pack voltage, CCL/DCL = 0, alarm flags active, enable bits cleared (Pylontech) or
stop (SMA). The core opens the contactors afterwards, on its own delay. CVL is never sent as
0 (Victron reads it as over-voltage): it is floored at DVL or ``cvl_floor``; without any
usable value 0x351 is withheld, which inverters treat as a lost BMS and stop. The protocol
has no "not available" SOC either: while the SOC is unknown 0x355 is withheld rather than sent
as 0 % (which an inverter would act on: force-charge, generator start, discharge stop).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from controller.adapters.base import BmsSnapshot, Level, LimitRequest
from controller.adapters.framing import FrameEncoder, ascii_field, load_dbc, schedule
from controller.adapters.inverter_flags import flags_35a, flags_359
from controller.adapters.keepalive import KeepAliveConfig, KeepAliveState, watch_link
from controller.config.declare import load, setting
from controller.diagnosis.events import Event
from controller.errors import ConfigError
from controller.frames import OutFrame
from controller.stage import StageInputs, StageOutput, Traffic
from dbc import path as dbc_path

KEEPALIVE_IDS = (0x305, 0x307)
NO_CVL = "inverter_no_cvl"  # catalogue ID


@dataclass(frozen=True)
class Variant:
    dbc: str
    fast: tuple[int, ...]  # sent every ``period`` and at once on a fault
    slow: tuple[int, ...]  # identity frames, every ``info_period``
    extras: tuple[int, ...] = ()  # optional, enabled by ``extras``


VARIANTS = {
    "victron": Variant(
        "canbms_inverter_victron.dbc", (0x351, 0x355, 0x356, 0x35A), (0x35E, 0x35F), (0x373, 0x379)
    ),
    "pylontech": Variant(
        "canbms_inverter_pylontech.dbc", (0x351, 0x355, 0x356, 0x359, 0x35C), (0x35E,)
    ),
    "sma": Variant("canbms_inverter_sma.dbc", (0x351, 0x355, 0x356, 0x35A, 0x35C), (0x35E, 0x35F)),
}


@dataclass(frozen=True)
class InverterConfig:
    """An ``[[adapters]]`` table of type ``canbms_inverter``."""

    variant: Literal["victron", "pylontech", "sma"] = setting(doc="protocol variant")
    type: Literal["canbms_inverter"] = setting("canbms_inverter", doc="CAN-BMS storage inverter")
    name: str = setting("canbms_inverter", doc="name in events (default: the type, made unique)")
    bus: str = setting("vehicle", doc="the configured bus the inverter is on")
    period: float = setting(1.0, ge=0.1, le=10.0, unit="s", doc="period of the fast frames")
    info_period: float = setting(
        10.0, ge=0.5, le=120.0, unit="s", doc="period of the identity frames"
    )
    manufacturer: str = setting("canbms", doc="0x35E name, at most 8 ASCII characters")
    model_id: int = setting(0, ge=0, le=0xFFFF, doc="0x35F model")
    hardware_version: int = setting(0, ge=0, le=0xFFFF, doc="0x35F hardware version")
    software_version: int = setting(0, ge=0, le=0xFFFF, doc="0x35F software version")
    module_count: int = setting(1, ge=1, le=255, doc="0x359 module count (Pylontech)")
    alarm_level: Level = setting(
        Level.ALARM, choices=(Level.ALARM, Level.FAULT), doc="level reported as an alarm flag"
    )
    fault_level: Level = setting(
        Level.FAULT, choices=(Level.ALARM, Level.FAULT), doc="level that stops the inverter"
    )
    cvl_floor: float = setting(
        0.0, ge=0.0, le=6553.5, unit="V", doc="CVL is never sent below this (nor below DVL)"
    )
    extras: bool = setting(True, doc="send the variant's optional frames")
    keepalive: bool = setting(True, doc="watch the inverter's keep-alive (0x305/0x307)")
    keepalive_loss_after: float = setting(
        10.0, ge=1.0, unit="s", doc="log the keep-alive as lost after this long"
    )
    keepalive_timeout: float = setting(
        600.0, unit="s", doc="cut the limits after this long (>= keepalive_loss_after)"
    )
    keepalive_limit_fraction: float = setting(
        0.0, ge=0.0, le=1.0, doc="fraction of the limits kept after the timeout"
    )

    def validate(self, path: str) -> None:
        if not self.manufacturer.isascii() or len(self.manufacturer) > 8:
            raise ConfigError(f"{path}.manufacturer", "at most 8 ASCII chars")
        if self.keepalive_timeout < self.keepalive_loss_after:
            raise ConfigError(
                f"{path}.keepalive_timeout",
                f"{self.keepalive_timeout} is below the minimum {self.keepalive_loss_after} "
                "(keepalive_loss_after)",
            )

    @property
    def watch(self) -> KeepAliveConfig:
        return KeepAliveConfig(
            self.keepalive_loss_after, self.keepalive_timeout, self.keepalive_limit_fraction
        )

    @classmethod
    def from_table(cls, data: Mapping[str, Any], path: str) -> InverterConfig:
        """Parse ``[[adapters]]`` of type ``canbms_inverter``; errors name the key."""
        return load(cls, data, path)


@dataclass(frozen=True)
class Commanded:
    """What this cycle tells the inverter, after the fault and permission rules."""

    cvl: float | None  # None: no usable non-zero CVL, 0x351 withheld
    ccl: float
    dcl: float
    dvl: float
    fault: bool
    charge: bool
    discharge: bool


@dataclass(frozen=True)
class InverterState:
    next_due: dict[int, float] = field(default_factory=dict)
    mode: tuple[bool, bool, bool, bool] | None = None
    last_cvl: float = 0.0
    cvl_withheld: bool = False
    watch: KeepAliveState = field(default_factory=KeepAliveState)


def _finite(value: float, default: float = 0.0) -> float:
    return value if math.isfinite(value) else default


class CanBmsInverter:
    """One storage inverter (or a group answering as one) on ``config.bus``."""

    def __init__(self, config: InverterConfig) -> None:
        self.config = config
        self.name = config.name
        self.bus = config.bus
        variant = VARIANTS[config.variant]
        db = load_dbc(dbc_path(variant.dbc))
        self.fast = variant.fast + (variant.extras[:1] if config.extras else ())
        self.slow = variant.slow + (variant.extras[1:] if config.extras else ())
        self.periods = {i: config.period for i in self.fast} | {
            i: config.info_period for i in self.slow
        }
        self.encoders = {i: FrameEncoder.of(db, i, config.bus) for i in self.periods}
        builders: dict[int, Callable[[BmsSnapshot, Commanded], OutFrame]] = {
            0x351: self._limits,
            0x355: self._soc,
            0x356: self._measurements,
            0x359: self._protection,
            0x35A: self._alarms,
            0x35C: self._request if config.variant == "pylontech" else self._start_stop,
            0x35E: self._manufacturer,
            0x35F: self._info,
            0x373: self._cell_extremes,
            0x379: self._capacity,
        }
        self.builders = {i: builders[i] for i in self.periods}

    @classmethod
    def from_config(cls, data: Mapping[str, Any], path: str) -> CanBmsInverter:
        return cls(InverterConfig.from_table(data, path))

    def initial_state(self) -> InverterState:
        return InverterState()

    @property
    def traffic(self) -> Traffic:
        """Reads the keep-alive, writes the frames of its variant (11-bit)."""
        sent = (*self.fast, *self.slow)
        return Traffic(
            consumes=frozenset(KEEPALIVE_IDS) if self.config.keepalive else frozenset(),
            produces=frozenset(sent),
        )

    def step(
        self, state: InverterState, inputs: StageInputs, now: float
    ) -> tuple[InverterState, StageOutput]:
        snapshot, rx = inputs.snapshot, inputs.frames
        events: tuple[Event, ...] = ()
        limits = LimitRequest()
        watch = state.watch
        if self.config.keepalive:
            seen = bool(np.isin(rx.ids, KEEPALIVE_IDS).any()) if len(rx) else False
            watch, events, limits = watch_link(
                self.config.watch, watch, seen, now, snapshot.ccl, snapshot.dcl, self.name
            )
        cmd = self._command(snapshot, limits, state.last_cvl)
        mode = (cmd.fault, cmd.charge, cmd.discharge, limits.max_ccl is not None)
        force = self.fast if state.mode is not None and mode != state.mode else ()
        due, next_due = schedule(state.next_due, self.periods, now, force)
        if cmd.cvl is None:
            due = tuple(i for i in due if i != 0x351)
            if not state.cvl_withheld:
                withheld = f"{self.name}: no usable charge voltage limit, 0x351 withheld"
                events += (Event(now, NO_CVL, Level.WARNING, "set", detail=withheld),)
        elif state.cvl_withheld:
            usable = f"{self.name}: charge voltage limit usable again, 0x351 sent"
            events += (Event(now, NO_CVL, Level.WARNING, "cleared", detail=usable),)
        if not math.isfinite(snapshot.soc):
            due = tuple(i for i in due if i != 0x355)  # no code for "unknown": withheld
        frames = tuple(self.builders[i](snapshot, cmd) for i in due)
        new = InverterState(
            next_due=next_due,
            mode=mode,
            last_cvl=cmd.cvl if cmd.cvl is not None else state.last_cvl,
            cvl_withheld=cmd.cvl is None,
            watch=watch,
        )
        return new, StageOutput(frames, events, limits)

    def _command(self, s: BmsSnapshot, limits: LimitRequest, last_cvl: float) -> Commanded:
        fault = not s.data_valid or s.fault_level >= self.config.fault_level
        closed = s.contactors_closed and not fault
        charge = closed and s.charge_allowed
        discharge = closed and s.discharge_allowed
        ccl = max(0.0, _finite(s.ccl)) if charge else 0.0
        dcl = max(0.0, _finite(s.dcl)) if discharge else 0.0
        if limits.max_ccl is not None:
            ccl = min(ccl, limits.max_ccl)
        if limits.max_dcl is not None:
            dcl = min(dcl, limits.max_dcl)
        dvl = max(0.0, _finite(s.dvl))
        cvl = _finite(s.cvl)
        pack = _finite(s.pack_voltage)
        if not charge and pack > 0.0:
            cvl = min(cvl, pack)  # stop charging by voltage, as Victron does
        cvl = max(cvl, dvl, self.config.cvl_floor)
        if self.encoders[0x351].raw("ChargeVoltageLimit", cvl) < 1:  # would be sent as 0
            cvl = last_cvl if last_cvl > 0.0 else None
        return Commanded(cvl, ccl, dcl, dvl, fault, charge, discharge)

    def _limits(self, s: BmsSnapshot, c: Commanded) -> OutFrame:
        return self.encoders[0x351].encode(
            {
                "ChargeVoltageLimit": c.cvl if c.cvl is not None else 0.0,
                "ChargeCurrentLimit": c.ccl,
                "DischargeCurrentLimit": c.dcl,
                "DischargeVoltageLimit": c.dvl,
            },
            round_down=("ChargeCurrentLimit", "DischargeCurrentLimit"),
        )

    def _soc(self, s: BmsSnapshot, c: Commanded) -> OutFrame:
        values = {"StateOfCharge": s.soc, "StateOfHealth": s.soh}
        if self.config.variant == "sma":
            values["StateOfChargeHiRes"] = s.soc
        return self.encoders[0x355].encode({k: min(max(v, 0.0), 100.0) for k, v in values.items()})

    def _measurements(self, s: BmsSnapshot, c: Commanded) -> OutFrame:
        return self.encoders[0x356].encode(
            {
                "BatteryVoltage": s.pack_voltage,
                "BatteryCurrent": s.pack_current,
                "BatteryTemperature": s.mean_temperature,
            }
        )

    def _alarms(self, s: BmsSnapshot, c: Commanded) -> OutFrame:
        return self.encoders[0x35A].encode_raw(flags_35a(s, self.config.alarm_level))

    def _protection(self, s: BmsSnapshot, c: Commanded) -> OutFrame:
        values = flags_359(s, self.config.alarm_level)
        values["ModuleCount"] = self.config.module_count
        values["ProtocolTag"] = int.from_bytes(b"PN", "little")
        return self.encoders[0x359].encode_raw(values)

    def _request(self, s: BmsSnapshot, c: Commanded) -> OutFrame:
        return self.encoders[0x35C].encode_raw(
            {"ChargeEnable": int(c.charge), "DischargeEnable": int(c.discharge)}
        )

    def _start_stop(self, s: BmsSnapshot, c: Commanded) -> OutFrame:
        running = c.charge or c.discharge
        return self.encoders[0x35C].encode_raw({"StartStop": 1 if running else 2})

    def _manufacturer(self, s: BmsSnapshot, c: Commanded) -> OutFrame:
        return self.encoders[0x35E].encode_raw(
            {"ManufacturerName": ascii_field(self.config.manufacturer)}
        )

    def _info(self, s: BmsSnapshot, c: Commanded) -> OutFrame:
        return self.encoders[0x35F].encode(
            {
                "ModelId": self.config.model_id,
                "HardwareVersion": self.config.hardware_version,
                "CapacityAh": s.capacity_ah,
                "SoftwareVersion": self.config.software_version,
            }
        )

    def _cell_extremes(self, s: BmsSnapshot, c: Commanded) -> OutFrame:
        return self.encoders[0x373].encode(
            {
                "MinCellVoltage": s.min_cell_voltage,
                "MaxCellVoltage": s.max_cell_voltage,
                "MinTemperature": s.min_temperature,
                "MaxTemperature": s.max_temperature,
            }
        )

    def _capacity(self, s: BmsSnapshot, c: Commanded) -> OutFrame:
        return self.encoders[0x379].encode({"InstalledCapacity": s.capacity_ah})
