"""The ``[ingest]`` section: which mappings feed the measurements, and when data goes stale."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from controller.config import fields
from controller.config.pack import PackConfig
from controller.ingest import MappingConfig, load_mapping

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


def parse_ingest(data: Mapping[str, Any], path: str = "ingest") -> IngestConfig:
    fields.unknown_keys(data, {"slave_mapping", "sensor_mapping", "timeouts_ms"}, path)
    given = fields.table(data, "timeouts_ms", path, {})
    where = fields.join(path, "timeouts_ms")
    fields.unknown_keys(given, set(DEFAULT_TIMEOUTS_MS), where)
    timeouts = {
        name: fields.number(given, name, where, default, 1.0, 600_000.0) / 1000.0
        for name, default in DEFAULT_TIMEOUTS_MS.items()
    }
    return IngestConfig(
        slave_mapping=fields.string(data, "slave_mapping", path, "canbms_slaves"),
        sensor_mapping=fields.string(data, "sensor_mapping", path, "ivt_s"),
        timeouts=timeouts,
    )


def merge_mappings(*mappings: MappingConfig) -> MappingConfig:
    """One mapping holding the rules, sources and checks of several, in order."""
    return MappingConfig(
        rules=tuple(rule for m in mappings for rule in m.rules),
        sources=tuple(source for m in mappings for source in m.sources),
        e2e=tuple(check for m in mappings for check in m.e2e),
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
            "contactor_feedback": 3,  # minus, precharge, plus
        },
        "vehicle": {"ems_request": 1, "ems_reset": 1},
    }


def bus_mappings(config: IngestConfig, params: Mapping[str, int]) -> dict[str, MappingConfig]:
    """The mapping of each bus role: slaves, sensor and contactor driver inside, EMS outside."""
    internal = merge_mappings(
        load_mapping(config.slave_mapping, params),
        load_mapping(config.sensor_mapping, params),
        load_mapping("contactor_driver", params),
    )
    return {"internal": internal, "vehicle": load_mapping("ems", params)}
