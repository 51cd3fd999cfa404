"""The numeric slave-bus contract: IDs, periods and slot geometry, without cantools.

The DBC generator (``dbc.slave_protocol``) builds its messages from these numbers, and the
simulator and the controller's vectorised decoder use the same numbers, so all three agree
by construction; the tests check them against cantools reading the generated DBC.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dbc.topology import Topology

BAUDRATE = 500_000

BALANCING_BASE_ID = 0x140
CELL_VOLTAGES_BASE_ID = 0x200
TEMPERATURES_BASE_ID = 0x280
MODULE_STATUS_BASE_ID = 0x300

# 29-bit scheme (Topology.extended_ids): EXTENDED_BASE_ID | kind << 12 | module. The low
# 16 bits (kind, module) are unique on the bus, so the E2E data ID (the low 16 bits of the
# arbitration ID) still tells every message apart. The 11-bit part of the base, 0x700,
# ranks slave frames below the standard IDs of the current sensor and contactor driver.
EXTENDED_BASE_ID = 0x1C00_0000
EXTENDED_MODULE_BITS = 12
BALANCING_KIND = 0x1
CELL_VOLTAGES_KIND = 0x2
TEMPERATURES_KIND = 0x3
MODULE_STATUS_KIND = 0x4

BALANCING_PERIOD_MS = 500
CELL_VOLTAGES_PERIOD_MS = 100
TEMPERATURES_PERIOD_MS = 1000
MODULE_STATUS_PERIOD_MS = 100

HEADER_BITS = 16  # byte 0 CRC, bits 8-11 counter, bits 12-15 mux (or reserved)
FD_LENGTHS = (8, 12, 16, 20, 24, 32, 48, 64)


@dataclass(frozen=True)
class SlotLayout:
    """Where the per-cell or per-sensor slots sit in a multiplexed frame.

    Slot ``k`` starts at ``first_bit + k * slot_bits`` (little-endian bit numbering); its
    low ``value_bits`` carry the raw value, the next bit the invalid flag. Vectorised
    decoders use this instead of walking cantools signals frame by frame.
    """

    per_frame: int
    first_bit: int
    slot_bits: int
    value_bits: int
    scale: float
    signed: bool
    unit: str

    def start(self, slot: int | np.ndarray) -> int | np.ndarray:
        return self.first_bit + slot * self.slot_bits

    @property
    def raw_min(self) -> int:
        return -(1 << (self.value_bits - 1)) if self.signed else 0

    @property
    def raw_max(self) -> int:
        return (1 << (self.value_bits - 1 if self.signed else self.value_bits)) - 1


CELL_SLOTS = {
    False: SlotLayout(3, HEADER_BITS, 16, 15, 0.0002, False, "V"),
    True: SlotLayout(32, HEADER_BITS, 15, 14, 0.0004, False, "V"),
}
SENSOR_SLOTS = {
    False: SlotLayout(3, HEADER_BITS, 16, 15, 0.1, True, "degC"),
    True: SlotLayout(31, HEADER_BITS, 16, 15, 0.1, True, "degC"),
}


def cell_layout(topology: Topology) -> SlotLayout:
    return CELL_SLOTS[topology.fd]


def sensor_layout(topology: Topology) -> SlotLayout:
    return SENSOR_SLOTS[topology.fd]


def slave_node(module: int) -> str:
    return f"Slave_M{module:02}"


def _frame_id(base: int, kind: int, module: int, extended: bool) -> int:
    if extended:
        return EXTENDED_BASE_ID | kind << EXTENDED_MODULE_BITS | module
    return base + module


def balancing_id(module: int, extended: bool = False) -> int:
    return _frame_id(BALANCING_BASE_ID, BALANCING_KIND, module, extended)


def cell_voltages_id(module: int, extended: bool = False) -> int:
    return _frame_id(CELL_VOLTAGES_BASE_ID, CELL_VOLTAGES_KIND, module, extended)


def temperatures_id(module: int, extended: bool = False) -> int:
    return _frame_id(TEMPERATURES_BASE_ID, TEMPERATURES_KIND, module, extended)


def module_status_id(module: int, extended: bool = False) -> int:
    return _frame_id(MODULE_STATUS_BASE_ID, MODULE_STATUS_KIND, module, extended)
