"""Configuration of the CiA 418 battery node (the ``[canopen]`` table).

Periods are in milliseconds because the object dictionary stores them so (1017h, the TPDO
event timers); the values here are the start-up defaults, a service tool may change them
over SDO while the node runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from controller.config.fields import boolean, integer, number, string, unknown_keys

_U16 = 0xFFFF
_U32 = 0xFFFFFFFF


@dataclass(frozen=True)
class BatteryNodeConfig:
    """Start-up values of the battery node's object dictionary."""

    node_id: int = 1
    heartbeat_ms: int = 500  # 1017h producer heartbeat time
    tpdo1_ms: int = 1000  # 6010h temperature + 6000h status
    tpdo2_ms: int = 1000  # 6060h voltage
    tpdo3_ms: int = 200  # 6070h charge current request + 6081h SOC
    self_start: bool = True  # enter OPERATIONAL after boot-up without an NMT master
    battery_type: int = 0  # 6020h sub 1, as the charger's profile numbers it
    rated_charge_current_a: float = 100.0  # 6020h sub 3; default of the request cap 2100h sub 2
    charge_current_scale_pct: int = 100  # 2100h sub 1: request = CCL x scale
    vendor_id: int = 0  # 1018h sub 1 (0: no CiA vendor ID assigned)
    product_code: int = 418
    revision: int = 1
    serial_number: int = 0
    bus: str = "vehicle"  # the configured bus the node lives on


_KEYS = {
    "bus",
    "node_id",
    "heartbeat_ms",
    "tpdo1_ms",
    "tpdo2_ms",
    "tpdo3_ms",
    "self_start",
    "battery_type",
    "rated_charge_current_a",
    "charge_current_scale_pct",
    "vendor_id",
    "product_code",
    "revision",
    "serial_number",
}


def load_battery_node_config(data: Mapping[str, Any], path: str = "canopen") -> BatteryNodeConfig:
    """Validate the ``[canopen]`` table; every missing key takes the default above."""
    unknown_keys(data, _KEYS, path)
    d = BatteryNodeConfig()
    return BatteryNodeConfig(
        node_id=integer(data, "node_id", path, d.node_id, 1, 127),
        heartbeat_ms=integer(data, "heartbeat_ms", path, d.heartbeat_ms, 0, _U16),
        tpdo1_ms=integer(data, "tpdo1_ms", path, d.tpdo1_ms, 0, _U16),
        tpdo2_ms=integer(data, "tpdo2_ms", path, d.tpdo2_ms, 0, _U16),
        tpdo3_ms=integer(data, "tpdo3_ms", path, d.tpdo3_ms, 0, _U16),
        self_start=boolean(data, "self_start", path, d.self_start),
        battery_type=integer(data, "battery_type", path, d.battery_type, 0, 0xFF),
        rated_charge_current_a=number(
            data, "rated_charge_current_a", path, d.rated_charge_current_a, 0.0, _U16 / 16
        ),
        charge_current_scale_pct=integer(
            data, "charge_current_scale_pct", path, d.charge_current_scale_pct, 0, 100
        ),
        vendor_id=integer(data, "vendor_id", path, d.vendor_id, 0, _U32),
        product_code=integer(data, "product_code", path, d.product_code, 0, _U32),
        revision=integer(data, "revision", path, d.revision, 0, _U32),
        serial_number=integer(data, "serial_number", path, d.serial_number, 0, _U32),
        bus=string(data, "bus", path, d.bus),
    )
