"""The diagnosis catalogue as data: one validated entry per warning, alarm and fault.

The shipped `catalogue.toml` is the single list of what the controller can raise, in the
spirit of a diagnosis configuration table: ID, code, severity, reaction, debounce, enable
flag, latching, the element kind it concerns and the cause to check. Deployments adjust
enable flags and delays through `apply_overrides`; the IDs and codes never change.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from functools import cache
from pathlib import Path
from typing import Any

from controller.adapters.base import Level
from controller.config import fields
from controller.errors import ConfigError

SHIPPED = Path(__file__).with_name("catalogue.toml")
ELEMENTS = ("cell", "sensor", "module", "pack", "source", "bus", "device", "contactor")
MAX_DELAY_MS = 3_600_000.0
_KEYS = {
    "code", "severity", "reaction", "set_delay_ms", "clear_delay_ms", "enabled", "latching",
    "element", "cause", "configured_in", "threshold",
}  # fmt: skip
_OVERRIDES = ("enabled", "set_delay_ms", "clear_delay_ms")


class Severity(StrEnum):
    INFO = "info"  # a record of what happened, not a problem
    WARNING = "warning"
    ALARM = "alarm"
    FAULT = "fault"

    @property
    def level(self) -> Level:
        return _LEVELS[self]


_LEVELS = {
    Severity.INFO: Level.OK,
    Severity.WARNING: Level.WARNING,
    Severity.ALARM: Level.ALARM,
    Severity.FAULT: Level.FAULT,
}


class Reaction(StrEnum):
    NONE = "none"
    DERATE = "derate"
    ZERO_LIMITS = "zero_limits"
    STOP_CHARGING = "stop_charging"
    OPEN_CONTACTORS = "open_contactors"


@dataclass(frozen=True)
class Diagnosis:
    id: str
    code: int
    severity: Severity
    reaction: Reaction
    set_delay_ms: float | None  # None: judged per level where ``configured_in`` says
    clear_delay_ms: float | None
    enabled: bool
    latching: bool
    elements: tuple[str, ...]
    cause: str
    configured_in: str | None = None
    threshold: float | None = None


class Catalogue:
    """Every diagnosis, by ID in file order; codes and IDs unique."""

    def __init__(self, entries: tuple[Diagnosis, ...]) -> None:
        self._by_id = {d.id: d for d in entries}

    def __getitem__(self, diagnosis_id: str) -> Diagnosis:
        return self._by_id[diagnosis_id]

    def __contains__(self, diagnosis_id: object) -> bool:
        return diagnosis_id in self._by_id

    def __iter__(self) -> Iterator[Diagnosis]:
        return iter(self._by_id.values())

    def __len__(self) -> int:
        return len(self._by_id)

    def as_table(self) -> dict[str, dict[str, Any]]:
        """What a ``[diagnosis]`` table can set, as it is in effect (the entries configured
        elsewhere, ``configured_in``, are set in their own sections)."""
        return {
            d.id: {key: getattr(d, key) for key in _OVERRIDES}
            for d in self
            if d.configured_in is None
        }


def parse_catalogue(data: Mapping[str, Any], path: str = "") -> Catalogue:
    """Validate a catalogue table; errors name the dotted key."""
    entries = tuple(_entry(data, key, path) for key in data)
    codes: dict[int, str] = {}
    for d in entries:
        if d.code in codes:
            raise ConfigError(
                fields.join(fields.join(path, d.id), "code"),
                f"{d.code} is already the code of {codes[d.code]}",
            )
        codes[d.code] = d.id
    return Catalogue(entries)


def load_catalogue(file: Path = SHIPPED) -> Catalogue:
    """A catalogue file; a TOML duplicate ID is refused by the parser with its line."""
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(file.name, str(exc)) from exc
    return parse_catalogue(data)


@cache
def shipped() -> Catalogue:
    """The catalogue shipped with the controller, loaded once."""
    return load_catalogue()


def apply_overrides(
    catalogue: Catalogue, overrides: Mapping[str, Any], path: str = "diagnosis"
) -> Catalogue:
    """``catalogue`` with ``{id: {enabled, set_delay_ms, clear_delay_ms}}`` applied.

    A diagnosis judged per level elsewhere (``configured_in``, the protection checks and the
    contactor faults) is enabled and debounced there, so overriding it here is refused rather
    than silently ignored.
    """
    changed = {d.id: d for d in catalogue}
    for diagnosis_id in overrides:
        where = fields.join(path, diagnosis_id)
        if diagnosis_id not in changed:
            raise ConfigError(where, "unknown diagnosis ID")
        sub = fields.table(overrides, diagnosis_id, path)
        fields.unknown_keys(sub, set(_OVERRIDES), where)
        d = changed[diagnosis_id]
        if d.configured_in is not None:
            _no_own_settings(sub, where, d.configured_in, _OVERRIDES)
        changed[diagnosis_id] = replace(
            d,
            enabled=fields.boolean(sub, "enabled", where, d.enabled),
            set_delay_ms=_delay(sub, "set_delay_ms", where, d.set_delay_ms),
            clear_delay_ms=_delay(sub, "clear_delay_ms", where, d.clear_delay_ms),
        )
    return Catalogue(tuple(changed.values()))


def _delay(sub: Mapping[str, Any], key: str, where: str, default: float | None) -> float | None:
    return fields.number(sub, key, where, default, minimum=0.0, maximum=MAX_DELAY_MS)


def _no_own_settings(
    sub: Mapping[str, Any],
    where: str,
    configured_in: str,
    keys: tuple[str, ...] = ("set_delay_ms", "clear_delay_ms"),
) -> None:
    for key in keys:
        if key in sub:
            raise ConfigError(fields.join(where, key), f"this is set in {configured_in}")


def _entry(data: Mapping[str, Any], diagnosis_id: str, path: str) -> Diagnosis:
    where = fields.join(path, diagnosis_id)
    sub = fields.table(data, diagnosis_id, path)
    fields.unknown_keys(sub, _KEYS, where)
    configured_in = sub.get("configured_in")
    if configured_in is not None:
        configured_in = fields.string(sub, "configured_in", where)
        _no_own_settings(sub, where, configured_in)
        set_ms = clear_ms = None
    else:
        set_ms = _delay(sub, "set_delay_ms", where, None)
        clear_ms = _delay(sub, "clear_delay_ms", where, None)
        if set_ms is None or clear_ms is None:
            raise ConfigError(where, "needs set_delay_ms and clear_delay_ms, or configured_in")
    element = sub.get("element")
    kinds = tuple(element) if isinstance(element, list) else (element,)
    if not kinds or not all(isinstance(k, str) and k in ELEMENTS for k in kinds):
        raise ConfigError(
            fields.join(where, "element"), f"{element!r} is not one of {', '.join(ELEMENTS)}"
        )
    cause = fields.string(sub, "cause", where)
    if not cause.strip():
        raise ConfigError(fields.join(where, "cause"), "a cause is required")
    threshold = sub.get("threshold")
    return Diagnosis(
        id=diagnosis_id,
        code=fields.integer(sub, "code", where, minimum=1, maximum=0xFFFF),
        severity=Severity(fields.string(sub, "severity", where, choices=tuple(Severity))),
        reaction=Reaction(fields.string(sub, "reaction", where, choices=tuple(Reaction))),
        set_delay_ms=set_ms,
        clear_delay_ms=clear_ms,
        enabled=fields.boolean(sub, "enabled", where, True),
        latching=fields.boolean(sub, "latching", where),
        elements=kinds,
        cause=cause,
        configured_in=configured_in,
        threshold=None if threshold is None else fields.number(sub, "threshold", where),
    )
