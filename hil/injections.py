"""Every fault the plant can inject, as the fault matrix names it.

An `Injection` says how to provoke the fault on the simulated plant (`apply`), what reveals
a latent fault (`reveal`, run ``reveal_s`` later: a load step for a stuck current reading,
a stop request for a welded contactor), how to undo it (`clear`), the plant temperature a row
needs beforehand (over- and under-temperature start one kelvin inside the limit so that the
reading rises at a plausible rate) and the terms of the detection bound (`hil.timing`).
Reaction times are measured from the onset: the injection, or its reveal.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from controller.adapters.canbms_inverter import CanBmsInverter
from controller.adapters.elcon import ElconCharger
from hil.timing import Term, Timing
from slaves.current_sensor import IvtResult, SensorFault
from slaves.ems import Ems, EmsCommand, EmsRequest
from slaves.faults import (
    CellVoltageStuck,
    CounterFrozen,
    CrcCorruption,
    ModuleSilent,
    OpenWire,
    SensorOpen,
    SensorShort,
    SensorStuck,
)
from slaves.hv_circuit import ContactorFault, ContactorId
from slaves.system import INTERNAL, VEHICLE, SimulatedSystem

MODULE, CELL, SENSOR = 3, 5, 1  # where a fault of one element is put
VOLT_MARGIN = 0.05  # V beyond a cell-voltage fault threshold
TEMP_START, TEMP_STEP = 1.0, 2.0  # K inside a temperature threshold at start, K beyond it
CURRENT_MARGIN = 10.0  # A beyond an over-current fault threshold
STEP_A = 150.0  # A, the load step that reveals a current sensor fault
GAIN = 1.5  # a current gain error the consistency check grades as an alarm


class Load(Protocol):
    demand: float
    ignore_limits: bool


class Context(Protocol):
    """What an injection acts on: the plant, its load, the bus roles cut off."""

    system: SimulatedSystem
    load: Load
    cut: set[str]
    timing: Timing


Action = Callable[[Context], None]
Terms = Callable[[Timing, str, str], list[Term]]  # (timing, diagnosis, level)


def _nothing(ctx: Context) -> None:
    """No action."""


@dataclass(frozen=True)
class Injection:
    apply: Action
    clear: Action
    terms: Terms
    doc: str
    reveal: Action | None = None
    reveal_s: float = 0.0
    temperature: Callable[[Timing], float] | None = None  # plant temperature before the row
    current: Callable[[Timing], float] = field(default=lambda t: 0.0)  # A at the onset
    reveal_on_plus_command: bool = False  # latent until the plus contactor is commanded
    fast_thermal: bool = False  # needs a plant that warms within a minute (lock-step only)
    settle_s: float = 1.0  # s in the row's state before the injection


def _reading(source: str, plausibility: bool = False) -> Terms:
    """A wrong reading: one frame period to carry it, the delay, a cycle (and the
    plausibility evaluation period)."""

    def terms(t: Timing, diagnosis: str, level: str) -> list[Term]:
        out = [t.period(source), t.delay(diagnosis, level), t.cycle]
        return out + [t.evaluation] if plausibility else out

    return terms


def _silence(diagnosis_source: str) -> Terms:
    """No valid frame any more: the staleness threshold, its delay, a cycle."""

    def terms(t: Timing, diagnosis: str, level: str) -> list[Term]:
        if diagnosis == "invalid_measurement":
            return [t.period(diagnosis_source), t.delay(diagnosis, level), t.cycle]
        return [t.timeout(diagnosis), t.delay(diagnosis, level), t.cycle]

    return terms


def _frozen(source: str) -> Terms:
    """A repeated counter: the frame sent next still carries a fresh one, so the data goes
    stale one period later than on a silence."""

    def terms(t: Timing, diagnosis: str, level: str) -> list[Term]:
        return [t.period(source), *_silence(source)(t, diagnosis, level)]

    return terms


def _requested(terms: Terms) -> Terms:
    """Revealed by an EMS request: it reaches the controller within one EMS period."""

    def with_request(t: Timing, diagnosis: str, level: str) -> list[Term]:
        return [t.period("ems"), *terms(t, diagnosis, level)]

    return with_request


def _second_sender(t: Timing, diagnosis: str, level: str) -> list[Term]:
    """Two interleaved senders change between accepted and rejected frames at least once
    per EMS period; the gate wants ``second_source_changes`` of them (``[security]``)."""
    changes = t.config.security.second_source_changes
    return [
        Term(
            f"security.second_source_changes ({changes}) x ems period", changes * t.periods["ems"]
        ),
        t.period("ems"),
        t.cycle,
    ]


def _unknown_current(t: Timing) -> float:
    """No valid current: the contactors cannot tell it is below the break current."""
    return math.inf


def _contactor(t: Timing, diagnosis: str, level: str) -> list[Term]:
    """The command leaves at the end of its cycle and the allowance runs from the next
    step; the driver's feedback frame then shows the contact."""
    return [t.cycle, t.delay(diagnosis, level), t.period("feedback"), t.cycle]


