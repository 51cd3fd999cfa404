"""Typed access to TOML tables for sections read by hand rather than declared.

Sections with a format of their own (the ``[ingest]`` mappings, ``[dbc]``) read their values
through these helpers; they share the declared loader's readers (`controller.config.declare`),
so every value is judged and every error worded the same way:
``ingest.timeouts_ms.cell_voltage: expected a number``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from controller.config.declare import Setting, check_bounds, join, read_scalar
from controller.errors import ConfigError

__all__ = ["boolean", "integer", "join", "number", "string", "table", "unknown_keys"]

_MISSING = object()


def _get(data: Mapping[str, Any], key: str, path: str, default: Any) -> Any:
    value = data.get(key, _MISSING)
    if value is _MISSING and default is _MISSING:
        raise ConfigError(join(path, key), "missing value")
    return value


def table(
    data: Mapping[str, Any], key: str, path: str, default: Any = _MISSING
) -> Mapping[str, Any]:
    """A sub-table; ``default`` (if given) when absent."""
    value = data.get(key, _MISSING)
    if value is _MISSING:
        if default is _MISSING:
            raise ConfigError(join(path, key), "missing table")
        return default
    if not isinstance(value, Mapping):
        raise ConfigError(join(path, key), f"expected a table, got {type(value).__name__}")
    return value


def number(
    data: Mapping[str, Any],
    key: str,
    path: str,
    default: Any = _MISSING,
    minimum: float | None = None,
    maximum: float | None = None,
) -> float:
    """A finite number within [minimum, maximum]."""
    value = _get(data, key, path, default)
    if value is _MISSING:
        return default
    value = read_scalar(float, value, join(path, key))
    check_bounds(value, join(path, key), Setting(ge=minimum, le=maximum))
    return value


def integer(
    data: Mapping[str, Any],
    key: str,
    path: str,
    default: Any = _MISSING,
    minimum: int | None = None,
    maximum: int | None = None,
) -> int:
    """An integer within [minimum, maximum]."""
    value = _get(data, key, path, default)
    if value is _MISSING:
        return default
    value = read_scalar(int, value, join(path, key))
    check_bounds(value, join(path, key), Setting(ge=minimum, le=maximum))
    return value


def string(
    data: Mapping[str, Any],
    key: str,
    path: str,
    default: Any = _MISSING,
    choices: tuple[str, ...] | None = None,
) -> str:
    """A string, optionally one of ``choices``."""
    value = _get(data, key, path, default)
    if value is _MISSING:
        return default
    value = read_scalar(str, value, join(path, key))
    if choices is not None and value not in choices:
        raise ConfigError(join(path, key), f"{value!r} is not one of {', '.join(choices)}")
    return value


def boolean(data: Mapping[str, Any], key: str, path: str, default: Any = _MISSING) -> bool:
    """A boolean."""
    value = _get(data, key, path, default)
    if value is _MISSING:
        return default
    return read_scalar(bool, value, join(path, key))


def unknown_keys(data: Mapping[str, Any], known: set[str], path: str) -> None:
    """Reject keys nobody reads: a typo must not silently fall back to a default."""
    extra = sorted(set(data) - known)
    if extra:
        raise ConfigError(join(path, extra[0]), f"unknown key (known: {', '.join(sorted(known))})")
