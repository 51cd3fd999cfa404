"""Isabellenhuette IVT-S current sensor on the internal bus (frames from dbc/ivt_s.dbc).

Measures the HV circuit: I = pack current (positive when charging, the sensor mounted so),
U1 = pack voltage at the battery side of the contactors, U2 = DC-link voltage, U3 = a value
the scenario sets. Power, charge (As) and energy (Wh) are computed from the measured current
as the sensor does. Each result has its own 4-bit message counter and cyclic period.
Commands on 0x411 switch run/stop, trigger results and configure cycle times.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum, IntEnum

import can
import numpy as np

from slaves.hv_bus import Cyclic, encode, ivt_database
from slaves.hv_circuit import HvCircuit

COMMAND_ID = 0x411
RESPONSE_ID = 0x511
_CONFIGURE = 0x20  # + result ID
_TRIGGER = 0x31
_SET_MODE = 0x34
_COMMANDS = frozenset((*range(_CONFIGURE, _CONFIGURE + 8), _TRIGGER, _SET_MODE))


class IvtResult(IntEnum):
    """Result channels; the value is the result ID in byte 0, the CAN ID is 0x521 + value."""

    I = 0  # noqa: E741 - the sensor's own name
    U1 = 1
    U2 = 2
    U3 = 3
    T = 4
    W = 5
    As = 6
    Wh = 7

    @property
    def frame_id(self) -> int:
        return 0x521 + self.value


class TriggerMode(IntEnum):
    DISABLED = 0
    TRIGGERED = 1
    CYCLIC = 2


class SensorFault(Enum):
    """Injectable faults, each applied to a chosen set of results."""

    SILENT = "silent"  # the result is not sent
    COUNTER_FROZEN = "counter_frozen"  # the message counter stops advancing
    ERROR_BIT = "error_bit"  # measurement error bit set
    STUCK_VALUE = "stuck_value"  # the value stays at what was last sent


@dataclass(frozen=True)
class CurrentSensorConfig:
    """Measurement errors and cyclic periods (seconds).

    Periods: 20 ms for the current (protection needs fast over-current detection), 100 ms
    for voltages, power and counters, 1 s for the slowly changing shunt temperature.
    """

    current_period_s: float = 0.020
    voltage_period_s: float = 0.100
    temperature_period_s: float = 1.0
    counter_period_s: float = 0.100  # power, charge and energy
    current_offset_a: float = 0.0
    current_noise_a: float = 0.0  # standard deviation
    voltage_noise_v: float = 0.0  # standard deviation, U1..U3
    overcurrent_threshold_a: float = math.inf  # OCS bit when |I| exceeds it
    seed: int = 0

    def period(self, result: IvtResult) -> float:
        if result is IvtResult.I:
            return self.current_period_s
        if result in (IvtResult.U1, IvtResult.U2, IvtResult.U3):
            return self.voltage_period_s
        if result is IvtResult.T:
            return self.temperature_period_s
        return self.counter_period_s


class CurrentSensor:
    """An IVT-S reading an :class:`HvCircuit`; a Device (``step``, ``receive``)."""

    def __init__(self, circuit: HvCircuit, config: CurrentSensorConfig | None = None) -> None:
        self.circuit = circuit
        self.config = config or CurrentSensorConfig()
        self.u3_voltage = 0.0
        self.temperature_c = 25.0
        self.running = True
        self.charge_as = 0.0
        self.energy_wh = 0.0
        self._rng = np.random.default_rng(self.config.seed)
        self._modes = dict.fromkeys(IvtResult, TriggerMode.CYCLIC)
        self._schedules = {r: Cyclic(self.config.period(r)) for r in IvtResult}
        self._counters = dict.fromkeys(IvtResult, 0)
        self._last_raw = dict.fromkeys(IvtResult, 0)
        self._faults: dict[SensorFault, frozenset[IvtResult]] = {}
        self._commands: list[can.Message] = []
        self._next_instant = -math.inf  # the earliest send instant of any result
        self.error_offset_a = 0.0
        self.error_gain = 1.0

    # --- fault injection ---------------------------------------------------------------

    def inject(self, fault: SensorFault, results: Iterable[IvtResult] = tuple(IvtResult)) -> None:
        self._faults[fault] = self._faults.get(fault, frozenset()) | frozenset(results)

    def clear(self, fault: SensorFault) -> None:
        self._faults.pop(fault, None)

    def miscalibrate(self, offset_a: float = 0.0, gain: float = 1.0) -> None:
        """From now on the current reads ``gain`` x true + ``offset_a`` (on top of the
        configured offset); ``miscalibrate()`` restores the calibration."""
        self.error_offset_a = offset_a
        self.error_gain = gain

    def _faulty(self, fault: SensorFault, result: IvtResult) -> bool:
        return result in self._faults.get(fault, ())

    # --- measurement ---------------------------------------------------------------------

    def _measured(self) -> dict[IvtResult, float]:
        """All results now, in the units of the frames (mA, mV, degC, W, As, Wh)."""
        c = self.config
        noise = self._rng.normal(0.0, 1.0, 4) * (
            c.current_noise_a,
            c.voltage_noise_v,
            c.voltage_noise_v,
            c.voltage_noise_v,
        )
        current = self._read_current() + noise[0]
        u1 = self.circuit.pack_terminal_voltage + noise[1]
        return {
            IvtResult.I: current * 1e3,
            IvtResult.U1: u1 * 1e3,
            IvtResult.U2: (self.circuit.link_voltage + noise[2]) * 1e3,
            IvtResult.U3: (self.u3_voltage + noise[3]) * 1e3,
            IvtResult.T: self.temperature_c,
            IvtResult.W: u1 * current,
            IvtResult.As: self.charge_as,
            IvtResult.Wh: self.energy_wh,
        }

    def _read_current(self) -> float:
        """The current the shunt reports, with the calibration errors (before noise)."""
        true = self.circuit.pack_current
        return self.error_gain * true + self.config.current_offset_a + self.error_offset_a

    def _frame(self, result: IvtResult, value: float, t: float, ocs: bool) -> can.Message:
        q = result.name
        raw = self._last_raw[result] if self._faulty(SensorFault.STUCK_VALUE, result) else value
        self._last_raw[result] = raw
        signals = {
            f"IVT_{q}_Id": result.value,
            f"IVT_{q}_Counter": self._counters[result],
            f"IVT_{q}_OCS": int(ocs),
            f"IVT_{q}_ChannelError": 0,
            f"IVT_{q}_MeasurementError": int(self._faulty(SensorFault.ERROR_BIT, result)),
            f"IVT_{q}_SystemError": 0,
            f"IVT_{q}_Value": raw,
        }
        if not self._faulty(SensorFault.COUNTER_FROZEN, result):
            self._counters[result] = (self._counters[result] + 1) % 16
        return encode(ivt_database(), result.frame_id, signals, t)

    def _results(self, wanted: dict[IvtResult, list[float]]) -> list[can.Message]:
        if not any(wanted.values()):
            return []
        values = self._measured()
        ocs = abs(values[IvtResult.I]) > self.config.overcurrent_threshold_a * 1e3
        scale = {IvtResult.T: 10.0}
        out = []
        for result, instants in wanted.items():
            if self._faulty(SensorFault.SILENT, result):
                continue
            raw = round(values[result] * scale.get(result, 1.0)) / scale.get(result, 1.0)
            out.extend(self._frame(result, raw, instant, ocs) for instant in instants)
        return out

    # --- commands ------------------------------------------------------------------------

    def _respond(self, t: float, signals: dict[str, int]) -> can.Message:
        return encode(ivt_database(), RESPONSE_ID, signals, t)

    def _command(self, msg: can.Message, t: float, triggered: set[IvtResult]) -> can.Message:
        """Apply one command; returns the response frame."""
        cid = msg.data[0] if msg.data else 0xFF
        if cid not in _COMMANDS or len(msg.data) != 8:
            return self._respond(t, {"IVT_Resp_Id": 0xFF, "IVT_Resp_WrongCommand": cid})
        cmd = ivt_database().decode_message(COMMAND_ID, bytes(msg.data), decode_choices=False)
        if cid == _SET_MODE:
            self.running = bool(cmd["IVT_Cmd_RunMode"])
            if self.running:
                for schedule in self._schedules.values():
                    schedule.restart(t)
            return self._respond(
                t,
                {
                    "IVT_Resp_Id": 0xB4,
                    "IVT_Resp_RunMode": int(self.running),
                    "IVT_Resp_StartupMode": cmd["IVT_Cmd_StartupMode"],
                },
            )
        if cid == _TRIGGER:
            bits = {r: cmd[f"IVT_Cmd_Trigger_{r.name}"] for r in IvtResult}
            if self.running:
                triggered.update(r for r, bit in bits.items() if bit)
            return self._respond(
                t,
                {"IVT_Resp_Id": 0xB1} | {f"IVT_Resp_Trigger_{r.name}": b for r, b in bits.items()},
            )
        result = IvtResult(cid - _CONFIGURE)
        mode = cmd[f"IVT_Cmd_TriggerMode_{result.name}"]
        cycle_ms = cmd[f"IVT_Cmd_CycleTime_{result.name}"]
        invalid = mode > TriggerMode.CYCLIC or (mode == TriggerMode.CYCLIC and not cycle_ms)
        if self.running or invalid:
            return self._respond(t, {"IVT_Resp_Id": 0xFF, "IVT_Resp_WrongCommand": cid})
        self._modes[result] = TriggerMode(mode)
        if cycle_ms:
            self._schedules[result] = Cyclic(cycle_ms / 1000.0)
        return self._respond(
            t,
            {
                "IVT_Resp_Id": 0xA0 + result.value,
                f"IVT_Resp_TriggerMode_{result.name}": mode,
                f"IVT_Resp_CycleTime_{result.name}": round(
                    self._schedules[result].period_s * 1000.0
                ),
            },
        )

    # --- Device --------------------------------------------------------------------------

    def receive(self, msg: can.Message) -> None:
        if msg.arbitration_id == COMMAND_ID and not msg.is_extended_id:
            self._commands.append(msg)

    def step(self, t: float, dt: float) -> list[can.Message]:
        if not self._commands and self._next_instant > t + Cyclic.EPS:
            self._integrate(dt)  # nothing due and nothing asked: no frame this step
            return []
        out = []
        triggered: set[IvtResult] = set()
        for msg in self._commands:
            out.append(self._command(msg, t, triggered))
        self._commands.clear()
        wanted: dict[IvtResult, list[float]] = {}
        for result in IvtResult:
            instants = self._schedules[result].due(t)
            cyclic = self.running and self._modes[result] is TriggerMode.CYCLIC
            wanted[result] = (instants if cyclic else []) + ([t] if result in triggered else [])
        out.extend(self._results(wanted))
        self._next_instant = min(s.next_instant for s in self._schedules.values())
        self._integrate(dt)
        return out

    def _integrate(self, dt: float) -> None:
        """Charge and energy counters follow the true current (the sensor's own integral)."""
        current = self._read_current()
        self.charge_as += current * dt
        self.energy_wh += current * self.circuit.pack_terminal_voltage * dt / 3600.0
