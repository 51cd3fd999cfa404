"""Safety validation: configurations that load but would leave the pack unprotected.

The declared sections judge each value on its own; this pass judges what they mean together
(a charge voltage limit above the over-voltage alarm, an end of charge inside the
over-voltage warning, a staleness timeout longer than the faults it feeds may wait) and
refuses what is unsafe with the dotted key and the reason.
A key listed in the top-level ``unsafe_override`` is accepted instead: the refusal is kept
(`Refusal`) so that every start warns about it and logs it as an ``unsafe_override``
diagnosis. An override that matches no refusal is an error, so none outlives its cause.

Two passes: `check_config` right after the declarative parse, and
`controller.config.safety_dbc.check_databases` once the assembly has loaded the DBCs (the
pack against the slave DBC, the end-to-end checks against its messages). Each pass judges
the overrides of its own keys (`DATABASE_KEYS` belong to the second).
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from controller.adapters.base import Level
from controller.diagnosis import Event, shipped
from controller.errors import ConfigError
from controller.protection.checks import SPECS, Check, Direction

if TYPE_CHECKING:
    from controller.config.loader import ControllerConfig

BOUNDS_FILE = Path(__file__).resolve().parents[1] / "presets" / "chemistry_bounds.toml"
OVERRIDE_KEY = "unsafe_override"
UNSAFE_OVERRIDE = "unsafe_override"  # the catalogue entry logged for each accepted override

# Slowest control cycle: the over-current faults of the presets act after 100 ms, the
# fastest slave frames come every 100 ms, and every reaction waits up to one cycle more.
MAX_CYCLE_MS = 100.0
# Largest current a contactor can plausibly interrupt: the one-off emergency break rating of
# the largest common HV DC main contactors is about 2,000 to 2,500 A at 320 to 450 V. Above
# it the arc may weld the contacts, so the controller must wait for the fuse instead.
MAX_BREAK_CURRENT_A = 2500.0
# A staleness timeout never needs to be below ten control cycles (at 10 ms: the period of
# the fastest slave frames), whatever the fault delays of the checks it feeds.
MIN_STALE_CYCLES = 10
# Voltages are written to the mV or finer; a release point computed in floats (4.17 - 0.02)
# may fall this far below the value that equals it.
ROUNDING_V = 1e-9

# Keys the database pass judges (`controller.config.safety_dbc`); their overrides wait for it.
DATABASE_KEYS = frozenset(
    {
        "pack.fd",
        "pack.modules",
        "pack.cells_per_module",
        "pack.sensors_per_module",
        "ingest.slave_mapping",
        "ingest.sensor_mapping",
        "dbc.master",
    }
)


@dataclass(frozen=True)
class Refusal:
    """One unsafe setting: its dotted key and why it is unsafe."""

    key: str
    reason: str

    def __str__(self) -> str:
        return f"{self.key}: {self.reason}"


def accept(
    refusals: Iterable[Refusal], overrides: Iterable[str], judges: Callable[[str], bool]
) -> tuple[Refusal, ...]:
    """The refusals ``overrides`` accept; the first other one is raised as a `ConfigError`.

    ``judges(key)`` tells the keys this pass judges: an override of one of them that accepts
    nothing is an error naming its place in ``unsafe_override``.
    """
    found = list(refusals)
    overrides = tuple(overrides)
    for refusal in found:
        if refusal.key not in overrides:
            hint = f' (to run anyway: unsafe_override = ["{refusal.key}"])'
            raise ConfigError(refusal.key, refusal.reason + hint)
    refused = {r.key for r in found}
    for i, key in enumerate(overrides):
        if judges(key) and key not in refused:
            raise ConfigError(
                f"{OVERRIDE_KEY}[{i}]",
                f"{key!r} overrides nothing: the configuration is safe there, remove it",
            )
    return tuple(found)


def check_config(config: ControllerConfig) -> tuple[Refusal, ...]:
    """Judge a parsed configuration; the refusals its ``unsafe_override`` accepts."""
    return accept(refusals(config), config.unsafe_override, lambda k: k not in DATABASE_KEYS)


def refusals(config: ControllerConfig) -> list[Refusal]:
    """Every unsafe setting of a parsed configuration (the first one is raised)."""
    return [
        *_cycle(config),
        *_buses(config),
        *_protection(config),
        *_chemistry_bounds(config),
        *_voltage_limits(config),
        *_end_of_charge(config),
        *_staleness(config),
        *_break_current(config),
        *_diagnosis(config),
    ]


def warnings(accepted: Iterable[Refusal]) -> list[str]:
    """The warning printed at every start for each accepted refusal."""
    return [f"{OVERRIDE_KEY}: {r} (accepted by unsafe_override)" for r in accepted]


def events(accepted: Iterable[Refusal], now: float) -> tuple[Event, ...]:
    """The ``unsafe_override`` diagnoses logged at start, one per accepted refusal."""
    level = shipped()[UNSAFE_OVERRIDE].severity.level
    return tuple(Event(now, UNSAFE_OVERRIDE, level, "set", detail=str(r)) for r in accepted)


# -- the rules --------------------------------------------------------------------------


def _cycle(config: ControllerConfig) -> Iterator[Refusal]:
    if config.cycle_ms > MAX_CYCLE_MS:
        yield Refusal(
            "cycle_ms",
            f"{config.cycle_ms:g} ms is above {MAX_CYCLE_MS:g} ms: every reaction would wait "
            "up to a cycle longer than the fastest fault delay",
        )


def _buses(config: ControllerConfig) -> Iterator[Refusal]:
    seen: dict[tuple[str, str], str] = {}
    for name, bus in config.buses.items():
        where = (bus.interface, bus.channel)
        if where in seen:
            yield Refusal(
                f"buses.{name}.channel",
                f"{bus.interface} channel {bus.channel!r} is also buses.{seen[where]}: "
                "two buses on one channel mix their traffic",
            )
        seen.setdefault(where, name)
    internal = config.buses.get("internal")
    if config.pack.fd and internal is not None and internal.fd is False:
        yield Refusal(
            "buses.internal.fd",
            "false, but pack.fd says the slaves send CAN FD frames: they would never arrive",
        )


def _protection(config: ControllerConfig) -> Iterator[Refusal]:
    for check, cfg in config.protection.checks.items():
        if not cfg.enabled:
            yield Refusal(
                f"protection.{check.value}.enabled", "false: this fault is never detected"
            )
        elif Level.FAULT not in cfg.levels:
            yield Refusal(
                f"protection.{check.value}.fault",
                "missing: without a fault level this check never opens the contactors",
            )


def _chemistry_bounds(config: ControllerConfig) -> Iterator[Refusal]:
    chemistry = config.pack.chemistry
    for check, bound in chemistry_bounds(chemistry).items():
        if not config.protection.checks[check].enabled:
            continue  # refused as disabled; its thresholds judge nothing
        high = SPECS[check].direction is Direction.HIGH
        for level, cfg in config.protection.checks[check].levels.items():
            threshold = cfg.threshold
            if threshold is None or (threshold <= bound if high else threshold >= bound):
                continue
            yield Refusal(
                f"protection.{check.value}.{level.name.lower()}.threshold",
                f"{threshold:g} is {'above' if high else 'below'} the absolute "
                f"{'maximum' if high else 'minimum'} {bound:g} of {chemistry} cells",
            )


def _voltage_limits(config: ControllerConfig) -> Iterator[Refusal]:
    limits = config.limits
    for key, check, high in (
        ("charge_cell_voltage_v", Check.CELL_OVERVOLTAGE, True),
        ("discharge_cell_voltage_v", Check.CELL_UNDERVOLTAGE, False),
    ):
        value = getattr(limits, key)
        limit, what = _voltage_reference(config, check)
        if value >= limit if high else value <= limit:
            yield Refusal(
                f"limits.{key}",
                f"{value:g} V must be {'below' if high else 'above'} {what} {limit:g} V: "
                f"the {'charger' if high else 'load'} would be allowed into the alarm",
            )


def _end_of_charge(config: ControllerConfig) -> Iterator[Refusal]:
    """A full charge ends where the over-voltage warning has released, not inside it.

    Both ends are judged: the CVL per cell, where a charger holding the pack at the CVL stops,
    and the voltage where the charge cell-voltage table reaches zero, where a charger that
    follows the CCL leaves the highest cell. Either one above the warning's release point
    (threshold minus hysteresis) raises a true warning at the top of every charge.
    """
    cfg = config.protection.checks[Check.CELL_OVERVOLTAGE]
    warning = cfg.levels.get(Level.WARNING)
    if not cfg.enabled or warning is None or warning.threshold is None:
        return
    release = warning.threshold - warning.hysteresis
    rule = (
        f"protection.cell_overvoltage.warning.threshold {warning.threshold:g} V minus its "
        f"hysteresis {warning.hysteresis:g} V ({release:g} V)"
    )
    limits = config.limits
    alarm, _ = _voltage_reference(config, Check.CELL_OVERVOLTAGE)
    value = limits.charge_cell_voltage_v
    if release + ROUNDING_V < value < alarm:  # at or above the alarm: refused against it
        yield Refusal(
            "limits.charge_cell_voltage_v",
            f"{value:g} V must be at most {rule}: a charger holding the CVL would end every "
            "full charge in the over-voltage warning",
        )
    end = limits.charge_end_cell_voltage
    if end > release + ROUNDING_V:
        stops = "never reaches zero" if math.isinf(end) else f"reaches zero at {end:g} V"
        yield Refusal(
            "limits.charge.cell_voltage",
            f"{stops} but must by {rule}: a charger following the CCL would take the highest "
            "cell into the over-voltage warning at the top of every charge",
        )


def _voltage_reference(config: ControllerConfig, check: Check) -> tuple[float, str]:
    """The alarm threshold of a cell-voltage check, else its fault, else the chemistry's."""
    levels = config.protection.checks[check].levels
    for level in (Level.ALARM, Level.FAULT):
        threshold = levels[level].threshold if level in levels else None
        if threshold is not None:
            return threshold, f"protection.{check.value}.{level.name.lower()}.threshold"
    bound = chemistry_bounds(config.pack.chemistry)[check]
    return bound, f"the absolute bound of {config.pack.chemistry} cells"


