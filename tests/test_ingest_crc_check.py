"""The steady batch's whole-batch CRC checks agree with the Profile 11 CRC frame by frame.

Rows of random lengths and data IDs (some without a CRC), frames of random rows with their
genuine CRC byte or one with bits flipped: both checks (word parity where the protected
rows share one length of up to 8 bytes, the byte table otherwise) pass a batch exactly
when every protected frame's CRC byte equals ``dbc.e2e.crc8`` of its data ID and payload.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from controller.frames import MAX_PAYLOAD
from controller.ingest.crc_check import ByteTableCrc, CrcRow, WordParityCrc, crc_check
from dbc import e2e


@st.composite
def _rows_and_frames(draw, longest: int, one_length: bool):
    """(rows, frame rows, payloads, every protected CRC genuine)."""
    length = draw(st.integers(e2e.MIN_LENGTH, longest))
    rows = [
        CrcRow(
            length if one_length else draw(st.integers(e2e.MIN_LENGTH, longest)),
            draw(st.one_of(st.none(), st.integers(0, 0xFFFF))),
        )
        for _ in range(draw(st.integers(1, 5)))
    ]
    n = draw(st.integers(1, 12))
    row = np.array(draw(st.lists(st.integers(0, len(rows) - 1), min_size=n, max_size=n)))
    data = np.zeros((n, MAX_PAYLOAD), np.uint8)
    genuine = True
    for i, r in enumerate(row.tolist()):
        size = rows[r].length
        data[i, :size] = np.frombuffer(draw(st.binary(min_size=size, max_size=size)), np.uint8)
        if rows[r].data_id is None:
            continue
        data[i, 0] = e2e.crc8(rows[r].data_id, data[i, :size].tobytes())
        flip = draw(st.sampled_from([0, 0, 0, 1, 0x80, 0x5A]))
        data[i, 0] ^= flip
        genuine &= flip == 0
    return rows, row, data, genuine


def _check(crc: WordParityCrc | ByteTableCrc, row: np.ndarray, data: np.ndarray) -> bool:
    return crc.ok(data, crc.columns[:, row])


@given(_rows_and_frames(8, one_length=True))
def test_word_parity_passes_exactly_the_genuine_crcs(case) -> None:
    rows, row, data, genuine = case
    crc = crc_check(rows)
    assert isinstance(crc, WordParityCrc) or all(r.data_id is None for r in rows)
    assert _check(crc, row, data) == genuine


@given(_rows_and_frames(MAX_PAYLOAD, one_length=False))
def test_byte_table_passes_exactly_the_genuine_crcs(case) -> None:
    rows, row, data, genuine = case
    assert _check(ByteTableCrc(rows), row, data) == genuine
