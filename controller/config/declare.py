"""Declarative configuration: a section is a frozen dataclass, loaded by one generic reader.

A section declares each key once, as a field whose metadata carries its default, bounds,
choices, unit and a one-line doc::

    @dataclass(frozen=True)
    class BalancingConfig:
        period_ms: float = setting(500.0, ge=50, le=10_000, unit="ms", doc="command period")

        @property
        def period_s(self) -> float:          # unit conversions are properties
            return self.period_ms / 1000.0

        def validate(self, path: str) -> None:  # optional cross-field rules
            ...                                 # raise ConfigError(f"{path}.key", "problem")

API:

- ``setting(default, *, ge, gt, le, lt, choices, unit, doc, min_items, unique, parse,
  from_key, extra)`` declares a field. ``parse(table_value, dotted_key, context)`` replaces the
  generic reading for a value with its own format (``context.base_dir`` is the configuration
  file's folder); ``from_key`` fills a field of a named-table entry with its table name;
  ``extra`` on a ``Mapping[str, Any]`` field collects the keys nobody declared (passed
  through, e.g. python-can bus options) instead of rejecting them. A ``parse`` field without
  a default is parsed from an empty table when absent; ``schema`` gives its JSON Schema.
- ``load(cls, table, path, context)`` validates a TOML table into ``cls``. Supported field
  types: bool, int, float, str, ``Literal[...]``, enums (by lowercase member name), ``Path``
  (relative to ``context.base_dir``), ``X | None`` (absent: None), ``tuple[T, ...]``, nested
  sections, ``dict[str, Section]`` (named tables). Errors are `ConfigError` naming the dotted
  key: unknown keys (listing the known ones), missing values, types, bounds and choices.
- ``dump(section)`` is the effective table of a loaded section, TOML-shaped.
- ``setting_of(field)`` / ``fields_of(cls)`` read the declarations (schema and docs use them).
- ``read_scalar(type, value, key)`` / ``check_bounds(value, key, Setting(...))`` judge one
  value; `controller.config.fields` builds its hand-reading helpers on them.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass
from pathlib import Path
from typing import Any, Literal

from controller.errors import ConfigError

_META = "canbms"


@dataclass(frozen=True)
class Context:
    """What a value may need beyond its table: the configuration file's folder."""

    base_dir: Path | None = None

    def resolve(self, value: str) -> Path:
        return Path(value) if self.base_dir is None else self.base_dir / value


@dataclass(frozen=True)
class Setting:
    """The declaration of one key, kept in the field's metadata."""

    doc: str = ""
    unit: str = ""
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    choices: tuple[Any, ...] | None = None
    min_items: int | None = None
    unique: bool = False
    parse: Callable[[Any, str, Context], Any] | None = None
    from_key: bool = False
    extra: bool = False
    schema: Callable[[], dict[str, Any]] | None = None


def setting(
    default: Any = MISSING,
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    choices: tuple[Any, ...] | None = None,
    unit: str = "",
    doc: str = "",
    min_items: int | None = None,
    unique: bool = False,
    parse: Callable[[Any, str, Context], Any] | None = None,
    from_key: bool = False,
    extra: bool = False,
    schema: Callable[[], dict[str, Any]] | None = None,
) -> Any:
    """A dataclass field that is a configuration key; no default means required."""
    meta = Setting(
        doc, unit, ge, gt, le, lt, choices, min_items, unique, parse, from_key, extra, schema
    )
    kwargs: dict[str, Any] = {"metadata": {_META: meta}}
    if isinstance(default, dict | list):
        kwargs["default_factory"] = lambda: type(default)(default)
    elif default is not MISSING:
        kwargs["default"] = default
    return dataclasses.field(**kwargs)


def setting_of(f: dataclasses.Field) -> Setting:
    return f.metadata.get(_META, Setting())


def fields_of(cls: type) -> list[tuple[dataclasses.Field, Any]]:
    """The declared fields of a section with their resolved type hints; fields without a
    `setting` are no configuration keys (they keep their defaults)."""
    hints = typing.get_type_hints(cls)
    return [(f, hints[f.name]) for f in dataclasses.fields(cls) if _META in f.metadata]


def has_default(f: dataclasses.Field) -> bool:
    return f.default is not MISSING or f.default_factory is not MISSING


def default_of(f: dataclasses.Field) -> Any:
    if f.default is not MISSING:
        return f.default
    return f.default_factory()  # type: ignore[misc]