def stale_bounds_ms(config: ControllerConfig) -> dict[str, float]:
    """The longest staleness timeout of each measured array, in ms.

    A value that stops arriving stays valid until its timeout, and a violation it hides waits
    that long: so no longer than the shortest fault set delay among the checks judging it
    (for the EMS request: the EMS timeout's fault threshold plus its delay; for the contactor
    feedback and the link voltage: the contactor timings), never below ten control cycles.
    """
    checks = config.protection.checks

    def fault_delay(*judged_by: Check) -> float:
        delays = [
            checks[c].levels[Level.FAULT].set_delay_ms
            for c in judged_by
            if Level.FAULT in checks[c].levels
        ]
        return min(delays, default=0.0)

    ems = checks[Check.EMS_TIMEOUT].levels.get(Level.FAULT)
    ems_ms = 0.0 if ems is None or ems.threshold is None else ems.threshold * 1e3 + ems.set_delay_ms
    temperature = (
        Check.OVERTEMPERATURE_CHARGE,
        Check.OVERTEMPERATURE_DISCHARGE,
        Check.UNDERTEMPERATURE_CHARGE,
        Check.UNDERTEMPERATURE_DISCHARGE,
    )
    module = fault_delay(Check.INVALID_MEASUREMENT)
    judged = {
        "cell_voltage": fault_delay(Check.CELL_OVERVOLTAGE, Check.CELL_UNDERVOLTAGE),
        "cell_temperature": fault_delay(*temperature),
        "pack_current": fault_delay(Check.OVERCURRENT_CHARGE, Check.OVERCURRENT_DISCHARGE),
        "pack_voltage": fault_delay(Check.PACK_VOLTAGE_PLAUSIBILITY),
        "link_voltage": config.contactors.precharge_timeout_s * 1e3,
        "charge_counter": fault_delay(Check.CURRENT_COUNTER_DISAGREEMENT),
        "contactor_feedback": config.contactors.feedback_timeout_s * 1e3,
        "ems_request": ems_ms,
        "ems_reset": ems_ms,
    }
    floor = MIN_STALE_CYCLES * config.cycle_ms
    return {name: max(judged.get(name, module), floor) for name in config.ingest.timeouts}


