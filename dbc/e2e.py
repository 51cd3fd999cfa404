"""End-to-end protection of slave frames: CRC-8 SAE J1850 over data ID + payload, alive counter.

Byte 0 of every slave frame is the CRC, bits 8-11 (low nibble of byte 1) the alive counter.
The CRC covers the 11-bit arbitration ID as two bytes (low byte first) and then payload
bytes 1..DLC-1, so a frame copied to another ID, truncated or corrupted fails the check,
and a slave that repeats a stale frame is caught by the counter. The batch functions work
on the ``(N, 64)`` payload arrays of ``controller.frames.FrameBatch``.
"""

from __future__ import annotations

import numpy as np

POLY = 0x1D
INIT = 0xFF
XOR_OUT = 0xFF
COUNTER_MODULO = 16
MIN_LENGTH = 2  # CRC byte + counter byte


def _make_table() -> np.ndarray:
    table = np.zeros(256, np.uint8)
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = ((crc << 1) ^ POLY) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
        table[byte] = crc
    return table


TABLE = _make_table()
_TABLE_LIST = TABLE.tolist()
MAX_DLC = 64


def _make_span_table() -> np.ndarray:
    """``SPAN[k, b]``: what byte ``b`` adds to the CRC register when ``k`` bytes follow it.

    The register update ``crc = TABLE[crc ^ byte]`` is linear over GF(2), so the CRC of a
    frame is the XOR of every byte's contribution, and a byte followed by ``k`` more bytes
    contributes ``TABLE`` applied ``k + 1`` times.
    """
    span = np.zeros((MAX_DLC + 1, 256), np.uint8)
    span[0] = TABLE
    for k in range(1, MAX_DLC + 1):
        span[k] = TABLE[span[k - 1]]
    return span


_SPAN = _make_span_table()
_SPAN_FLAT = _SPAN.ravel()
# per DLC: flat offset into _SPAN of the row of payload bytes 1 .. DLC-1
_ROW_OFFSETS = [256 * (dlc - 1 - np.arange(1, dlc, dtype=np.intp)) for dlc in range(MAX_DLC + 1)]


def crc8_bytes(data: bytes, crc: int = INIT) -> int:
    """Raw CRC-8 SAE J1850 of ``data`` (``b"123456789"`` -> 0x4B)."""
    for byte in data:
        crc = _TABLE_LIST[crc ^ byte]
    return crc ^ XOR_OUT


def crc8(arbitration_id: int, payload: bytes | bytearray) -> int:
    """CRC of one frame: over the ID (2 bytes, little-endian) and ``payload[1:]``."""
    data = bytes((arbitration_id & 0xFF, (arbitration_id >> 8) & 0xFF)) + bytes(payload[1:])
    return crc8_bytes(data)


def crc8_batch(ids: np.ndarray, data: np.ndarray, dlc: np.ndarray) -> np.ndarray:
    """CRC of N frames at once, with no loop over frames or byte positions.

    Each byte's contribution depends only on its value and on how many covered bytes follow
    it (see ``_make_span_table``), so rows of one DLC need one table gather and one XOR
    reduction; the loop runs over the distinct DLCs only. The initial value is folded into
    the first covered byte (the ID's low byte).
    """
    ids = np.asarray(ids, np.intp)
    data = np.asarray(data, np.uint8)
    covered = np.maximum(np.asarray(dlc, np.intp), 1)  # DLC 0 and 1 both cover the ID only
    rows = 256 * covered
    crc = _SPAN_FLAT.take(rows + ((ids & 0xFF) ^ INIT))
    crc ^= _SPAN_FLAT.take(rows - 256 + ((ids >> 8) & 0xFF))
    if covered.size and (covered == covered[0]).all():
        length = int(covered[0])
        if length > 1:
            crc ^= _payload_crc(data[:, 1:length], length)
        return crc ^ np.uint8(XOR_OUT)
    for length in np.unique(covered).tolist():
        if length > 1:
            sel = np.flatnonzero(covered == length)
            crc[sel] ^= _payload_crc(data[sel, 1:length], length)
    return crc ^ np.uint8(XOR_OUT)


def _payload_crc(payload: np.ndarray, length: int) -> np.ndarray:
    """Contribution of payload bytes 1 .. ``length``-1 of frames that all have that DLC."""
    return np.bitwise_xor.reduce(_SPAN_FLAT.take(payload + _ROW_OFFSETS[length]), axis=1)


def protect(arbitration_id: int, payload: bytes | bytearray, counter: int) -> bytes:
    """A protected copy of ``payload``: counter in bits 8-11, then the CRC in byte 0."""
    if len(payload) < MIN_LENGTH:
        raise ValueError(f"payload of 0x{arbitration_id:X} needs >= {MIN_LENGTH} bytes")
    frame = bytearray(payload)
    frame[1] = (frame[1] & 0xF0) | (counter % COUNTER_MODULO)
    frame[0] = crc8(arbitration_id, frame)
    return bytes(frame)


def protect_batch(
    ids: np.ndarray, data: np.ndarray, dlc: np.ndarray, counters: np.ndarray
) -> np.ndarray:
    """Protected copy of N payloads (``(N, 64)`` uint8), as ``protect`` row by row."""
    out = np.array(data, np.uint8, copy=True)
    counters = np.asarray(counters).astype(np.int64) % COUNTER_MODULO
    out[:, 1] = (out[:, 1] & 0xF0) | counters.astype(np.uint8)
    out[:, 0] = crc8_batch(ids, out, dlc)
    return out


def counters(data: np.ndarray) -> np.ndarray:
    """Alive counter of N payloads."""
    return np.asarray(data, np.uint8)[:, 1] & 0x0F


def verify_batch(ids: np.ndarray, data: np.ndarray, dlc: np.ndarray) -> np.ndarray:
    """True where a frame's CRC byte matches; frames too short to carry one fail."""
    data = np.asarray(data, np.uint8)
    dlc = np.asarray(dlc)
    return (crc8_batch(ids, data, dlc) == data[:, 0]) & (dlc >= MIN_LENGTH)
