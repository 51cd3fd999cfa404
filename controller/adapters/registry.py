"""The table of adapter types and the builder for ``[[adapters]]`` configuration.

A new protocol is one entry in ``ADAPTERS``: its declared configuration section (whose
``type`` field names it) and the stage built from it. Tables are validated by the generic
configuration loader, so every error names the offending key (``adapters[2].period``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from controller.adapters.canbms_inverter import CanBmsInverter, InverterConfig
from controller.adapters.elcon import ElconCharger, ElconConfig
from controller.config.declare import load
from controller.errors import ConfigError
from controller.stage import Stage
from controller.traffic import check_traffic


@dataclass(frozen=True)
class AdapterType:
    config: type
    build: Callable[[Any], Stage]


ADAPTERS: dict[str, AdapterType] = {
    "canbms_inverter": AdapterType(InverterConfig, CanBmsInverter),
    "elcon": AdapterType(ElconConfig, ElconCharger),
}


def load_adapter_configs(tables: Any, path: str = "adapters") -> tuple[Any, ...]:
    """The declared section of every ``[[adapters]]`` table, with unique names."""
    if not isinstance(tables, Sequence) or isinstance(tables, str):
        raise ConfigError(path, "expected an array of tables ([[adapters]])")
    configs: list[Any] = []
    names: set[str] = set()
    for index, data in enumerate(tables):
        where = f"{path}[{index}]"
        if not isinstance(data, Mapping):
            raise ConfigError(where, f"expected a table, got {type(data).__name__}")
        kind = data.get("type")
        if kind not in ADAPTERS:
            known = ", ".join(ADAPTERS)
            problem = "missing value" if kind is None else f"{kind!r} is not one of {known}"
            raise ConfigError(f"{where}.type", problem)
        default_name = kind if kind not in names else f"{kind}_{index}"
        config = load(ADAPTERS[kind].config, {"name": default_name, **data}, where)
        if config.name in names:
            raise ConfigError(f"{where}.name", f"{config.name!r} is used twice")
        names.add(config.name)
        configs.append(config)
    return tuple(configs)


def build_adapter(config: Any) -> Stage:
    return ADAPTERS[config.type].build(config)


def build_adapters(tables: Sequence[Mapping[str, Any]]) -> list[Stage]:
    """Every configured adapter, in order; several may run at once.

    Rejects what would collide on the wire among them (two inverter adapters sending 0x351 on
    one bus, one Elcon address used twice on a bus) with the frame keys each declares; the
    assembly checks them again against the pack core's own frames.
    """
    stages = [build_adapter(config) for config in load_adapter_configs(tables)]
    keyed = [(f"adapters[{index}]", stage) for index, stage in enumerate(stages)]
    check_traffic({stage.bus for stage in stages}, {}, keyed)
    return stages
