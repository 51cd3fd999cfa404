"""Which DBC signals feed which measured array element: the mapping configuration.

A mapping is TOML-shaped data, so the same decoder serves our slave protocol and a
third-party stream (e.g. the foxBMS AFE frames) by configuration alone:

```toml
[[rule]]                       # one rule per target quantity
target = "cell_voltage"        # measured array fed by the rule
message = '^CellVoltages_M(?P<module>\\d+)$'    # optional regex on the message name
signal = '^M\\d+_Cell(?P<index>\\d+)_Voltage$'   # regex on the signal name
per_module = "cells_per_module"  # stride of the `module` group: integer or parameter name
offset = 0                     # added to the element index
unit_scale = 1.0               # physical DBC value * unit_scale = stored value
validity = "{signal}_Invalid"  # flag signal in the same frame (optional)
invalid_value = 1              # flag value that marks the element invalid
index_signal = "CellIndex"     # signal whose value adds to the index (optional)
index_stride = 1               # multiplier of that value: integer or parameter name

[[source]]                     # per-source reception counters (first match wins)
message = '^\\w+_M(?P<module>\\d+)$'
name = "M{module}"

[[e2e]]                        # end-to-end checks of matching messages
message = '^CellVoltages_M\\d+$'
crc = "{message}_CRC"          # template of the CRC signal name (optional)
counter = "{message}_Counter"  # template of the alive counter signal name (optional)
max_jump = 1                   # largest accepted counter step (lost frames)
data_id = 0x1234               # Profile 11 data ID of the CRC (default: the frame ID)
```

Element index = ``offset + module * per_module + index + index_stride * value``, where
``value`` is the index signal of the frame (0 without one); the groups ``module`` and
``index`` may come from the message or the signal regex and default to 0. Templates see
the named groups, ``{signal}``, ``{message}`` and ``{mux}`` (the frame's multiplexer value,
empty for a message without one). ``docs/configuration.md`` describes every key.
"""

from __future__ import annotations

import re
import string
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from controller.config import fields
from controller.errors import ConfigError

DEFAULT_SOURCE = "other"


@dataclass(frozen=True)
class Rule:
    target: str
    signal: re.Pattern[str]
    message: re.Pattern[str] | None
    per_module: int
    offset: int
    unit_scale: float
    validity: str | None
    invalid_value: float
    key: str  # where the rule sits in the configuration, for error messages
    index_signal: str | None = None  # template of a signal whose value adds to the index
    index_stride: int = 1


@dataclass(frozen=True)
class SourceRule:
    message: re.Pattern[str]
    name: str


@dataclass(frozen=True)
class E2ERule:
    message: re.Pattern[str]
    crc: str | None
    counter: str | None
    max_jump: int
    key: str
    data_id: int | None = None  # Profile 11 data ID; None: the low 16 bits of the frame ID


@dataclass(frozen=True)
class MappingConfig:
    rules: tuple[Rule, ...]
    sources: tuple[SourceRule, ...] = ()
    e2e: tuple[E2ERule, ...] = ()
    default_source: str = DEFAULT_SOURCE


def _regex(
    data: Mapping[str, Any], key: str, path: str, default: str | None = None, required: bool = False
) -> Any:
    text = fields.string(data, key, path) if required else fields.string(data, key, path, default)
    if text is None:
        return None
    try:
        return re.compile(text)
    except re.error as exc:
        raise ConfigError(fields.join(path, key), f"invalid regular expression: {exc}") from None


def _template(data: Mapping[str, Any], key: str, path: str, names: set[str]) -> str | None:
    text = fields.string(data, key, path, default=None)
    if text is None:
        return None
    try:
        used = {name for _, name, _, _ in string.Formatter().parse(text) if name}
    except ValueError as exc:
        raise ConfigError(fields.join(path, key), f"invalid template: {exc}") from None
    unknown = used - names
    if unknown:
        raise ConfigError(
            fields.join(path, key), f"unknown placeholder {{{sorted(unknown)[0]}}} in {text!r}"
        )
    return text


def _list(data: Mapping[str, Any], key: str, path: str) -> list[Mapping[str, Any]]:
    value = data.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
        raise ConfigError(fields.join(path, key), "expected an array of tables ([[...]])")
    return value