def optional_inner(tp: Any) -> Any | None:
    """``X`` of ``X | None``, else None."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(tp)) == 2:
            return args[0]
    return None


def join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


# -- loading ------------------------------------------------------------------------------


def load(cls: type, data: Any, path: str = "", context: Context | None = None) -> Any:
    """Validate the TOML table ``data`` into the section ``cls``."""
    context = context or Context()
    if not isinstance(data, Mapping):
        raise ConfigError(path, f"expected a table, got {type(data).__name__}")
    declared = fields_of(cls)
    keyed = {f.name for f, _ in declared if not setting_of(f).from_key}
    extra_field = next((f for f, _ in declared if setting_of(f).extra), None)
    keyed.discard(extra_field.name if extra_field else "")
    unknown = sorted(set(data) - keyed)
    if unknown and extra_field is None:
        known = ", ".join(sorted(keyed))
        raise ConfigError(join(path, unknown[0]), f"unknown key (known: {known})")
    values: dict[str, Any] = {}
    for f, tp in declared:
        meta = setting_of(f)
        where = join(path, f.name)
        if meta.from_key:
            values[f.name] = path.rsplit(".", 1)[-1]
        elif meta.extra:
            values[f.name] = {k: data[k] for k in unknown}
        elif f.name in data:
            raw = data[f.name]
            values[f.name] = (
                meta.parse(raw, where, context)
                if meta.parse
                else _value(tp, raw, where, meta, context)
            )
        elif has_default(f):
            values[f.name] = default_of(f)
        elif meta.parse:
            values[f.name] = meta.parse({}, where, context)
        else:
            is_table = _is_section(tp) or optional_inner(tp) is not None
            raise ConfigError(where, "missing table" if is_table else "missing value")
    section = cls(**values)
    validate = getattr(section, "validate", None)
    if validate is not None:
        validate(path)
    return section


def _is_section(tp: Any) -> bool:
    return dataclasses.is_dataclass(tp) and isinstance(tp, type)


def _value(tp: Any, raw: Any, where: str, meta: Setting, context: Context) -> Any:
    inner = optional_inner(tp)
    if inner is not None:
        return _value(inner, raw, where, meta, context)
    origin = typing.get_origin(tp)
    if _is_section(tp):
        return load(tp, raw, where, context)
    if origin in (dict, Mapping, typing.get_origin(Mapping[str, Any])):
        value_type = typing.get_args(tp)[1]
        if not isinstance(raw, Mapping):
            raise ConfigError(where, f"expected a table, got {type(raw).__name__}")
        if value_type is Any:
            return dict(raw)
        return {
            k: _value(value_type, v, join(where, k), Setting(), context) for k, v in raw.items()
        }
    if origin in (tuple, list):
        return _items(tp, raw, where, meta, context)
    if origin is Literal:
        return _choice(raw, where, typing.get_args(tp))
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        names = tuple(m.name.lower() for m in (meta.choices or tuple(tp)))
        return tp[_choice(raw, where, names).upper()]
    if tp is Path:
        return context.resolve(read_scalar(str, raw, where))
    value = read_scalar(tp, raw, where)
    check_bounds(value, where, meta)
    if meta.choices is not None and value not in meta.choices:
        shown = ", ".join(f"0x{c:X}" if isinstance(c, int) else str(c) for c in meta.choices)
        raise ConfigError(where, f"{raw!r} is not one of {shown}")
    return value


def _items(tp: Any, raw: Any, where: str, meta: Setting, context: Context) -> tuple:
    if not isinstance(raw, list):
        raise ConfigError(where, f"expected an array, got {raw!r}")
    if meta.min_items is not None and len(raw) < meta.min_items:
        raise ConfigError(where, f"expected at least {meta.min_items} item(s)")
    item_type = typing.get_args(tp)[0]
    item_meta = dataclasses.replace(meta, min_items=None, unique=False)
    items = tuple(
        _value(item_type, v, f"{where}[{i}]", item_meta, context) for i, v in enumerate(raw)
    )
    if meta.unique and len(set(items)) != len(items):
        raise ConfigError(where, "an item is listed twice")
    return items


def _choice(raw: Any, where: str, choices: tuple[Any, ...]) -> Any:
    if raw not in choices or isinstance(raw, bool):
        raise ConfigError(where, f"{raw!r} is not one of {', '.join(map(str, choices))}")
    return raw


def read_scalar(tp: Any, raw: Any, where: str) -> Any:
    if tp is bool:
        if not isinstance(raw, bool):
            raise ConfigError(where, f"expected true or false, got {raw!r}")
        return raw
    if tp is int:
        if isinstance(raw, bool) or not isinstance(raw, int):
            raise ConfigError(where, f"expected an integer, got {raw!r}")
        return raw
    if tp is float:
        if isinstance(raw, bool) or not isinstance(raw, int | float):
            raise ConfigError(where, f"expected a number, got {raw!r}")
        if not math.isfinite(raw):
            raise ConfigError(where, f"expected a finite number, got {raw!r}")
        return float(raw)
    if tp is str:
        if not isinstance(raw, str):
            raise ConfigError(where, f"expected a string, got {raw!r}")
        return raw
    if tp is Any:
        return raw
    raise TypeError(f"{where}: no reader for {tp!r}")


def check_bounds(value: Any, where: str, meta: Setting) -> None:
    if meta.ge is not None and value < meta.ge:
        raise ConfigError(where, f"{value} is below the minimum {meta.ge}")
    if meta.gt is not None and value <= meta.gt:
        raise ConfigError(where, f"{value} must be above {meta.gt}")
    if meta.le is not None and value > meta.le:
        raise ConfigError(where, f"{value} is above the maximum {meta.le}")
    if meta.lt is not None and value >= meta.lt:
        raise ConfigError(where, f"{value} must be below {meta.lt}")


# -- dumping ------------------------------------------------------------------------------


def dump(value: Any) -> Any:
    """The effective TOML-shaped value of a loaded section (None values are left out)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out: dict[str, Any] = {}
        every = dataclasses.fields(value)
        declared = [f for f in every if _META in f.metadata] or every  # plain: all fields
        for f in declared:
            meta = setting_of(f)
            item = getattr(value, f.name)
            if meta.from_key or item is None:
                continue
            if meta.extra:
                out.update(dump(item))
            else:
                out[f.name] = dump(item)
        return out
    as_table = getattr(value, "as_table", None)
    if callable(as_table):  # a value built from a table by its own parser
        return dump(as_table())
    config = getattr(value, "config", None)
    if dataclasses.is_dataclass(config):  # a stage built from a section
        return dump(config)
    if isinstance(value, Mapping):
        return {str(k): dump(v) for k, v in value.items() if v is not None}
    if isinstance(value, tuple | list):
        return [dump(v) for v in value]
    if isinstance(value, enum.Enum):
        return value.name.lower()
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "tolist"):
        return value.tolist()
    return value
