"""The slave E2E profile written independently of ``dbc.e2e``, for tests to check against.

A textbook MSB-first CRC-8 with polynomial 0x1D, one bit at a time and without a table,
started at 0x00 and not inverted at the end (AUTOSAR E2E Profile 11), over the data ID low
byte, the data ID high byte and every payload byte but the CRC byte 0.
"""

from __future__ import annotations


def crc8_profile11(data: bytes) -> int:
    crc = 0x00
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1D) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def frame_crc(data_id: int, payload: bytes) -> int:
    """The CRC byte a frame with this data ID and payload must carry."""
    return crc8_profile11(bytes([data_id & 0xFF, data_id >> 8 & 0xFF]) + payload[1:])
