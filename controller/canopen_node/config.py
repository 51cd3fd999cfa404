"""Configuration of the CiA 418 battery node (the ``[canopen]`` table).

Periods are in milliseconds because the object dictionary stores them so (1017h, the TPDO
event timers); the values here are the start-up defaults, a service tool may change them
over SDO while the node runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from controller.config.declare import load, setting

_U16 = 0xFFFF
_U32 = 0xFFFFFFFF


@dataclass(frozen=True)
class BatteryNodeConfig:
    """Start-up values of the battery node's object dictionary."""

    node_id: int = setting(1, ge=1, le=127, doc="CANopen node ID")
    heartbeat_ms: int = setting(
        500, ge=0, le=_U16, unit="ms", doc="1017h producer heartbeat time (0: off)"
    )
    tpdo1_ms: int = setting(1000, ge=0, le=_U16, unit="ms", doc="6010h temperature + 6000h status")
    tpdo2_ms: int = setting(1000, ge=0, le=_U16, unit="ms", doc="6060h voltage")
    tpdo3_ms: int = setting(
        200, ge=0, le=_U16, unit="ms", doc="6070h charge current request + 6081h SOC"
    )
    self_start: bool = setting(True, doc="enter OPERATIONAL after boot-up without an NMT master")
    battery_type: int = setting(
        0, ge=0, le=0xFF, doc="6020h sub 1, as the charger's profile numbers it"
    )
    rated_charge_current_a: float = setting(
        100.0, ge=0.0, le=_U16 / 16, unit="A",
        doc="6020h sub 3; default of the request cap 2100h sub 2",
    )  # fmt: skip
    charge_current_scale_pct: int = setting(
        100, ge=0, le=100, unit="%", doc="2100h sub 1: request = CCL x scale"
    )
    vendor_id: int = setting(0, ge=0, le=_U32, doc="1018h sub 1 (0: no CiA vendor ID assigned)")
    product_code: int = setting(418, ge=0, le=_U32, doc="1018h sub 2")
    revision: int = setting(1, ge=0, le=_U32, doc="1018h sub 3")
    serial_number: int = setting(0, ge=0, le=_U32, doc="1018h sub 4")
    bus: str = setting("vehicle", doc="the configured bus the node lives on")
    allow_remote_config: bool = setting(
        False,
        doc="SDO writes to the communication area (1000h-1FFFh: heartbeat, PDO parameters "
        "and mappings, 1016h) are accepted, in PRE-OPERATIONAL only; false: refused always",
    )
    charger_node_id: int = setting(
        0, ge=0, le=127,
        doc="1016h sub 1: the charger whose heartbeat the node consumes (0: none); without "
        "it for charger_heartbeat_ms the charge current request 6070h is 0",
    )  # fmt: skip
    charger_heartbeat_ms: int = setting(
        1500, ge=1, le=_U16, unit="ms", doc="1016h sub 1: consumer heartbeat time"
    )


def load_battery_node_config(data: Mapping[str, Any], path: str = "canopen") -> BatteryNodeConfig:
    """Validate the ``[canopen]`` table; every missing key takes the default above."""
    return load(BatteryNodeConfig, data, path)
