"""Load and validate the controller configuration (TOML).

A configuration file holds only what differs from the defaults: the chemistry preset
supplies the protection thresholds and derating tables, and any table given in the file is
merged over the preset key by key. Every value is validated at load; an error names the
dotted key (``protection.cell_overvoltage.fault.threshold``) so a broken file never reaches
the control loop.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from controller.adapters.registry import build_adapters
from controller.balancing import BalancingConfig, parse_balancing
from controller.canopen_node.config import BatteryNodeConfig, load_battery_node_config
from controller.config import fields
from controller.config.ingest import DbcSources, IngestConfig, parse_dbc_sources, parse_ingest
from controller.config.pack import BusConfig, PackConfig, parse_buses, parse_pack
from controller.contactors import ContactorConfig, parse_contactors
from controller.errors import ConfigError
from controller.limits import LimitsConfig, SocConfig, parse_limits, parse_soc
from controller.presets import load_preset
from controller.protection import ProtectionConfig, parse_protection
from controller.stage import Stage

SECTIONS = {
    "pack",
    "cycle_ms",
    "startup_timeout_ms",
    "buses",
    "dbc",
    "ingest",
    "protection",
    "contactors",
    "limits",
    "soc",
    "balancing",
    "adapters",
    "canopen",
}


@dataclass(frozen=True)
class ControllerConfig:
    pack: PackConfig
    cycle_s: float
    startup_timeout_s: float
    buses: Mapping[str, BusConfig]
    dbc: DbcSources
    ingest: IngestConfig
    protection: ProtectionConfig
    contactors: ContactorConfig
    limits: LimitsConfig
    soc: SocConfig
    balancing: BalancingConfig
    adapters: tuple[Stage, ...]
    canopen: BatteryNodeConfig | None  # the CiA 418 node runs only when [canopen] is given


def merged(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``override`` laid over ``base`` table by table (values and lists replace)."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merged(out[key], value)
        else:
            out[key] = value
    return out


def parse_config(data: Mapping[str, Any], base: Path | None = None) -> ControllerConfig:
    """Validate a configuration table; ``base`` resolves relative DBC paths."""
    fields.unknown_keys(data, SECTIONS, "")
    pack = parse_pack(fields.table(data, "pack", "", {}))
    chemistry = pack.chemistry
    adapters = data.get("adapters", [])
    if not isinstance(adapters, list):
        raise ConfigError("adapters", "expected an array of tables ([[adapters]])")
    return ControllerConfig(
        pack=pack,
        cycle_s=fields.number(data, "cycle_ms", "", 10.0, 1.0, 1000.0) / 1000.0,
        startup_timeout_s=fields.number(data, "startup_timeout_ms", "", 3000.0, 0.0, 60_000.0)
        / 1000.0,
        buses=parse_buses(fields.table(data, "buses", "", {})),
        dbc=parse_dbc_sources(fields.table(data, "dbc", "", {}), base=base),
        ingest=parse_ingest(fields.table(data, "ingest", "", {}), base_dir=base),
        protection=parse_protection(
            merged(load_preset("protection", chemistry), fields.table(data, "protection", "", {}))
        ),
        contactors=parse_contactors(fields.table(data, "contactors", "", {})),
        limits=parse_limits(
            merged(
                {**load_preset("limits", chemistry), "cells_in_series": pack.cells},
                fields.table(data, "limits", "", {}),
            )
        ),
        soc=parse_soc(
            merged(
                {**load_preset("soc", chemistry), "capacity_ah": pack.capacity_ah},
                fields.table(data, "soc", "", {}),
            )
        ),
        balancing=parse_balancing(fields.table(data, "balancing", "", {})),
        adapters=tuple(build_adapters(adapters)),
        canopen=(
            load_battery_node_config(fields.table(data, "canopen", ""))
            if "canopen" in data
            else None
        ),
    )


def load_config(path: str | Path) -> ControllerConfig:
    path = Path(path)
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except OSError as exc:
        raise ConfigError(str(path), f"cannot read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), f"not valid TOML: {exc}") from None
    return parse_config(data, base=path.parent)


def default_config() -> ControllerConfig:
    """The embedded default: the 96s NMC demo pack on python-can's virtual bus."""
    return parse_config({})
