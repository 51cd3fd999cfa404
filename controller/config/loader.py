"""Load and validate the controller configuration (TOML).

A configuration file holds only what differs from the defaults: the chemistry preset
supplies the protection thresholds and derating tables, and any table given in the file is
merged over the preset key by key before anything is validated. `ControllerConfig` declares
every section once (`controller.config.declare`); an error names the dotted key
(``protection.cell_overvoltage.fault.threshold``) so a broken file never reaches the control
loop. Paths in the file are relative to the file (``ControllerConfig.base_dir``).
"""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from controller.balancing import BalancingConfig
from controller.canopen_node.config import BatteryNodeConfig
from controller.config.declare import Context, load, setting
from controller.config.ingest import DbcSources, IngestConfig, parse_dbc_sources, parse_ingest
from controller.config.pack import BUS_ROLES, BusConfig, PackConfig, default_buses, parse_buses
from controller.config.safety import Refusal, check_config
from controller.contactors import ContactorConfig
from controller.diagnosis import Catalogue, apply_overrides, shipped
from controller.errors import ConfigError
from controller.estimation import SohConfig
from controller.life import LifeConfig
from controller.limits import LimitsConfig, SocConfig
from controller.presets import load_preset
from controller.protection import ProtectionConfig
from controller.security.config import SecurityConfig
from controller.shell.mqtt.config import MqttConfig
from controller.shell.supervision import SupervisionConfig
from controller.stage import Stage


def _adapters_schema() -> dict[str, Any]:
    from controller.adapters.registry import ADAPTERS
    from controller.config.schema import section_schema

    variants = [section_schema(t.config) for t in ADAPTERS.values()]
    return {"type": "array", "items": {"oneOf": variants}}


def _build_adapters(tables: Any) -> tuple[Stage, ...]:
    """The stages of ``[[adapters]]``; the protocols are imported only by a configuration
    that has some, so a pack without an inverter or charger starts without them."""
    from controller.adapters.registry import build_adapters

    return tuple(build_adapters(tables))


def _open(doc: str) -> Any:
    """The JSON Schema of a section read by its own parser (open to any key)."""
    return lambda: {"type": "object", "description": doc}


