"""The ``[ingest]`` and ``[dbc]`` sections, and the per-bus decoders compiled from them.

``build_decoders`` is the one place that turns the configured databases and mappings into
decoders, so the controller, the tools and the tests ingest a DBC the same way.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cantools
from cantools.database import Database

from controller.config import fields
from controller.config.pack import PackConfig, resolve_dbc
from controller.errors import ConfigError
from controller.ingest import BatchDecoder, MappingConfig, compile_decoder, load_mapping

# Default staleness timeouts (ms): about three periods of the sender, so one lost frame
# never invalidates a value but a silent sender does within a fraction of a second.
DEFAULT_TIMEOUTS_MS = {
    "cell_voltage": 350.0,
    "cell_temperature": 3500.0,
    "module_voltage": 350.0,
    "board_temperature": 350.0,
    "cells_balancing": 350.0,
    "module_open_wire": 350.0,
    "module_adc_fault": 350.0,
    "module_self_test_failed": 350.0,
    "module_balancing_overtemp": 350.0,
    "pack_current": 100.0,
    "pack_voltage": 350.0,
    "link_voltage": 350.0,
    "charge_counter": 350.0,
    "contactor_feedback": 100.0,
    "ems_request": 300.0,
    "ems_reset": 300.0,
}


@dataclass(frozen=True)
class IngestConfig:
    slave_mapping: str
    sensor_mapping: str
    timeouts: Mapping[str, float]  # seconds, by measured array name

    def timeout(self, target: str) -> float:
        return self.timeouts[target]


def _mapping_ref(
    data: Mapping[str, Any], key: str, path: str, default: str, base: Path | None
) -> str:
    """A shipped mapping name, or a ``.toml`` path made absolute against the config file."""
    value = fields.string(data, key, path, default)
    if not value.endswith(".toml"):
        return value
    file = Path(value) if base is None else base / value
    if not file.is_file():
        raise ConfigError(fields.join(path, key), f"no mapping file {value!r} (looked at {file})")
    return str(file.resolve())


def parse_ingest(
    data: Mapping[str, Any], path: str = "ingest", base_dir: Path | None = None
) -> IngestConfig:
    """Validate ``[ingest]``; mapping paths resolve against ``base_dir`` (the config's folder)."""
    fields.unknown_keys(data, {"slave_mapping", "sensor_mapping", "timeouts_ms"}, path)
    given = fields.table(data, "timeouts_ms", path, {})
    where = fields.join(path, "timeouts_ms")
    fields.unknown_keys(given, set(DEFAULT_TIMEOUTS_MS), where)
    timeouts = {
        name: fields.number(given, name, where, default, 1.0, 600_000.0) / 1000.0
        for name, default in DEFAULT_TIMEOUTS_MS.items()
    }
    return IngestConfig(
        slave_mapping=_mapping_ref(data, "slave_mapping", path, "canbms_slaves", base_dir),
        sensor_mapping=_mapping_ref(data, "sensor_mapping", path, "ivt_s", base_dir),
        timeouts=timeouts,
    )


def merge_mappings(*mappings: MappingConfig) -> MappingConfig:
    """One mapping holding the rules, sources and checks of several, in order."""
    return MappingConfig(
        rules=tuple(rule for m in mappings for rule in m.rules),
        sources=tuple(source for m in mappings for source in m.sources),
        e2e=tuple(check for m in mappings for check in m.e2e),
    )


DBC_ROLES = ("slaves", "sensor", "master")


@dataclass(frozen=True)
class DbcSources:
    """The ``[dbc]`` section: the databases of the buses and who provides a shared frame."""

    slaves: Path
    sensor: Path | None  # None: the slave DBC also describes the current sensor
    master: Path
    provides: Mapping[str, str] = field(default_factory=dict)  # message name -> DBC role


def _provides(
    data: Mapping[str, Any], path: str, names: Mapping[str, tuple[str, ...]]
) -> dict[str, str]:
    """``provides`` values name a DBC by role or by file name; stored as the role."""
    table = fields.table(data, "provides", path, {})
    where = fields.join(path, "provides")
    out = {}
    for message in table:
        value = fields.string(table, message, where)
        role = next((r for r, known in names.items() if value == r or value in known), None)
        if role is None:
            raise ConfigError(
                fields.join(where, message),
                f"{value!r} is none of the configured DBCs ({', '.join(names)})",
            )
        out[message] = role
    return out


def parse_dbc_sources(
    data: Mapping[str, Any], path: str = "dbc", base: Path | None = None
) -> DbcSources:
    """Validate ``[dbc]``; ``sensor = ""`` means the slave DBC describes the current sensor."""
    fields.unknown_keys(data, {*DBC_ROLES, "provides"}, path)
    defaults = {"slaves": "canbms_slaves.dbc", "sensor": "ivt_s.dbc", "master": "canbms_master.dbc"}
    given = {role: fields.string(data, role, path, defaults[role]) for role in DBC_ROLES}
    files = {
        role: None
        if value == "" and role == "sensor"
        else resolve_dbc(value, f"{path}.{role}", base)
        for role, value in given.items()
    }
    names = {role: (given[role], file.name) for role, file in files.items() if file is not None}
    return DbcSources(
        slaves=files["slaves"],
        sensor=files["sensor"],
        master=files["master"],
        provides=_provides(data, path, names),
    )


MODULE_ARRAYS = (
    "module_voltage",
    "board_temperature",
    "cells_balancing",
    "module_open_wire",
    "module_adc_fault",
    "module_self_test_failed",
    "module_balancing_overtemp",
)


def bus_targets(pack: PackConfig) -> dict[str, dict[str, int]]:
    """Names and sizes of the measured arrays each bus feeds."""
    return {
        "internal": {
            "cell_voltage": pack.cells,
            "cell_temperature": pack.sensors,
            **dict.fromkeys(MODULE_ARRAYS, pack.modules),
            "pack_current": 1,
            "pack_voltage": 1,
            "link_voltage": 1,
            "charge_counter": 1,  # the current sensor's own charge counter, As
            "contactor_feedback": 3,  # minus, precharge, plus
        },
        "vehicle": {"ems_request": 1, "ems_reset": 1},
    }


# What the controller can run without: per-module status values and the current sensor's
# charge counter. Cell voltages and temperatures, the current and the pack and link voltages
# (precharge) are mandatory.
OPTIONAL_TARGETS = (*MODULE_ARRAYS, "charge_counter")


def bus_mappings(config: IngestConfig, params: Mapping[str, int]) -> dict[str, MappingConfig]:
    """The mapping of each bus role: slaves, sensor and contactor driver inside, EMS outside."""
    internal = merge_mappings(
        load_mapping(config.slave_mapping, params),
        load_mapping(config.sensor_mapping, params),
        load_mapping("contactor_driver", params),
    )
    return {"internal": internal, "vehicle": load_mapping("ems", params)}


def load_database(path: Path) -> tuple[Database, tuple[str, ...]]:
    """A DBC, strictly checked when it allows; a third-party file that does not is still
    read, and the messages whose signals do not fit are left out by the decoder."""
    try:
        return cantools.database.load_file(str(path), strict=True), ()
    except cantools.database.UnsupportedDatabaseFormatError as exc:
        loose = cantools.database.load_file(str(path), strict=False)
        return loose, (f"{path.name}: read without strict checks ({exc})",)


def load_databases(
    sources: DbcSources, preloaded: Mapping[str, Database] | None = None
) -> tuple[dict[str, Database | None], tuple[str, ...]]:
    """The DBC of each role (None for an absent sensor DBC), and load notices.

    Roles in ``preloaded`` (e.g. a large generated slave DBC built in memory) are not read.
    """
    dbs: dict[str, Database | None] = dict(preloaded or {})
    notices: list[str] = []
    for role in DBC_ROLES:
        path = getattr(sources, role)
        if role in dbs:
            continue
        dbs[role] = None
        if path is not None:
            dbs[role], said = load_database(path)
            notices.extend(said)
    return dbs, tuple(notices)


def bus_subset(master: Database, role: str) -> Database:
    """The messages of the master DBC that travel on one bus role (``BusRole`` attribute)."""
    return Database(messages=[m for m in master.messages if _role(m) == role], strict=False)


def _role(message: Any) -> str:
    attributes = message.dbc.attributes if message.dbc else {}
    role = attributes.get("BusRole")
    return str(role.value) if role is not None else "vehicle"


@dataclass(frozen=True)
class IngestBuild:
    """The decoder of each bus role and what the build decided (ignored frames, absent data)."""

    decoders: dict[str, BatchDecoder]
    notices: tuple[str, ...]

    @property
    def available(self) -> dict[str, frozenset[str]]:
        """Per bus role, the measured arrays some signal feeds."""
        return {role: decoder.available for role, decoder in self.decoders.items()}


def build_decoders(
    pack: PackConfig,
    ingest: IngestConfig,
    slaves: Database,
    sensor: Database | None,
    master: Database,
    provides: Mapping[str, str] | None = None,
    optional: Collection[str] = OPTIONAL_TARGETS,
) -> IngestBuild:
    """Compile the internal and vehicle bus decoders from the loaded databases.

    ``sensor`` None means the slave DBC also describes the current sensor; ``provides``
    (message name -> ``"slaves"``, ``"sensor"`` or ``"master"``) settles frame IDs two of
    them define differently. A target of ``optional`` that no mapping feeds is not
    available; the build says so in ``notices`` instead of failing.
    """
    params = {
        "cells_per_module": pack.cells_per_module,
        "sensors_per_module": pack.sensors_per_module,
    }
    mappings = bus_mappings(ingest, params)
    targets = bus_targets(pack)
    internal = {"slaves": slaves, "sensor": sensor, "master": bus_subset(master, "internal")}
    decoders = {
        "internal": compile_decoder(
            {role: db for role, db in internal.items() if db is not None},
            mappings["internal"],
            targets["internal"],
            provides=provides,
            optional=optional,
        ),
        "vehicle": compile_decoder(
            {"master": bus_subset(master, "vehicle")}, mappings["vehicle"], targets["vehicle"]
        ),
    }
    notices = tuple(
        f"{role} bus: {notice}" for role, decoder in decoders.items() for notice in decoder.notices
    )
    return IngestBuild(decoders, notices)
