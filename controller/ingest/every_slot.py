"""The steady batch's write when the batch holds a frame of every mapped slot.

A batch of a second or so on a healthy bus carries every slot, so the newest frame of
each is known by slot alone: every mapped value of every slot is one entry of flat tables
built once, in slot order (where its field sits, how it scales, which element it feeds,
its validity flag). The write gathers each slot's newest frame, decodes all entries with
one operation per step over contiguous arrays and writes them; no per-frame table gather,
no padding. Entries with a validity flag come first; their flags are decoded with the
values, after them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from controller.ingest.slot_columns import WORD_BITS, WORDS, Column
from controller.measurements import Measurements
from dbc.masks import every

_DOUBLE = 2  # words per frame row, then its byte-swapped words, where a field needs them


class EverySlot:
    """Flat tables of every mapped value of every mapped slot, for `write`.

    Per decoded entry (values, then the flags of those that have one) as 64-bit words: the
    index of its word and of its next word in the gathered rows' words, shift, next shift,
    mask and sign bit; as floats its scale and offset. Per value: its unit scale, its
    element and its slot's rank; per flag: the invalid value.
    """

    def __init__(self, shapes: Sequence[tuple[tuple[Column, ...], np.ndarray]]) -> None:
        flagged: list[tuple[int, Column, int]] = []  # (rank, column, element)
        plain: list[tuple[int, Column, int]] = []
        rank = 0
        for columns, members in shapes:
            for member in members:
                for column, element in zip(columns, member, strict=True):
                    (flagged if column.flag is not None else plain).append(
                        (rank, column, int(element))
                    )
                rank += 1
        values = flagged + plain
        self.ranks = rank
        self._flags = len(flagged)
        decoded = [(r, c.value, c.field) for r, c, _ in values]
        decoded += [(r, c.flag[0], c.flag[1]) for r, c, _ in flagged if c.flag is not None]
        self.swapped = any(p.word >= WORDS or p.next_word >= WORDS for _, p, _ in decoded)
        per_row = _DOUBLE * WORDS if self.swapped else WORDS
        self._word = np.array([r * per_row + p.word for r, p, _ in decoded], np.intp)
        self._next_word = np.array([r * per_row + p.next_word for r, p, _ in decoded], np.intp)
        self._shift = _words([p.shift for _, p, _ in decoded])
        self._next_shift = _words([p.next_shift for _, p, _ in decoded])
        self.two_words = bool((self._next_shift < WORD_BITS).any())
        self._mask = _words([f.mask for _, _, f in decoded])
        self._sign = _words([f.sign for _, _, f in decoded])
        self.signed = bool(self._sign.any())
        self._scale = np.array([f.scale for _, _, f in decoded], np.float64)
        self._offset = np.array([f.offset for _, _, f in decoded], np.float64)
        self.unscaled = bool((self._scale == 1).all())  # times 1.0 changes no value
        # adding a zero offset changes nothing unless a negative scale made a -0.0
        self.offsets = bool(self._offset.any() or (self._scale < 0).any())
        self._unit = np.array([c.unit for _, c, _ in values], np.float64)
        self.scaled = bool((self._unit != 1).any())
        self._invalid = np.array([c.flag[2] for _, c, _ in flagged if c.flag], np.float64)
        self._elements = np.array([e for _, _, e in values], np.intp)
        self._rank = np.array([r for r, _, _ in values], np.intp)
        self.finite = all(  # no raw value can give an infinite or NaN value
            math.isfinite((abs(c.field.scale) * 2.0**64 + abs(c.field.offset)) * c.unit)
            for _, c, _ in values
        )

    def write(
        self,
        words: np.ndarray,
        rows: np.ndarray,
        times: np.ndarray,
        meas: Measurements,
        all_newer: bool,
    ) -> int:
        """Decode frames ``rows`` (the newest of each slot, by rank) of ``words`` (N, 8) and
        write each value where its element holds nothing newer; returns the elements
        written."""
        gathered = words.take(rows, axis=0)
        if self.swapped:
            gathered = np.concatenate((gathered, gathered.byteswap()), axis=1)
        flat = gathered.reshape(-1)
        raw = flat.take(self._word)
        raw >>= self._shift
        if self.two_words:
            raw |= flat.take(self._next_word) << self._next_shift
        raw &= self._mask
        if self.signed:
            raw ^= self._sign
            raw -= self._sign
            raw = raw.view(np.int64)
        value = raw.astype(np.float64)
        if not self.unscaled:
            value *= self._scale
        if self.offsets:
            value += self._offset
        elem = self._elements
        measured = value[: elem.shape[0]]
        if self.scaled:
            measured *= self._unit
        good = np.ones(elem.shape[0], bool)
        np.not_equal(value[elem.shape[0] :], self._invalid, out=good[: self._flags])
        if not self.finite:
            good &= np.isfinite(measured)
        when = times.take(rows.take(self._rank))
        written = elem.shape[0]
        if not all_newer:
            newer = when >= meas.updated_at.take(elem)
            if not every(newer):
                written = np.count_nonzero(newer)
                elem, measured, good, when = elem[newer], measured[newer], good[newer], when[newer]
        meas.value[elem] = measured
        meas.reported_valid[elem] = good
        meas.updated_at[elem] = when
        return int(written)


def _words(values: Sequence[int]) -> np.ndarray:
    return np.array(values, np.uint64)
