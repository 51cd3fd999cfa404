"""AUTOSAR E2E Profile 11 (variant 11A, data ID mode BOTH) for any frame with its header.

The header sits at the start of the frame: byte 0 is the CRC, bits 8-11 (low nibble of
byte 1) the alive counter, which counts 0..14 and wraps to 0 (15 never appears). The CRC
is CRC-8 SAE J1850 (polynomial 0x1D, not reflected) with start value 0x00 and no final
XOR, the net effect of the profile calling the CRC library's ``Crc_CalculateCRC8`` as a
continuation, over the data ID low byte, the data ID high byte, then every payload byte
except the CRC byte (bytes 1..DLC-1). The 16-bit data ID is never sent: a frame copied to
another ID (another data ID), truncated or corrupted fails the check.

A message's data ID is configured per message; the slave frames use the low 16 bits of
their arbitration ID (``data_id_of``). The batch functions work on the ``(N, 64)`` payload
arrays of ``controller.frames.FrameBatch`` with one data ID per row. The receiver's
counter check is ``dbc.e2e_counter``.
"""

from __future__ import annotations

import numpy as np

from dbc.masks import every, positions

POLY = 0x1D
START = 0x00
XOR_OUT = 0x00
COUNTER_MODULO = 15  # the alive counter counts 0..14
COUNTER_BIT = 8  # bits 8-11
CRC_BYTE = 0
MIN_LENGTH = 2  # CRC byte + counter byte
MAX_DLC = 64


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


def span_table() -> np.ndarray:
    """``SPAN[k, b]``: what byte ``b`` adds to the CRC register when ``k`` bytes follow it.

    The register update ``crc = TABLE[crc ^ byte]`` is linear over GF(2) and the start
    value is 0, so the CRC of a frame is the XOR of every byte's contribution, and a byte
    followed by ``k`` more bytes contributes ``TABLE`` applied ``k + 1`` times.
    """
    span = np.zeros((MAX_DLC + 1, 256), np.uint8)
    span[0] = TABLE
    for k in range(1, MAX_DLC + 1):
        span[k] = TABLE[span[k - 1]]
    return span


_SPAN_FLAT = span_table().ravel()
# per DLC: flat offset into the span table of the row of payload bytes 1 .. DLC-1
_ROW_OFFSETS = [256 * (dlc - 1 - np.arange(1, dlc, dtype=np.intp)) for dlc in range(MAX_DLC + 1)]


def data_id_of(arbitration_id: int | np.ndarray) -> int | np.ndarray:
    """The data ID of a slave frame: the low 16 bits of its arbitration ID."""
    return arbitration_id & 0xFFFF


def crc8_bytes(data: bytes, crc: int = START) -> int:
    """The profile's CRC of ``data`` (``b"123456789"`` -> 0x37)."""
    for byte in data:
        crc = _TABLE_LIST[crc ^ byte]
    return crc ^ XOR_OUT


def crc8(data_id: int, payload: bytes | bytearray) -> int:
    """CRC byte of one frame: over the data ID (low byte, high byte) and ``payload[1:]``."""
    data_id = int(data_id)
    return crc8_bytes(bytes((data_id & 0xFF, (data_id >> 8) & 0xFF)) + bytes(payload[1:]))


def crc8_batch(data_ids: np.ndarray, data: np.ndarray, dlc: np.ndarray) -> np.ndarray:
    """CRC of N frames at once, with no loop over frames or byte positions.

    Each byte's contribution depends only on its value and on how many covered bytes follow
    it (see ``span_table``), so rows of one DLC need one table gather and one XOR
    reduction; the loop runs over the distinct DLCs only.
    """
    data_ids = np.asarray(data_ids, np.intp)
    data = np.asarray(data, np.uint8)
    covered = np.maximum(np.asarray(dlc, np.intp), 1)  # DLC 0 and 1 both cover the ID only
    rows = 256 * covered
    crc = _SPAN_FLAT.take(rows + (data_ids & 0xFF))
    crc ^= _SPAN_FLAT.take(rows - 256 + ((data_ids >> 8) & 0xFF))
    if covered.size and every(covered == covered[0]):
        length = int(covered[0])
        if length > 1:
            crc ^= _payload_crc(data[:, 1:length], length)
        return crc ^ np.uint8(XOR_OUT)
    for length in np.unique(covered).tolist():
        if length > 1:
            sel = positions(covered == length)
            crc[sel] ^= _payload_crc(data[sel, 1:length], length)
    return crc ^ np.uint8(XOR_OUT)


def _payload_crc(payload: np.ndarray, length: int) -> np.ndarray:
    """Contribution of payload bytes 1 .. ``length``-1 of frames that all have that DLC."""
    return np.bitwise_xor.reduce(_SPAN_FLAT.take(payload + _ROW_OFFSETS[length]), axis=1)


def protect(data_id: int, payload: bytes | bytearray, counter: int) -> bytes:
    """A protected copy of ``payload``: counter (modulo 15) in bits 8-11, then the CRC."""
    if len(payload) < MIN_LENGTH:
        raise ValueError(f"payload of data ID 0x{data_id:X} needs >= {MIN_LENGTH} bytes")
    frame = bytearray(payload)
    frame[1] = (frame[1] & 0xF0) | (counter % COUNTER_MODULO)
    frame[0] = crc8(data_id, frame)
    return bytes(frame)


def protect_batch(
    data_ids: np.ndarray, data: np.ndarray, dlc: np.ndarray, counters: np.ndarray
) -> np.ndarray:
    """Protected copy of N payloads (``(N, 64)`` uint8), as ``protect`` row by row."""
    out = np.array(data, np.uint8, copy=True)
    counters = np.asarray(counters).astype(np.int64) % COUNTER_MODULO
    out[:, 1] = (out[:, 1] & 0xF0) | counters.astype(np.uint8)
    out[:, 0] = crc8_batch(data_ids, out, dlc)
    return out


def counters(data: np.ndarray) -> np.ndarray:
    """Alive counter of N payloads (15 is not a valid Profile 11 counter)."""
    return np.asarray(data, np.uint8)[:, 1] & 0x0F


def verify_batch(data_ids: np.ndarray, data: np.ndarray, dlc: np.ndarray) -> np.ndarray:
    """True where a frame's CRC byte matches and its counter is 0..14.

    Frames too short to carry the header fail.
    """
    data = np.asarray(data, np.uint8)
    dlc = np.asarray(dlc)
    crc_good = crc8_batch(data_ids, data, dlc) == data[:, CRC_BYTE]
    return crc_good & (counters(data) < COUNTER_MODULO) & (dlc >= MIN_LENGTH)