def _staleness(config: ControllerConfig) -> Iterator[Refusal]:
    bounds = stale_bounds_ms(config)
    for name, timeout_s in config.ingest.timeouts.items():
        timeout_ms = timeout_s * 1e3
        if timeout_ms > bounds[name] + 1e-9:
            yield Refusal(
                f"ingest.timeouts_ms.{name}",
                f"{timeout_ms:g} ms is above {bounds[name]:g} ms: a value that stopped "
                "arriving would be trusted longer than the faults judging it may wait",
            )


def _break_current(config: ControllerConfig) -> Iterator[Refusal]:
    value = config.contactors.break_current_a
    if value > MAX_BREAK_CURRENT_A:
        yield Refusal(
            "contactors.break_current_a",
            f"{value:g} A is above {MAX_BREAK_CURRENT_A:g} A, more than a contactor can "
            "plausibly interrupt: opening under such a current may weld it",
        )


def _diagnosis(config: ControllerConfig) -> Iterator[Refusal]:
    for diagnosis in config.diagnosis:
        if diagnosis.severity.level is Level.FAULT and not diagnosis.enabled:
            yield Refusal(
                f"diagnosis.{diagnosis.id}.enabled",
                "false: this fault would no longer put the pack in the safe state",
            )


# -- the chemistry bounds ---------------------------------------------------------------


@cache
def _bounds_table() -> Mapping[str, Any]:
    with BOUNDS_FILE.open("rb") as f:
        return tomllib.load(f)


def chemistry_bounds(chemistry: str) -> dict[Check, float]:
    """Per cell-voltage and temperature check, the absolute bound of the chemistry."""
    table = _bounds_table()
    where = BOUNDS_FILE.name
    if chemistry not in table:
        raise ConfigError("pack.chemistry", f"{chemistry!r} has no absolute bounds in {where}")
    out = {}
    for name, value in table[chemistry].items():
        check = next((c for c in Check if c.value == name), None)
        if check is None or SPECS[check].direction is Direction.FLAG:
            raise ConfigError(f"{where}: {chemistry}.{name}", "not a threshold check")
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{where}: {chemistry}.{name}", f"expected a number, got {value!r}")
        out[check] = float(value)
    return out