def _stride(
    data: Mapping[str, Any], key: str, path: str, params: Mapping[str, int], minimum: int
) -> int:
    """An integer, or the name of a topology parameter such as ``cells_per_module``."""
    value = data.get(key, 1)
    if isinstance(value, str):
        if value not in params:
            known = ", ".join(sorted(params)) or "none given"
            raise ConfigError(
                fields.join(path, key), f"unknown parameter {value!r} (known: {known})"
            )
        return fields.integer({key: params[value]}, key, path, minimum=minimum)
    return fields.integer(data, key, path, default=1, minimum=minimum)


def _rule(data: Mapping[str, Any], path: str, params: Mapping[str, int]) -> Rule:
    fields.unknown_keys(
        data,
        {"target", "message", "signal", "per_module", "offset", "unit_scale", "validity"}
        | {"invalid_value", "index_signal", "index_stride"},
        path,
    )
    signal = _regex(data, "signal", path, required=True)
    message = _regex(data, "message", path)
    groups = set(signal.groupindex) | (set(message.groupindex) if message else set())
    names = groups | {"signal", "message", "mux"}
    return Rule(
        target=fields.string(data, "target", path),
        signal=signal,
        message=message,
        per_module=_stride(data, "per_module", path, params, minimum=0),
        offset=fields.integer(data, "offset", path, default=0),
        unit_scale=fields.number(data, "unit_scale", path, default=1.0),
        validity=_template(data, "validity", path, names),
        invalid_value=fields.number(data, "invalid_value", path, default=1.0),
        key=path,
        index_signal=_template(data, "index_signal", path, names),
        index_stride=_stride(data, "index_stride", path, params, minimum=1),
    )


def _source(data: Mapping[str, Any], path: str) -> SourceRule:
    fields.unknown_keys(data, {"message", "name"}, path)
    message = _regex(data, "message", path, required=True)
    name = _template(data, "name", path, set(message.groupindex) | {"message"})
    if name is None:
        raise ConfigError(fields.join(path, "name"), "missing value")
    return SourceRule(message, name)


def _e2e(data: Mapping[str, Any], path: str) -> E2ERule:
    fields.unknown_keys(data, {"message", "crc", "counter", "max_jump", "data_id"}, path)
    message = _regex(data, "message", path, default=".*")
    names = set(message.groupindex) | {"message"}
    crc = _template(data, "crc", path, names)
    counter = _template(data, "counter", path, names)
    if crc is None and counter is None:
        raise ConfigError(path, "needs a crc or a counter signal template")
    return E2ERule(
        message=message,
        crc=crc,
        counter=counter,
        max_jump=fields.integer(data, "max_jump", path, default=3, minimum=1),
        key=path,
        data_id=fields.integer(data, "data_id", path, default=None, minimum=0, maximum=0xFFFF),
    )


def parse_mapping(
    data: Mapping[str, Any], params: Mapping[str, int] | None = None, path: str = "mapping"
) -> MappingConfig:
    """Validate a mapping table; ``params`` resolves named strides such as ``cells_per_module``."""
    params = dict(params or {})
    fields.unknown_keys(data, {"rule", "source", "e2e", "default_source"}, path)
    rules = tuple(
        _rule(r, f"{fields.join(path, 'rule')}[{i}]", params)
        for i, r in enumerate(_list(data, "rule", path))
    )
    if not rules:
        raise ConfigError(fields.join(path, "rule"), "at least one rule is needed")
    return MappingConfig(
        rules=rules,
        sources=tuple(
            _source(s, f"{fields.join(path, 'source')}[{i}]")
            for i, s in enumerate(_list(data, "source", path))
        ),
        e2e=tuple(
            _e2e(e, f"{fields.join(path, 'e2e')}[{i}]")
            for i, e in enumerate(_list(data, "e2e", path))
        ),
        default_source=fields.string(data, "default_source", path, default=DEFAULT_SOURCE),
    )


def load_mapping(
    name_or_path: str | Path, params: Mapping[str, int] | None = None
) -> MappingConfig:
    """A shipped mapping by name (``"canbms_slaves"``, ``"foxbms_afe"``) or a TOML file."""
    path = Path(name_or_path)
    if path.suffix != ".toml":
        shipped = resources.files("controller.mappings").joinpath(f"{name_or_path}.toml")
        if not shipped.is_file():
            raise ConfigError("mapping", f"no shipped mapping named {name_or_path!r}")
        text = shipped.read_text(encoding="utf-8")
    else:
        text = path.read_text(encoding="utf-8")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("mapping", f"{name_or_path}: {exc}") from None
    return parse_mapping(data, params)
