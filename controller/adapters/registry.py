"""The table of adapter types and the builder for ``[[adapters]]`` configuration.

A new protocol is one entry in ``ADAPTERS``: a factory taking the adapter's TOML table and its
key path (``adapters[2]``) so that every configuration error names the offending key.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from controller.adapters.canbms_inverter import CanBmsInverter
from controller.adapters.elcon import ElconCharger
from controller.config import fields
from controller.errors import ConfigError
from controller.stage import Stage

Factory = Callable[[Mapping[str, Any], str], Stage]

ADAPTERS: dict[str, Factory] = {
    "canbms_inverter": CanBmsInverter.from_config,
    "elcon": ElconCharger.from_config,
}


def build_adapters(config_list: Sequence[Mapping[str, Any]]) -> list[Stage]:
    """Every configured adapter, in order; several may run at once.

    Rejects what would collide on the wire: two adapters with the same name, two inverter
    adapters on one bus (both would send 0x351), or one Elcon address used twice on a bus.
    """
    if not isinstance(config_list, Sequence) or isinstance(config_list, str):
        raise ConfigError("adapters", "expected an array of tables ([[adapters]])")
    adapters: list[Stage] = []
    names: set[str] = set()
    claimed: dict[tuple[str, object], str] = {}  # (bus, resource) -> owner
    for index, data in enumerate(config_list):
        path = f"adapters[{index}]"
        if not isinstance(data, Mapping):
            raise ConfigError(path, f"expected a table, got {type(data).__name__}")
        kind = fields.string(data, "type", path, choices=tuple(ADAPTERS))
        table = dict(data)
        table.setdefault("name", kind if kind not in names else f"{kind}_{index}")
        adapter = ADAPTERS[kind](table, path)
        if adapter.name in names:
            raise ConfigError(fields.join(path, "name"), f"{adapter.name!r} is used twice")
        names.add(adapter.name)
        for resource in _resources(adapter):
            owner = claimed.setdefault((adapter.bus, resource), adapter.name)
            if owner != adapter.name:
                raise ConfigError(
                    fields.join(path, "bus"),
                    f"{adapter.name!r} and {owner!r} would both send {resource} on {adapter.bus!r}",
                )
        adapters.append(adapter)
    return adapters


def _resources(adapter: Stage) -> tuple[str, ...]:
    """What an adapter owns on its bus and no other adapter may send there."""
    if isinstance(adapter, CanBmsInverter):
        return ("the inverter frames (0x351...)",)
    if isinstance(adapter, ElconCharger):
        return tuple(f"charger {a:02X} commands" for a in adapter.config.addresses)
    return ()