def _feedback_lost(t: Timing, diagnosis: str, level: str) -> list[Term]:
    """The feedback goes stale after its ingest timeout, then the allowance runs."""
    return [t.staleness("contactor_feedback"), t.delay(diagnosis, level), t.cycle, t.cycle]


def _warming(t: Timing, diagnosis: str, level: str) -> list[Term]:
    """The check compares movements over its window: one window, the delay, a frame."""
    window = t.config.protection.plausibility.temperature_window_s
    return [
        Term("plausibility.temperature_window_s", window),
        t.delay(diagnosis, level),
        t.period("temperature"),
        t.evaluation,
        t.cycle,
    ]


INVERTER, CHARGER = "inverter", "charger"  # the bench plant's devices on the vehicle bus
KEEPALIVE_CHECKS = {
    "inverter_keepalive_lost": "keepalive_loss_after",
    "inverter_limits_capped": "keepalive_timeout",
}


def _device_silent(t: Timing, kind: type, key: str) -> list[Term]:
    """A device's last frame may still be in flight at the onset; silence counts from its
    arrival, the adapter judges it in the cycle the time is over."""
    return [Term("last frame in flight", t.config.cycle_s), t.adapter(kind, key), t.cycle]


def _keepalive(t: Timing, diagnosis: str, level: str) -> list[Term]:
    return _device_silent(t, CanBmsInverter, KEEPALIVE_CHECKS[diagnosis])


def _charger_silent(t: Timing, diagnosis: str, level: str) -> list[Term]:
    return _device_silent(t, ElconCharger, "status_timeout")


def _silence_device(name: str) -> tuple[Action, Action]:
    def apply(ctx: Context) -> None:
        ctx.system.vehicle_devices[name].silent = True  # type: ignore[attr-defined]

    def clear(ctx: Context) -> None:
        ctx.system.vehicle_devices[name].silent = False  # type: ignore[attr-defined]

    return apply, clear


def _slave(fault: object) -> tuple[Action, Action]:
    def apply(ctx: Context) -> None:
        ctx.system.faults.inject(fault)  # type: ignore[arg-type]

    def clear(ctx: Context) -> None:
        ctx.system.faults.clear(fault)  # type: ignore[arg-type]

    return apply, clear


def _cell_stuck(above: bool) -> tuple[Action, Action]:
    def apply(ctx: Context) -> None:
        check = "cell_overvoltage" if above else "cell_undervoltage"
        sign = 1.0 if above else -1.0
        volts = ctx.timing.threshold(check) + sign * VOLT_MARGIN
        ctx.system.faults.inject(CellVoltageStuck(MODULE, CELL, volts))

    def clear(ctx: Context) -> None:
        ctx.system.faults.clear()

    return apply, clear


def _temperature(check: str) -> tuple[Action, Action, Callable[[Timing], float]]:
    """Start one kelvin inside the threshold, then one sensor reads two kelvin beyond it:
    slower than the rate check, narrower than the module spread check."""
    above = check.startswith("over")
    sign = 1.0 if above else -1.0

    def start(t: Timing) -> float:
        return t.threshold(check) - sign * TEMP_START

    def apply(ctx: Context) -> None:
        celsius = ctx.timing.threshold(check) + sign * TEMP_STEP
        ctx.system.faults.inject(SensorStuck(MODULE, SENSOR, celsius))

    def clear(ctx: Context) -> None:
        ctx.system.faults.clear()

    return apply, clear, start


def _overcurrent(check: str) -> tuple[Action, Action, Callable[[Timing], float]]:
    """A load that ignores the limits draws (or a charger pushes) beyond the threshold."""
    sign = 1.0 if check == "overcurrent_discharge" else -1.0

    def amps(t: Timing) -> float:
        return t.threshold(check) + CURRENT_MARGIN

    def apply(ctx: Context) -> None:
        ctx.load.ignore_limits = True
        ctx.load.demand = sign * amps(ctx.timing)

    def clear(ctx: Context) -> None:
        ctx.load.ignore_limits = False
        ctx.load.demand = 0.0

    return apply, clear, amps


def _sensor(fault: SensorFault, results: tuple[IvtResult, ...]) -> tuple[Action, Action]:
    def apply(ctx: Context) -> None:
        ctx.system.sensor.inject(fault, results)

    def clear(ctx: Context) -> None:
        ctx.system.sensor.clear(fault)

    return apply, clear


