"""The steady batch's write when the batch holds a frame of every mapped slot.

A batch of a second or so on a healthy bus carries every slot, so the newest frame of each
is known by slot alone: every mapped value of every slot is one entry of flat tables built
once, in the order of the elements they feed (where its field sits, how it scales, which
element it feeds, its validity flag). The write gathers each slot's newest frame, decodes
all entries with one operation per step over contiguous arrays and writes them: no
per-frame table gather, no padding. The values' validity flags are decoded with them,
after them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from controller.ingest.fields import Field
from controller.ingest.slot_columns import WORD_BITS, WORDS, Column, Place, Scaling
from controller.measurements import Measurements
from dbc.masks import every

_DOUBLE = 2  # words per frame row, then its byte-swapped words, where a field needs them
_NO_FLAG = Place(0, 0, 0, WORD_BITS)  # where a value without a validity flag reads one
_EMPTY = Field(False, 0, 0, 0, 1.0, 0.0)  # an empty field: reads 0


class EverySlot:
    """Flat tables of every mapped value of every mapped slot, for `write`, in the order of
    the elements they feed (so that a set of elements side by side is written as a slice).

    Per decoded entry (values, then their flags) as 64-bit words: the index of its word and
    of its next word in the gathered rows' words, shift, next shift and mask, and for a
    signed read the shifts that bring the field to the top of the word and back with its
    sign, and the bits to keep (all for a signed field); as floats its scale and offset.
    Per value: its unit scale, its element and its slot's rank, and its flag's invalid value
    (a value without a flag reads an empty field as its flag, never equal to NaN).
    """

    def __init__(self, shapes: Sequence[tuple[tuple[Column, ...], np.ndarray]]) -> None:
        slots = [(columns, member) for columns, members in shapes for member in members]
        self.ranks = len(slots)
        values = sorted(  # (element, rank, column)
            (int(element), rank, column)
            for rank, (columns, member) in enumerate(slots)
            for column, element in zip(columns, member, strict=True)
        )
        flags = [c.flag or (_NO_FLAG, _EMPTY, math.nan) for _, _, c in values]
        decoded = [(r, c.value, c.field) for _, r, c in values]
        decoded += [(r, p, f) for (_, r, _), (p, f, _) in zip(values, flags, strict=True)]
        self.swapped = any(p.word >= WORDS or p.next_word >= WORDS for _, p, _ in decoded)
        per_row = _DOUBLE * WORDS if self.swapped else WORDS
        self._word = np.array([r * per_row + p.word for r, p, _ in decoded], np.intp)
        self._next_word = np.array([r * per_row + p.next_word for r, p, _ in decoded], np.intp)
        self._shift = _words([p.shift for _, p, _ in decoded])
        self._next_shift = _words([p.next_shift for _, p, _ in decoded])
        self.two_words = bool((self._next_shift < WORD_BITS).any())
        self._mask = _words([f.mask for _, _, f in decoded])
        self.signed = any(f.sign for _, _, f in decoded)
        # a signed read: the field to the top of the word, then back down with its sign
        high = [WORD_BITS - f.mask.bit_length() for _, _, f in decoded]
        # (a field across two words is first read to bit 0: no single left shift reads it)
        left = [max(h - p.shift, 0) for h, (_, p, _) in zip(high, decoded, strict=True)]
        self._left = _words(left)
        self._high = _words(high)
        self._down = np.array(high, np.int64)  # the same, to shift the signed words
        self._keep = np.array([-1 if f.sign else f.mask for _, _, f in decoded], np.int64)
        self._scale = np.array([f.scale for _, _, f in decoded], np.float64)
        self._offset = np.array([f.offset for _, _, f in decoded], np.float64)
        self._unit = np.array([c.unit for _, _, c in values], np.float64)
        self.scaling = Scaling.of(self._scale, self._offset, self._unit, (c for _, _, c in values))
        self._invalid = np.array([invalid for _, _, invalid in flags], np.float64)
        elements = np.array([e for e, _, _ in values], np.intp)
        first = int(elements[0]) if elements.size else 0
        side_by_side = np.array_equal(elements, np.arange(first, first + elements.size))
        self._elements = slice(first, first + elements.size) if side_by_side else elements
        self._size = elements.size
        self._rank = np.array([r for _, r, _ in values], np.intp)

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
        if self.two_words:
            raw >>= self._shift
            raw |= flat.take(self._next_word) << self._next_shift
            if self.signed:
                raw <<= self._high
        elif self.signed:
            raw <<= self._left
        else:
            raw >>= self._shift
        if self.signed:
            raw = raw.view(np.int64)
            raw >>= self._down
            raw &= self._keep
        else:
            raw &= self._mask
        value = raw.astype(np.float64)
        scaling = self.scaling
        if scaling.scale:
            value *= self._scale
        if scaling.offset:
            value += self._offset
        size = self._size
        measured = value[:size]
        if scaling.unit:
            measured *= self._unit
        good = value[size:] != self._invalid
        if not scaling.finite:
            good &= np.isfinite(measured)
        when = times.take(rows.take(self._rank))
        elem = self._elements
        if not all_newer:
            newer = when >= meas.updated_at[elem]
            if not every(newer):
                if isinstance(elem, slice):
                    elem = np.arange(elem.start, elem.stop)
                elem = elem[newer]
                measured, good, when = measured[newer], good[newer], when[newer]
                size = elem.shape[0]
        meas.value[elem] = measured
        meas.reported_valid[elem] = good
        meas.updated_at[elem] = when
        return int(size)


def _words(values: Sequence[int]) -> np.ndarray:
    return np.array(values, np.uint64)
