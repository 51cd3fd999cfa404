"""Sections of the configuration that belong to the controller as a whole: pack, buses, DBCs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dbc
from controller.config import fields
from controller.errors import ConfigError
from dbc.topology import MAX_MODULES_EXTENDED

CHEMISTRIES = ("nmc", "lfp", "lto")
BUS_ROLES = ("internal", "vehicle")


@dataclass(frozen=True)
class PackConfig:
    chemistry: str
    modules: int
    cells_per_module: int
    sensors_per_module: int
    capacity_ah: float
    fd: bool

    @property
    def cells(self) -> int:
        return self.modules * self.cells_per_module

    @property
    def sensors(self) -> int:
        return self.modules * self.sensors_per_module


def parse_pack(data: Mapping[str, Any], path: str = "pack") -> PackConfig:
    fields.unknown_keys(
        data,
        {"chemistry", "modules", "cells_per_module", "sensors_per_module", "capacity_ah", "fd"},
        path,
    )
    return PackConfig(
        chemistry=fields.string(data, "chemistry", path, "nmc", CHEMISTRIES),
        # above 64 modules the slave DBC uses 29-bit IDs (dbc.topology.Topology.extended_ids)
        modules=fields.integer(data, "modules", path, 8, 1, MAX_MODULES_EXTENDED),
        cells_per_module=fields.integer(data, "cells_per_module", path, 12, 1, 64),
        sensors_per_module=fields.integer(data, "sensors_per_module", path, 4, 1, 64),
        capacity_ah=fields.number(data, "capacity_ah", path, 100.0, 0.1, 100_000.0),
        fd=fields.boolean(data, "fd", path, False),
    )


@dataclass(frozen=True)
class BusConfig:
    """Keyword arguments for ``can.Bus`` of one bus role."""

    role: str
    interface: str
    channel: str
    options: Mapping[str, Any] = field(default_factory=dict)

    def bus_kwargs(self) -> dict[str, Any]:
        return {"interface": self.interface, "channel": self.channel, **self.options}


def parse_buses(data: Mapping[str, Any], path: str = "buses") -> dict[str, BusConfig]:
    fields.unknown_keys(data, set(BUS_ROLES), path)
    buses = {}
    for role in BUS_ROLES:
        sub = fields.table(data, role, path, {})
        where = fields.join(path, role)
        options = {k: v for k, v in sub.items() if k not in ("interface", "channel")}
        if "bitrate" in options:
            options["bitrate"] = fields.integer(
                sub, "bitrate", where, minimum=10_000, maximum=8_000_000
            )
        if "fd" in options:
            options["fd"] = fields.boolean(sub, "fd", where)
        buses[role] = BusConfig(
            role=role,
            interface=fields.string(sub, "interface", where, "virtual"),
            channel=str(fields.string(sub, "channel", where, f"canbms-{role}")),
            options=options,
        )
    return buses


def resolve_dbc(value: str, key: str, base: Path | None) -> Path:
    """A shipped DBC by file name, or a path relative to the configuration file."""
    shipped = dbc.path(value)
    if shipped.is_file():
        return shipped
    candidate = Path(value) if base is None else base / value
    if not candidate.is_file():
        raise ConfigError(key, f"no DBC file {value!r} (neither shipped nor at {candidate})")
    return candidate
