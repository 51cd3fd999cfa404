"""The slave E2E profile written independently of ``dbc.e2e``, for tests to check against.

A textbook MSB-first CRC-8 SAE J1850 (poly 0x1D, init 0xFF, final XOR 0xFF), one bit at a
time and without a table, over the data ID (11-bit ID as two bytes, little-endian) and every
payload byte but the CRC byte 0.
"""

from __future__ import annotations


def crc8_j1850(data: bytes) -> int:
    crc = 0xFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1D) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc ^ 0xFF


def frame_crc(arbitration_id: int, payload: bytes) -> int:
    """The CRC byte a frame with this ID and payload must carry."""
    return crc8_j1850(bytes([arbitration_id & 0xFF, arbitration_id >> 8 & 0xFF]) + payload[1:])
