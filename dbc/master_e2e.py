"""E2E Profile 11 on the master DBC's safety frames, for every side that sends or reads them.

``EMS_StateRequest``, ``BMS_Status``, ``BMS_Limits``, ``ContactorCommand`` and
``ContactorFeedback`` (dbc/canbms_master.dbc) carry the Profile 11 header of ``dbc.e2e``:
the CRC in byte 0, the counter (0..14) in bits 8-11. Their data ID is their 11-bit frame
ID, as for the slave frames, so a frame replayed under another protected ID fails.
Senders encode the other signals with cantools (CRC field 0) and ``seal`` the bytes;
receivers ``intact``-check before decoding.
"""

from __future__ import annotations

from dbc import e2e

PROTECTED = (
    "EMS_StateRequest",
    "BMS_Status",
    "BMS_Limits",
    "ContactorCommand",
    "ContactorFeedback",
)


def data_id(frame_id: int) -> int:
    """The Profile 11 data ID of a protected master frame: its frame ID."""
    return int(e2e.data_id_of(frame_id))


def seal(frame_id: int, data: bytes | bytearray, counter: int) -> bytes:
    """``data`` with the counter (mod 15) in bits 8-11 and the CRC in byte 0."""
    return e2e.protect(data_id(frame_id), data, counter)


def intact(frame_id: int, data: bytes | bytearray) -> bool:
    """The CRC matches and the counter is a value Profile 11 sends (not 15)."""
    if len(data) < e2e.MIN_LENGTH:
        return False
    return e2e.crc8(data_id(frame_id), data) == data[e2e.CRC_BYTE] and (data[1] & 0x0F) < 15


def counter_of(data: bytes | bytearray) -> int:
    """The Profile 11 counter of a protected frame."""
    return data[1] & 0x0F


def next_counter(counter: int | None) -> int:
    """The counter after ``counter`` (0 first), counting 0..14."""
    return 0 if counter is None else (counter + 1) % e2e.COUNTER_MODULO