@dataclass(frozen=True, kw_only=True)
class ControllerConfig:
    """The whole configuration file, after presets."""

    pack: PackConfig = setting(PackConfig(), doc="the pack's shape and chemistry")
    cycle_ms: float = setting(10.0, ge=1.0, le=1000.0, unit="ms", doc="control step period")
    startup_timeout_ms: float = setting(
        3000.0, ge=0.0, le=60_000.0, unit="ms",
        doc="after start, protection waits at most this long for every measurement",
    )  # fmt: skip
    buses: Mapping[str, BusConfig] = setting(
        default_buses(), parse=lambda d, w, c: parse_buses(d, w), doc="the named CAN buses"
    )
    dbc: DbcSources = setting(
        parse=lambda d, w, c: parse_dbc_sources(d, w, base=c.base_dir),
        schema=_open("the databases of the buses (see the [dbc] reference)"),
        doc="the databases of the buses",
    )
    ingest: IngestConfig = setting(
        parse=lambda d, w, c: parse_ingest(d, w, base_dir=c.base_dir),
        schema=_open("mappings and staleness timeouts (see the [ingest] reference)"),
        doc="which mappings feed the measurements, and when data goes stale",
    )
    protection: ProtectionConfig = setting(doc="the fault table (over the chemistry preset)")
    contactors: ContactorConfig = setting(ContactorConfig(), doc="the contactor sequence")
    limits: LimitsConfig = setting(doc="current and voltage limits (over the chemistry preset)")
    soc: SocConfig = setting(doc="SOC estimation (over the chemistry preset)")
    soh: SohConfig = setting(SohConfig(), doc="state of health: cell capacity and resistance")
    balancing: BalancingConfig = setting(BalancingConfig(), doc="passive balancing")
    life: LifeConfig = setting(LifeConfig(), doc="life counters (contactor wear, throughput)")
    adapters: tuple[Stage, ...] = setting(
        (),
        parse=lambda d, w, c: _build_adapters(d),
        schema=_adapters_schema,
        doc="protocols towards inverters and chargers ([[adapters]])",
    )
    canopen: BatteryNodeConfig | None = setting(
        None, doc="the CiA 418 battery node; it runs only when [canopen] is given"
    )
    diagnosis: Catalogue = setting(
        shipped(),
        parse=lambda d, w, c: apply_overrides(shipped(), d, w),
        schema=_open("overrides of the diagnosis catalogue by ID (see docs/diagnosis.md)"),
        doc="the diagnosis catalogue with [diagnosis.<id>] overrides applied",
    )
    state_dir: Path | None = setting(
        None,
        doc="folder of the state store (latched faults, SOC, event history); "
        "none: nothing survives a restart",
    )
    persist_every_s: float = setting(
        5.0, ge=0.1, le=3600.0, unit="s",
        doc="the state store saves the persisted state (and the runtime counters) this often, "
        "and at once when a latch changes",
    )  # fmt: skip
    security: SecurityConfig = setting(
        SecurityConfig(), doc="how EMS requests to close or reset are confirmed (diagnosis 940)"
    )
    supervision: SupervisionConfig = setting(
        SupervisionConfig(), doc="how the shell judges its own control loop (diagnoses 920-923)"
    )
    mqtt: MqttConfig | None = setting(
        None, doc="telemetry to an MQTT broker with Home Assistant discovery; only when given"
    )
    unsafe_override: tuple[str, ...] = setting(
        (),
        unique=True,
        doc="dotted keys whose unsafe value is accepted anyway, with a warning at every start",
    )
    base_dir: Path | None = None  # the configuration file's folder; relative paths start here
    unsafe: tuple[Refusal, ...] = ()  # what unsafe_override accepted (set by parse_config)

    @property
    def cycle_s(self) -> float:
        return self.cycle_ms / 1000.0

    @property
    def startup_timeout_s(self) -> float:
        return self.startup_timeout_ms / 1000.0

    def validate(self, path: str) -> None:
        """Every bus named by a section is configured; the core's own buses exist."""
        configured = ", ".join(self.buses)
        for role in BUS_ROLES:
            if role not in self.buses:
                raise ConfigError(f"buses.{role}", "missing: the pack core lives on this bus")
        users = [(f"adapters[{i}].bus", a.bus) for i, a in enumerate(self.adapters)]
        if self.canopen is not None:
            users.append(("canopen.bus", self.canopen.bus))
        for key, bus in users:
            if bus not in self.buses:
                raise ConfigError(
                    key, f"{bus!r} is not a configured bus (configured: {configured})"
                )


def merged(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``override`` laid over ``base`` table by table (values and lists replace)."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merged(out[key], value)
        else:
            out[key] = value
    return out


PRESET_SECTIONS = ("protection", "limits", "soc")


def with_presets(data: Mapping[str, Any]) -> dict[str, Any]:
    """The file's tables laid over the chemistry presets; the pack sizes the limits and SOC."""
    pack = load(PackConfig, data.get("pack", {}), "pack")
    presets = {
        "protection": load_preset("protection", pack.chemistry),
        "limits": {**load_preset("limits", pack.chemistry), "cells_in_series": pack.cells},
        "soc": {**load_preset("soc", pack.chemistry), "capacity_ah": pack.capacity_ah},
    }
    out = dict(data)
    for section, preset in presets.items():
        given = data.get(section, {})
        if not isinstance(given, Mapping):
            raise ConfigError(section, f"expected a table, got {type(given).__name__}")
        out[section] = merged(preset, given)
    return out


def parse_config(data: Mapping[str, Any], base: Path | None = None) -> ControllerConfig:
    """Validate a configuration table; ``base`` (the file's folder) resolves relative paths."""
    config = load(ControllerConfig, with_presets(data), "", Context(base))
    return dataclasses.replace(config, base_dir=base, unsafe=check_config(config))


def read_toml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except OSError as exc:
        raise ConfigError(str(path), f"cannot read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), f"not valid TOML: {exc}") from None


def load_config(path: str | Path) -> ControllerConfig:
    return parse_config(read_toml(path), base=Path(path).parent)


def default_config() -> ControllerConfig:
    """The embedded default: the 96s NMC demo pack on python-can's virtual bus."""
    return parse_config({})
