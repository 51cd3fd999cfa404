"""Sections of the configuration that belong to the controller as a whole: pack, buses, DBCs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import dbc
from controller.config.declare import load, setting
from controller.errors import ConfigError
from dbc.topology import MAX_MODULES_EXTENDED

BUS_ROLES = ("internal", "vehicle")


@dataclass(frozen=True)
class PackConfig:
    """The pack's shape: it sizes every measured array and selects the chemistry presets."""

    chemistry: Literal["nmc", "lfp", "lto"] = setting(
        "nmc", doc="cell chemistry: selects the protection, limits and SOC presets"
    )
    # above 64 modules the slave DBC uses 29-bit IDs (dbc.topology.Topology.extended_ids)
    modules: int = setting(8, ge=1, le=MAX_MODULES_EXTENDED, doc="slave modules")
    cells_per_module: int = setting(12, ge=1, le=64, doc="cells in series per module")
    sensors_per_module: int = setting(4, ge=1, le=64, doc="temperature sensors per module")
    capacity_ah: float = setting(
        100.0, ge=0.1, le=100_000.0, unit="Ah", doc="rated capacity (SOC counting)"
    )
    fd: bool = setting(False, doc="the slave bus uses CAN FD frames")

    @property
    def cells(self) -> int:
        return self.modules * self.cells_per_module

    @property
    def sensors(self) -> int:
        return self.modules * self.sensors_per_module


def parse_pack(data: Mapping[str, Any], path: str = "pack") -> PackConfig:
    return load(PackConfig, data, path)


@dataclass(frozen=True)
class BusConfig:
    """One named bus: the keyword arguments of ``can.Bus``."""

    name: str = setting(from_key=True)
    interface: str = setting("virtual", doc="python-can interface (socketcan, pcan, remote, ...)")
    channel: str = setting("", doc="python-can channel; empty: `canbms-<name>`")
    bitrate: int | None = setting(None, ge=10_000, le=8_000_000, unit="bit/s", doc="bit rate")
    fd: bool | None = setting(None, doc="CAN FD")
    data_bitrate: int | None = setting(
        None, ge=10_000, le=16_000_000, unit="bit/s", doc="CAN FD data phase bit rate"
    )
    options: Mapping[str, Any] = setting(
        {}, extra=True, doc="any other option of the interface, passed through"
    )

    def __post_init__(self) -> None:
        if not self.channel:
            object.__setattr__(self, "channel", f"canbms-{self.name}")

    def bus_kwargs(self) -> dict[str, Any]:
        typed = {"bitrate": self.bitrate, "fd": self.fd, "data_bitrate": self.data_bitrate}
        given = {k: v for k, v in typed.items() if v is not None}
        return {"interface": self.interface, "channel": self.channel, **given, **self.options}


def default_buses() -> dict[str, BusConfig]:
    """Without ``[buses]``: the internal and vehicle buses on python-can's virtual interface."""
    return {role: BusConfig(name=role) for role in BUS_ROLES}


def parse_buses(data: Mapping[str, Any], path: str = "buses") -> dict[str, BusConfig]:
    """Every ``[buses.<name>]``; ``internal`` and ``vehicle`` first (the core's buses)."""
    if not data:
        return default_buses()
    buses = {name: load(BusConfig, sub, f"{path}.{name}") for name, sub in data.items()}
    first = [name for name in BUS_ROLES if name in buses]
    return {name: buses[name] for name in (*first, *(n for n in buses if n not in first))}


def resolve_dbc(value: str, key: str, base: Path | None) -> Path:
    """A shipped DBC by file name, or a path relative to the configuration file."""
    shipped = dbc.path(value)
    if shipped.is_file():
        return shipped
    candidate = Path(value) if base is None else base / value
    if not candidate.is_file():
        raise ConfigError(key, f"no DBC file {value!r} (neither shipped nor at {candidate})")
    return candidate