def _miscalibrate(offset: Callable[[Timing], float] | None, gain: float) -> tuple[Action, Action]:
    def apply(ctx: Context) -> None:
        ctx.system.sensor.miscalibrate(offset(ctx.timing) if offset else 0.0, gain)

    def clear(ctx: Context) -> None:
        ctx.system.sensor.miscalibrate()

    return apply, clear


def _step_load(ctx: Context) -> None:
    """The load steps by `STEP_A` in the direction it already runs (discharge from rest)."""
    ctx.load.demand = -STEP_A if ctx.load.demand < 0 else STEP_A


def _contactor_fault(fault: ContactorFault) -> tuple[Action, Action]:
    def apply(ctx: Context) -> None:
        ctx.system.circuit.contactors[ContactorId.PLUS].fault = fault

    def clear(ctx: Context) -> None:
        """The contactor is replaced: healthy, its contacts where its coil puts them."""
        contactor = ctx.system.circuit.contactors[ContactorId.PLUS]
        contactor.fault = ContactorFault.NONE
        contactor.closed, contactor.switch_at = contactor.coil, None

    return apply, clear


def _request_standby(ctx: Context) -> None:
    ctx.load.demand = 0.0
    ctx.system.ems.script = (EmsCommand(ctx.system.t, EmsRequest.STANDBY),)


def _flag(attribute: Callable[[Context], object], name: str) -> tuple[Action, Action]:
    def apply(ctx: Context) -> None:
        setattr(attribute(ctx), name, True)

    def clear(ctx: Context) -> None:
        setattr(attribute(ctx), name, False)

    return apply, clear


def _cut(role: str) -> tuple[Action, Action]:
    def apply(ctx: Context) -> None:
        ctx.cut.add(role)

    def clear(ctx: Context) -> None:
        ctx.cut.discard(role)

    return apply, clear


SPOOF = "ems_spoof"


def _spoof() -> tuple[Action, Action]:
    """A second EMS node on the vehicle bus asking for the opposite closed state."""

    def apply(ctx: Context) -> None:
        real = ctx.system.ems.command_at(ctx.system.t).request
        other = EmsRequest.CHARGE if real is EmsRequest.DISCHARGE else EmsRequest.DISCHARGE
        rogue = Ems((EmsCommand(ctx.system.t, other),), ctx.timing.periods["ems"])
        ctx.system.vehicle_devices[SPOOF] = rogue

    def clear(ctx: Context) -> None:
        ctx.system.vehicle_devices.pop(SPOOF, None)

    return apply, clear


def _injection(pair: tuple[Action, Action], terms: Terms, doc: str, **kw: object) -> Injection:
    return Injection(pair[0], pair[1], terms, doc, **kw)  # type: ignore[arg-type]


def _with_start(
    triple: tuple[Action, Action, Callable[[Timing], float]], terms: Terms, doc: str
) -> Injection:
    apply, clear, start = triple
    return Injection(apply, clear, terms, doc, temperature=start)


def _overcurrent_injection(check: str, doc: str) -> Injection:
    apply, clear, amps = _overcurrent(check)
    return Injection(apply, clear, _reading("current"), doc, current=amps)


