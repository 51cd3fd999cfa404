"""Whole-batch Profile 11 CRC checks of a steady batch, on tables built per message row.

The CRC is linear over GF(2) (see ``dbc.e2e.span_table``): each payload bit flips a fixed
set of CRC bits, and the data ID adds a constant. So CRC byte XOR the CRC of the rest is
zero exactly when, for each CRC bit j, the payload bits that flip bit j (the CRC byte's
own bit j among them) have the parity of the data ID's bit j. Where every protected
message has one length that fits one 64-bit word (classic frames), the check is eight
masks and a popcount per frame (`WordParityCrc`); otherwise each byte's part comes from
a table and the parts are XORed (`ByteTableCrc`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from dbc import e2e as profile

_WORD_BYTES = 8
_CRC_BITS = 8
_SPAN = profile.span_table()  # (65, 256): CRC part of a byte with k bytes after it


class CrcRow(NamedTuple):
    """One message row: its length and, where it has a CRC, its data ID (else None)."""

    length: int
    data_id: int | None


def _id_part(row: CrcRow) -> int:
    """The data ID's part of the CRC of a message of this length."""
    assert row.data_id is not None
    low, high = row.data_id & 0xFF, row.data_id >> 8 & 0xFF
    return int(_SPAN[row.length, low] ^ _SPAN[row.length - 1, high])


class WordParityCrc:
    """CRC check of payloads that fit one 64-bit word, where every message with a CRC has
    the same length: the mask of the payload bits that flip each CRC bit (the same for all
    of them), and per row the data ID's part to XOR into the CRC byte first and whether
    the row has a CRC at all (all ones or zero).

    ``columns`` (one column per row) go into the caller's per-row table, so that one
    gather of that table fetches them with the rest.
    """

    def __init__(self, rows: Sequence[CrcRow], length: int) -> None:
        masks = [1 << j for j in range(_CRC_BITS)]  # the CRC byte's own bit j
        for k in range(1, length):
            for bit in range(8):
                flips = int(_SPAN[length - 1 - k, 1 << bit])
                for j in range(_CRC_BITS):
                    if flips >> j & 1:
                        masks[j] |= 1 << (8 * k + bit)
        self._masks = np.array(masks, np.uint64)[:, None]
        checked = [row.data_id is not None for row in rows]
        self.columns = np.array(
            [
                [_id_part(row) if check else 0 for row, check in zip(rows, checked, strict=True)],
                [-1 if check else 0 for check in checked],
            ],
            np.int64,
        )

    def ok(self, data: np.ndarray, columns: np.ndarray) -> bool:
        """Every frame's CRC matches (``data``: the payloads as bytes, C-contiguous rows
        of whole words; ``columns``: `columns` gathered for each frame's message row)."""
        id_part, checked = columns.view(np.uint64)
        words = data.view("<u8")[:, 0]  # byte k at bits 8k to 8k + 7
        covered = (words ^ id_part) & checked
        parity = np.bitwise_count(covered & self._masks)
        parity &= 1
        return np.count_nonzero(parity) == 0


_FOLD_SHIFTS = tuple(np.uint64(bits) for bits in (32, 16, 8))  # byte 0 XORs in all eight
# rows of the byte table: the span rows, then a zero row (bytes the CRC does not cover),
# then the CRC byte's row: the byte itself
_ZERO_ROW = _SPAN.shape[0]
_CRC_BYTE_ROW = _ZERO_ROW + 1
_BYTE_PARTS = np.concatenate(
    (_SPAN, np.zeros((1, 256), np.uint8), np.arange(256, dtype=np.uint8)[None, :])
).ravel()


class ByteTableCrc:
    """CRC check of longer payloads: per payload length, the table row of each byte over a
    whole number of 64-bit words; the parts of a frame's bytes XOR to its data ID's part.

    Its two columns in the caller's per-row table: the row's length (0 for a row without
    a CRC, whose bytes all read the zero row) and its data ID's part. Rows share the byte
    rows of their length, so that table stays small whatever the number of messages.
    """

    def __init__(self, rows: Sequence[CrcRow]) -> None:
        longest = max((row.length for row in rows), default=1)
        self._width = max(_WORD_BYTES, 1 << (longest - 1).bit_length())
        table = np.full((longest + 1, self._width), _ZERO_ROW, np.intp)
        for length in {row.length for row in rows if row.data_id is not None}:
            table[length, 0] = _CRC_BYTE_ROW
            table[length, 1:length] = length - 1 - np.arange(1, length)
        self._rows = table * 256
        self.columns = np.array(
            [
                [row.length if row.data_id is not None else 0 for row in rows],
                [_id_part(row) if row.data_id is not None else 0 for row in rows],
            ],
            np.int64,
        )

    def ok(self, data: np.ndarray, columns: np.ndarray) -> bool:
        """Every frame's CRC matches (``data``: the payloads as bytes; ``columns``:
        `columns` gathered for each frame's message row)."""
        width = self._width
        part = _BYTE_PARTS.take(data[:, :width] + self._rows.take(columns[0], axis=0))
        words = part.view("<u8")  # XOR the 64-bit words, then the eight bytes of the word
        folded = words[:, 0].copy()
        for k in range(1, words.shape[1]):
            folded ^= words[:, k]
        for shift in _FOLD_SHIFTS:
            folded ^= folded >> shift
        return np.count_nonzero(folded.view(np.uint8)[::_WORD_BYTES] != columns[1]) == 0


def crc_check(rows: Sequence[CrcRow]) -> WordParityCrc | ByteTableCrc:
    """The cheaper check for these rows: word parity where every message with a CRC has
    one length that fits one word."""
    lengths = {row.length for row in rows if row.data_id is not None}
    if len(lengths) == 1 and (length := lengths.pop()) <= _WORD_BYTES:
        return WordParityCrc(rows, length)
    return ByteTableCrc(rows)
