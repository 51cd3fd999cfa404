"""Elcon/TC on-board charger on the charger bus (frames from dbc/elcon_charger.dbc).

Receives ``0x1806xxF4`` (maximum voltage, maximum current, start/stop; big-endian) at its
address ``xx`` and charges constant current, then constant voltage: the output current is
limited so that the voltage at its terminals (the DC link, which sits above the pack
terminals while charging) does not exceed the commanded maximum, and it ramps (soft start)
rather than jumping. Without a command for ``command_timeout_s`` (5 s, as the real unit) it
stops by itself and reports the communication time-out bit until commands return. Below
``battery_detect_voltage`` it sees no battery: no output, status bit set.

Reports ``0x18FF50xx`` every ``status_period_s``: output voltage, output current and the five
status bits. Fault injection: any status bit (an injected fault stops the output as the real
fault would) and ``silent`` (no status frames). Chargers at different addresses share a link.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from enum import IntFlag
from functools import cache

import can
import cantools

import dbc
from slaves.hv_bus import Cyclic
from slaves.power_stage import DcLink, PowerStage, PowerStageConfig

START = 0  # any other control value stops, as a corrupt command must not start a charge


class StatusBit(IntFlag):
    """Byte 4 of the status frame; the value is the bit's weight."""

    HARDWARE_FAULT = 0x01
    OVER_TEMPERATURE = 0x02
    INPUT_VOLTAGE = 0x04  # wrong mains input voltage
    BATTERY_NOT_DETECTED = 0x08  # or reversed
    COMMUNICATION_TIMEOUT = 0x10


_STATUS_SIGNALS = {
    StatusBit.HARDWARE_FAULT: "HardwareFault",
    StatusBit.OVER_TEMPERATURE: "OverTemperature",
    StatusBit.INPUT_VOLTAGE: "InputVoltageFault",
    StatusBit.BATTERY_NOT_DETECTED: "BatteryNotDetected",
    StatusBit.COMMUNICATION_TIMEOUT: "CommunicationTimeout",
}


@cache
def elcon_database() -> cantools.database.can.Database:
    """``dbc/elcon_charger.dbc``, loaded once."""
    return cantools.database.load_file(dbc.path("elcon_charger.dbc"), strict=True)


@cache
def addresses() -> tuple[int, ...]:
    """Charger addresses the DBC defines a command for (E5, E7, E8, E9)."""
    names = (
        re.fullmatch(r"ChargerCommand_([0-9A-F]{2})", m.name) for m in elcon_database().messages
    )
    return tuple(sorted(int(m.group(1), 16) for m in names if m))


def command_id(address: int) -> int:
    return 0x1806_00F4 | (address << 8)


def status_id(address: int) -> int:
    return 0x18FF_5000 | address


@dataclass(frozen=True)
class ChargerConfig:
    """One charger; defaults are a 6.6 kW unit on a 400 V pack."""

    address: int = 0xE5
    rated_voltage: float = 500.0  # V, the most it outputs whatever the command
    rated_current: float = 20.0  # A
    command_timeout_s: float = 5.0
    status_period_s: float = 1.0
    battery_detect_voltage: float = 10.0  # V at the terminals below which there is no battery
    stage: PowerStageConfig = field(default_factory=PowerStageConfig)

    def __post_init__(self) -> None:
        if self.address not in addresses():
            known = ", ".join(f"0x{a:02X}" for a in addresses())
            raise ValueError(f"address: 0x{self.address:X} is not one of {known}")
        for name in ("rated_voltage", "rated_current", "command_timeout_s", "status_period_s"):
            value = getattr(self, name)
            if not (value > 0) or math.isinf(value):
                raise ValueError(f"{name}: expected a finite number > 0, got {value!r}")
        if not (self.battery_detect_voltage >= 0):
            raise ValueError("battery_detect_voltage: expected a number >= 0")


@dataclass(frozen=True)
class ChargerCommand:
    max_voltage: float
    max_current: float
    start: bool


class ElconCharger:
    """A Device: ``receive`` takes commands at its address, ``step`` charges and reports."""

    def __init__(self, link: DcLink, config: ChargerConfig | None = None) -> None:
        self.config = config or ChargerConfig()
        self.stage = PowerStage(link, self.config.stage)
        self.silent = False
        self.command: ChargerCommand | None = None  # the last one received
        self.status = StatusBit(0)
        self._injected = StatusBit(0)
        self._pending: ChargerCommand | None = None
        self._last_command_t: float | None = None
        self._powered_at: float | None = None
        self._schedule = Cyclic(self.config.status_period_s)
        a = f"{self.config.address:02X}"
        self._command_id = command_id(self.config.address)
        self._status_id = status_id(self.config.address)
        self._cmd = (f"Cmd{a}_MaxChargeVoltage", f"Cmd{a}_MaxChargeCurrent", f"Cmd{a}_Control")
        self._st = f"St{a}_"

    # --- what the tests and scenarios read --------------------------------------------

    @property
    def current(self) -> float:
        """Output current (A), into the pack."""
        return self.stage.current

    @property
    def voltage(self) -> float:
        """Voltage at the output terminals (V)."""
        return self.stage.link.link_voltage

    @property
    def charging(self) -> bool:
        return self.stage.current > 0.0

    # --- fault injection ----------------------------------------------------------------

    def inject(self, bits: StatusBit) -> None:
        self._injected |= bits

    def clear(self, bits: StatusBit | None = None) -> None:
        """Clear the injected ``bits`` (all of them by default)."""
        self._injected = StatusBit(0) if bits is None else self._injected & ~bits

    # --- Device -------------------------------------------------------------------------

    def receive(self, msg: can.Message) -> None:
        if not msg.is_extended_id or msg.arbitration_id != self._command_id or msg.dlc < 5:
            return
        try:
            values = elcon_database().decode_message(
                self._command_id, bytes(msg.data), decode_choices=False, allow_truncated=True
            )
        except (cantools.database.DecodeError, ValueError):
            return
        volts, amps, control = (values[name] for name in self._cmd)
        self._pending = ChargerCommand(float(volts), float(amps), control == START)

    def step(self, t: float, dt: float) -> list[can.Message]:
        c = self.config
        if self._powered_at is None:
            self._powered_at = t - dt
        if self._pending is not None:
            self.command, self._pending = self._pending, None
            self._last_command_t = t
        since = self._powered_at if self._last_command_t is None else self._last_command_t
        status = self._injected
        if t - since > c.command_timeout_s:
            status |= StatusBit.COMMUNICATION_TIMEOUT
        if self.voltage < c.battery_detect_voltage:
            status |= StatusBit.BATTERY_NOT_DETECTED
        self.status = status
        cmd = self.command
        if status or cmd is None or not cmd.start:
            self.stage.stop(dt)
        else:
            self.stage.regulate(
                min(cmd.max_current, c.rated_current),
                dt,
                v_max=min(cmd.max_voltage, c.rated_voltage),
            )
        instants = self._schedule.due(t)
        if self.silent:
            return []
        return [self._status_frame(instant) for instant in instants]

    def _status_frame(self, t: float) -> can.Message:
        st = self._st
        signals = {
            f"{st}OutputVoltage": min(max(self.voltage, 0.0), 6553.5),
            f"{st}OutputCurrent": min(max(self.current, 0.0), 6553.5),
        } | {f"{st}{name}": int(bit in self.status) for bit, name in _STATUS_SIGNALS.items()}
        return can.Message(
            arbitration_id=self._status_id,
            data=elcon_database().encode_message(self._status_id, signals),
            timestamp=t,
            is_extended_id=True,
        )