INJECTIONS: dict[str, Injection] = {
    "slave_silent": _injection(
        _slave(ModuleSilent(MODULE)), _silence("cell"), "slave module 3 stops sending"
    ),
    "slave_crc": _injection(
        _slave(CrcCorruption(MODULE)), _silence("cell"), "every frame of module 3 has a wrong CRC"
    ),
    "slave_counter_frozen": _injection(
        _slave(CounterFrozen(MODULE)), _frozen("cell"), "module 3 repeats its alive counters"
    ),
    "cell_open_wire": _injection(
        _slave(OpenWire(MODULE, CELL)), _reading("cell"), "a sense wire of cell 3/5 breaks"
    ),
    "temperature_sensor_open": _injection(
        _slave(SensorOpen(MODULE, SENSOR)), _reading("temperature"), "thermistor 3/1 open"
    ),
    "temperature_sensor_short": _injection(
        _slave(SensorShort(MODULE, SENSOR)), _reading("temperature"), "thermistor 3/1 shorted"
    ),
    "cell_overvoltage": _injection(
        _cell_stuck(True), _reading("cell"), "cell 3/5 reads 50 mV above the fault threshold"
    ),
    "cell_undervoltage": _injection(
        _cell_stuck(False), _reading("cell"), "cell 3/5 reads 50 mV below the fault threshold"
    ),
    "overtemperature_charge": _with_start(
        _temperature("overtemperature_charge"),
        _reading("temperature"),
        "pack 1 K below the charge limit, sensor 3/1 reads 2 K above it",
    ),
    "overtemperature_discharge": _with_start(
        _temperature("overtemperature_discharge"),
        _reading("temperature"),
        "pack 1 K below the discharge limit, sensor 3/1 reads 2 K above it",
    ),
    "undertemperature_charge": _with_start(
        _temperature("undertemperature_charge"),
        _reading("temperature"),
        "pack 1 K above the charge limit, sensor 3/1 reads 2 K below it",
    ),
    "undertemperature_discharge": _with_start(
        _temperature("undertemperature_discharge"),
        _reading("temperature"),
        "pack 1 K above the discharge limit, sensor 3/1 reads 2 K below it",
    ),
    "overcurrent_charge": _overcurrent_injection(
        "overcurrent_charge", "a charger ignoring the CCL pushes 10 A beyond the fault threshold"
    ),
    "overcurrent_discharge": _overcurrent_injection(
        "overcurrent_discharge", "a load ignoring the DCL draws 10 A beyond the fault threshold"
    ),
    "current_sensor_stuck": Injection(
        *_sensor(SensorFault.STUCK_VALUE, (IvtResult.I,)),
        _reading("cell", plausibility=True),
        "the current reading freezes; a 150 A load step 1 s later reveals it",
        settle_s=3.0,  # the limits ramp up to let the step through
        reveal=_step_load,
        reveal_s=1.0,
    ),
    "current_sensor_gain": Injection(
        *_miscalibrate(None, GAIN),
        _reading("cell", plausibility=True),
        "the current reads 1.5 x true; a 150 A load step 1 s later reveals it",
        settle_s=3.0,  # the limits ramp up to let the step through
        reveal=_step_load,
        reveal_s=1.0,
    ),
    "current_sensor_offset": _injection(
        _miscalibrate(lambda t: t.threshold("current_at_open_contactors") + 5.0, 1.0),
        _reading("current", plausibility=True),
        "the current reads 5 A beyond the open-contactor fault threshold",
    ),
    "current_sensor_silent": _injection(
        _sensor(SensorFault.SILENT, tuple(IvtResult)),
        _silence("current"),
        "the current sensor stops sending",
        current=_unknown_current,
    ),
    "temperature_sensors_stuck": Injection(
        *_slave(SensorStuck(MODULE, None)),
        _warming,
        "every sensor of module 3 holds its reading while a 150 A load warms the pack",
        reveal=_step_load,
        fast_thermal=True,
    ),
    "contactor_welded": Injection(
        *_contactor_fault(ContactorFault.WELDED),
        _requested(_contactor),
        "the plus contactor welds; the EMS requests standby 0.5 s later",
        reveal=_request_standby,
        reveal_s=0.5,
    ),
    "contactor_fails_to_close": Injection(
        *_contactor_fault(ContactorFault.FAILS_TO_CLOSE),
        _contactor,
        "the plus contactor's contacts stay open when its coil is energised",
        reveal_on_plus_command=True,
    ),
    "contactor_drops_out": _injection(
        _contactor_fault(ContactorFault.AUX_STUCK_OPEN),
        _contactor,
        "the plus contactor reads open while commanded closed",
    ),
    "contactor_feedback_lost": _injection(
        _flag(lambda ctx: ctx.system.driver, "silent"),
        _feedback_lost,
        "the contactor driver stops sending its feedback",
    ),
    "ems_loss": _injection(
        _flag(lambda ctx: ctx.system.ems, "silent"), _silence("ems"), "the EMS stops sending"
    ),
    "ems_counter_frozen": _injection(
        _flag(lambda ctx: ctx.system.ems, "counter_frozen"),
        _frozen("ems"),
        "the EMS repeats its alive counter",
    ),
    SPOOF: _injection(
        _spoof(), _second_sender, "a second EMS node asks for the opposite closed state"
    ),
    "inverter_keepalive_loss": _injection(
        _silence_device(INVERTER),
        _keepalive,
        "the storage inverter stops sending its keep-alive (0x305)",
    ),
    "charger_loss": _injection(
        _silence_device(CHARGER),
        _charger_silent,
        "the Elcon charger stops sending its status (it still obeys its commands)",
    ),
    "internal_bus_loss": _injection(
        _cut(INTERNAL),
        _silence("cell"),
        "the internal bus is cut: no slave, sensor or driver frame either way",
        current=_unknown_current,
    ),
    "vehicle_bus_loss": _injection(
        _cut(VEHICLE), _silence("ems"), "the vehicle bus is cut: no EMS frame either way"
    ),
}
