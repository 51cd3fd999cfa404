"""CANopen CiA 418 battery node: object dictionary, live values, node runtime, EDS export.

This is shell code: `canopen` owns its bus I/O (network, notifier). The values it publishes
come from the deterministic `values.live_values`; its own transmissions are timed by the
``now`` passed to `BatteryNode.update`.
"""

from controller.canopen_node.config import BatteryNodeConfig, load_battery_node_config
from controller.canopen_node.dictionary import build_dictionary
from controller.canopen_node.eds import export_eds
from controller.canopen_node.node import BatteryNode
from controller.canopen_node.values import RequestParams, StatusBit, live_values

__all__ = [
    "BatteryNode",
    "BatteryNodeConfig",
    "RequestParams",
    "StatusBit",
    "build_dictionary",
    "export_eds",
    "live_values",
    "load_battery_node_config",
]
