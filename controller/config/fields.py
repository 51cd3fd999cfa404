"""Typed access to TOML tables with errors that name the full key.

Every configuration section reads its values through these helpers so that a bad file
fails at load with ``protection.cell_overvoltage.fault.threshold: expected a number``
instead of a ``KeyError`` deep inside the control loop.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from controller.errors import ConfigError

_MISSING = object()


def join(path: str, key: str) -> str:
    """Dotted key of ``key`` inside the table at ``path``."""
    return f"{path}.{key}" if path else key


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
    value = data.get(key, _MISSING)
    if value is _MISSING:
        if default is _MISSING:
            raise ConfigError(join(path, key), "missing value")
        return default
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(join(path, key), f"expected a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ConfigError(join(path, key), f"expected a finite number, got {value!r}")
    if minimum is not None and value < minimum:
        raise ConfigError(join(path, key), f"{value} is below the minimum {minimum}")
    if maximum is not None and value > maximum:
        raise ConfigError(join(path, key), f"{value} is above the maximum {maximum}")
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
    value = data.get(key, _MISSING)
    if value is _MISSING:
        if default is _MISSING:
            raise ConfigError(join(path, key), "missing value")
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(join(path, key), f"expected an integer, got {value!r}")
    if minimum is not None and value < minimum:
        raise ConfigError(join(path, key), f"{value} is below the minimum {minimum}")
    if maximum is not None and value > maximum:
        raise ConfigError(join(path, key), f"{value} is above the maximum {maximum}")
    return value


def string(
    data: Mapping[str, Any],
    key: str,
    path: str,
    default: Any = _MISSING,
    choices: tuple[str, ...] | None = None,
) -> str:
    """A string, optionally one of ``choices``."""
    value = data.get(key, _MISSING)
    if value is _MISSING:
        if default is _MISSING:
            raise ConfigError(join(path, key), "missing value")
        return default
    if not isinstance(value, str):
        raise ConfigError(join(path, key), f"expected a string, got {value!r}")
    if choices is not None and value not in choices:
        raise ConfigError(join(path, key), f"{value!r} is not one of {', '.join(choices)}")
    return value


def boolean(data: Mapping[str, Any], key: str, path: str, default: Any = _MISSING) -> bool:
    """A boolean."""
    value = data.get(key, _MISSING)
    if value is _MISSING:
        if default is _MISSING:
            raise ConfigError(join(path, key), "missing value")
        return default
    if not isinstance(value, bool):
        raise ConfigError(join(path, key), f"expected true or false, got {value!r}")
    return value


def curve(
    data: Mapping[str, Any], key: str, path: str
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """A piecewise-linear table ``{x = [...], y = [...]}`` with strictly increasing x."""
    sub = table(data, key, path)
    where = join(path, key)
    xs = sub.get("x")
    ys = sub.get("y")
    for name, values in (("x", xs), ("y", ys)):
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{where}.{name}", "expected a non-empty list of numbers")
        for v in values:
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
                raise ConfigError(f"{where}.{name}", f"expected numbers, got {v!r}")
    if len(xs) != len(ys):
        raise ConfigError(where, f"x has {len(xs)} points but y has {len(ys)}")
    if any(b <= a for a, b in zip(xs, xs[1:], strict=False)):
        raise ConfigError(f"{where}.x", "must be strictly increasing")
    return tuple(float(v) for v in xs), tuple(float(v) for v in ys)


def unknown_keys(data: Mapping[str, Any], known: set[str], path: str) -> None:
    """Reject keys nobody reads: a typo must not silently fall back to a default."""
    extra = sorted(set(data) - known)
    if extra:
        raise ConfigError(join(path, extra[0]), f"unknown key (known: {', '.join(sorted(known))})")
