"""Warnings about a valid configuration that deserves a second look before it runs a pack."""

from __future__ import annotations

import dataclasses
from typing import Any

from controller.config.declare import fields_of, join, setting_of
from controller.config.loader import ControllerConfig


def warnings(config: ControllerConfig) -> list[str]:
    """Settings sitting on a bound, no balancing, a pack nothing is told about.

    What is unsafe (a disabled protection check among it) is refused at load, or warned
    about as an accepted ``unsafe_override`` (`controller.config.safety.warnings`).
    """
    out: list[str] = []
    if not config.balancing.enabled:
        out.append("balancing.enabled: false, the cells are never balanced")
    if not config.adapters and config.canopen is None:
        out.append("adapters: none and no [canopen]: only the status frames publish the limits")
    out.extend(_at_bounds(config, ""))
    return out


def _at_bounds(section: Any, path: str) -> list[str]:
    found = []
    for f, _ in fields_of(type(section)):
        meta = setting_of(f)
        value = getattr(section, f.name)
        key = join(path, f.name)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            found.extend(_at_bounds(value, key))
        elif isinstance(value, dict):
            for name, item in value.items():
                if dataclasses.is_dataclass(item):
                    found.extend(_at_bounds(item, join(key, name)))
        elif isinstance(value, int | float) and not isinstance(value, bool):
            for bound, word in ((meta.ge, "minimum"), (meta.le, "maximum")):
                if bound is not None and value == bound and bound != 0:
                    found.append(f"{key}: {value:g} is at its {word}")
    return found
