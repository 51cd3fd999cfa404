"""The steady batch's write: the newest frame of each mapped slot, decoded from 64-bit words.

Slots whose mapped columns sit at the same places and scale alike (the cell-voltage frames
of every module, say) share one shape: per column where the field sits in the payload's
64-bit words and how it scales. A batch sorts its frames by slot once and keeps the newest
of each. A small batch decodes them all in one pass, each frame gathering its shape's row
of a small table, padded to the widest shape; a large one decodes each shape present in a
pass of its own on exactly its columns, where the per-frame gathers and the padding would
cost more than the passes. The loop runs over the shapes present, which the DBC bounds,
never over frames, modules or signals.

A little-endian field is a shift and mask of one word or of two neighbouring ones. A
Motorola field is the same in the payload's byte-swapped words, which follow the words.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from controller.frames import MAX_PAYLOAD
from controller.ingest.fields import Field, field_of
from controller.ingest.layout import MessageLayout
from controller.ingest.routing import Routes
from controller.measurements import Measurements
from dbc.masks import every, positions

_WORD_BITS = 64
_WORD_BYTES = 8
_WORDS = MAX_PAYLOAD // _WORD_BYTES  # the byte-swapped words are numbered after these
_SCAN_PER_GATHER = 8  # elements scanned for a max at the cost of one gathered and compared
_ONE_PASS = 4096  # frames times columns up to which one pass over all shapes costs less


class _Place(NamedTuple):
    """Where a field sits: ``(words[word] >> shift | words[next_word] << next_shift)``;
    a next shift of 64 shifts everything out (a field inside one word)."""

    word: int
    shift: int
    next_word: int
    next_shift: int


def _place(field: Field, length: int) -> _Place:
    """A little-endian field counts from bit 0 of word 0. Bit b of a Motorola field's
    big-endian reading is bit b % 8 of payload byte ``length - 1 - b // 8``, which that
    byte's byte-swapped word holds at ``8 * (7 - byte % 8) + b % 8``; its more
    significant bits go on in the byte-swapped word before it."""
    if field.big:
        byte = length - 1 - field.shift // _WORD_BYTES
        word = _WORDS + byte // _WORD_BYTES
        shift = _WORD_BYTES * (7 - byte % _WORD_BYTES) + field.shift % _WORD_BYTES
        higher = word - 1
    else:
        word, shift = divmod(field.shift, _WORD_BITS)
        higher = word + 1
    if shift + field.mask.bit_length() > _WORD_BITS:
        return _Place(word, shift, higher, _WORD_BITS - shift)
    return _Place(word, shift, word, _WORD_BITS)


class _Column(NamedTuple):
    """One mapped value column of a slot: its field, unit scale and validity flag."""

    value: _Place
    field: Field
    unit: float
    flag: tuple[_Place, Field, float] | None  # the flag's place, field and invalid value


class _Group:
    """Shapes decoded in one pass, and their member slots.

    ``table[:, v, c]`` holds for shape v and column c (values, then a flag column per value
    where some shape has flags), as 64-bit words: shift, mask, sign bit, word, next word,
    next shift, then as floats the scale, the offset and the unit scale of a value column
    or the invalid value of a flag column (NaN where the value has no flag: never equal).
    A shape with fewer values than the widest repeats its first column in the rest, and
    its members their first element: the same value written twice to the same element.
    """

    _SHIFT, _MASK, _SIGN, _WORD, _NEXT_WORD, _NEXT_SHIFT = range(6)
    _SCALE, _OFFSET, _UNIT_OR_INVALID = range(6, 9)

    def __init__(self, shapes: Sequence[tuple[tuple[_Column, ...], np.ndarray]]) -> None:
        width = max(len(columns) for columns, _ in shapes)
        flagged = any(c.flag is not None for columns, _ in shapes for c in columns)
        table = np.zeros((9, len(shapes), 2 * width if flagged else width), np.uint64)
        floats = table.view(np.float64)
        table[self._NEXT_SHIFT] = _WORD_BITS
        floats[self._SCALE] = 1.0
        floats[self._UNIT_OR_INVALID, :, width:] = np.nan
        elements, sizes, variant = [], [], []
        for v, (columns, members) in enumerate(shapes):
            for w in range(width):
                column = columns[w if w < len(columns) else 0]
                self._put(table, v, w, column.value, column.field, column.unit)
                if column.flag is not None:
                    self._put(table, v, width + w, *column.flag)
            elements.append(members[:, [w if w < len(columns) else 0 for w in range(width)]])
            sizes += [len(columns)] * members.shape[0]
            variant += [v] * members.shape[0]
        self.width = width
        self.flagged = flagged
        self.table = table
        self.elements = np.ascontiguousarray(np.concatenate(elements))  # (members, width)
        real = np.array(sizes, np.int64)[:, None]
        self.real = np.arange(width) < real  # per member: which columns are its own
        self.padded = bool((real < width).any())
        self.variant = np.array(variant, np.intp) if len(shapes) > 1 else None
        word = table[self._WORD].view(np.int64)
        self.word = word[0].astype(np.intp)  # of the first shape
        self.next_word = table[self._NEXT_WORD, 0].astype(np.intp)
        self.two_words = bool((table[self._NEXT_SHIFT] < _WORD_BITS).any())
        same = not self.two_words and bool((word == word.flat[0]).all())
        self.same_word = int(word.flat[0]) if same else None
        self.swapped = bool((word >= _WORDS).any())
        self.signed = bool(table[self._SIGN].any())
        scale = floats[self._SCALE]
        self.unscaled = bool((scale == 1).all())  # times 1.0 changes no value
        # adding a zero offset changes nothing unless a negative scale made a -0.0
        self.offsets = bool(floats[self._OFFSET].any() or (scale < 0).any())
        self.scaled = bool((floats[self._UNIT_OR_INVALID, :, :width] != 1).any())
        self.finite = all(  # no raw value can give an infinite or NaN value
            math.isfinite((abs(c.field.scale) * 2.0**64 + abs(c.field.offset)) * c.unit)
            for columns, _ in shapes
            for c in columns
        )

    @classmethod
    def _put(
        cls, table: np.ndarray, v: int, column: int, place: _Place, field: Field, unit: float
    ) -> None:
        """One column: ``unit`` is a value's unit scale or a flag's invalid value."""
        words = (place.shift, field.mask, field.sign, place.word, *place[2:])
        table[: cls._SCALE, v, column] = words
        table.view(np.float64)[cls._SCALE :, v, column] = (field.scale, field.offset, unit)

    def decode(self, words: np.ndarray, members: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Values ``(N, width)`` of frames ``words`` (N, 8) of member slots ``members``, and
        whether each is good: not flagged invalid, and finite."""
        table = (
            self.table
            if self.variant is None
            else self.table.take(self.variant.take(members), axis=1)
        )
        floats = table.view(np.float64)
        if self.swapped:
            words = np.concatenate((words, words.byteswap()), axis=1)
        if self.same_word is not None:
            raw = words[:, self.same_word, None] >> table[self._SHIFT]
        elif self.variant is None:  # one shape: the same words for every frame
            raw = words.take(self.word, axis=1)
            raw >>= table[self._SHIFT]
            if self.two_words:
                raw |= words.take(self.next_word, axis=1) << table[self._NEXT_SHIFT]
        else:
            frame = (np.arange(words.shape[0]) * words.shape[1])[:, None]
            flat = words.reshape(-1)
            at = table.view(np.int64)
            raw = flat.take(frame + at[self._WORD]) >> table[self._SHIFT]
            if self.two_words:
                raw |= flat.take(frame + at[self._NEXT_WORD]) << table[self._NEXT_SHIFT]
        raw &= table[self._MASK]
        if self.signed:
            raw ^= table[self._SIGN]
            raw -= table[self._SIGN]
            raw = raw.view(np.int64)
        value = raw.astype(np.float64)
        if not self.unscaled:
            value *= floats[self._SCALE]
        if self.offsets:
            value += floats[self._OFFSET]
        width = self.width
        measured = value[:, :width]
        if self.scaled:
            measured *= floats[self._UNIT_OR_INVALID, :, :width]
        if self.flagged:
            good = value[:, width:] != floats[self._UNIT_OR_INVALID, :, width:]
        else:
            good = np.ones(measured.shape, bool)
        if not self.finite:
            good &= np.isfinite(measured)
        return measured, good

    def write(
        self,
        words: np.ndarray,
        rows: np.ndarray,
        members: np.ndarray,
        times: np.ndarray,
        meas: Measurements,
        all_newer: bool,
    ) -> int:
        """Decode frames ``rows`` (of member slots ``members``) and write each value
        where its element holds nothing newer; returns the elements written."""
        measured, good = self.decode(words.take(rows, axis=0), members)
        elem = self.elements.take(members, axis=0)
        when = times.take(rows)[:, None]
        newer = None if all_newer else when >= meas.updated_at.take(elem)
        if newer is None or every(newer):
            written = (
                np.count_nonzero(self.real.take(members, axis=0)) if self.padded else elem.size
            )
        else:
            written = np.count_nonzero(newer & self.real.take(members, axis=0))
            when = np.broadcast_to(when, elem.shape)[newer]
            elem, measured, good = elem[newer], measured[newer], good[newer]
        meas.value[elem] = measured
        meas.reported_valid[elem] = good
        meas.updated_at[elem] = when
        return int(written)


class SlotWords:
    """The shapes of a decoder's mapped slots, for `write`: each shape as a group of its
    own, and all of them as one group for batches with few frames."""

    def __init__(self, shapes: Sequence[_Group], whole: _Group, rank: np.ndarray) -> None:
        self._shapes = tuple(shapes)
        sizes = [shape.elements.shape[0] for shape in shapes]
        self._starts = np.cumsum([0, *sizes])  # first rank of each shape, then the end
        self._whole = whole
        self._rank = rank.astype(np.int16 if rank.size < 2**15 else np.intp)  # sorts faster

    @classmethod
    def build(
        cls, routes: Routes, layouts: Sequence[MessageLayout], slot_message: Sequence[int]
    ) -> SlotWords | None:
        """None where the tables do not apply: an element fed by several slots or moved by
        an index signal, or an unsigned 64-bit signal (read as signed); or where no slot
        feeds any element."""
        if not routes.slot_exclusive or routes.indexed:
            return None
        shapes: dict[tuple[_Column, ...], list[int]] = {}  # the slots of each shape
        for s, m in enumerate(slot_message):
            columns = _columns(routes, s, layouts[m].length)
            if columns is None:
                return None
            if columns:
                shapes.setdefault(tuple(columns), []).append(s)
        if not shapes:
            return None
        # per slot its rank: shape by shape, slot by slot; unmapped slots last
        order = [s for slots in shapes.values() for s in slots]
        rank = np.full(len(slot_message), len(order), np.int64)
        rank[order] = np.arange(len(order))
        members = [(key, routes.target[slots, : len(key)]) for key, slots in shapes.items()]
        return cls([_Group([shape]) for shape in members], _Group(members), rank)

    def write(
        self, words: np.ndarray, slot: np.ndarray, times: np.ndarray, meas: Measurements
    ) -> int:
        """Decode the last frame of each mapped slot (the batch is in time order) and write
        it where the element holds nothing newer; returns the elements written."""
        rank = self._rank.take(slot)
        order = rank.argsort(kind="stable")  # arrival order within a slot
        ranked = rank.take(order)
        newest = np.empty(ranked.shape[0], bool)
        newest[-1:] = True
        np.not_equal(ranked[1:], ranked[:-1], out=newest[:-1])
        keep = positions(newest)
        if keep.size == 0:
            return 0
        rows, ranked = order.take(keep), ranked.take(keep)
        held = meas.updated_at
        whole = self._whole
        all_newer = (
            rows.shape[0] * whole.width * _SCAN_PER_GATHER >= held.shape[0]
            and times[0] >= held.max(initial=-np.inf)  # no frame is older than the first
        )
        words = words.view(np.uint64)
        bounds = ranked.searchsorted(self._starts)
        if rows.shape[0] * whole.table.shape[2] <= _ONE_PASS:
            mapped = bounds[-1]  # unmapped slots rank last
            return whole.write(words, rows[:mapped], ranked[:mapped], times, meas, all_newer)
        written = 0
        for f in positions(bounds[1:] > bounds[:-1]).tolist():
            a, b = bounds[f], bounds[f + 1]
            members = ranked[a:b] - self._starts[f]
            written += self._shapes[f].write(words, rows[a:b], members, times, meas, all_newer)
        return written


def _columns(routes: Routes, s: int, length: int) -> list[_Column] | None:
    """The mapped value columns of slot ``s`` (None if one cannot be read from words)."""
    row = routes.table.rows[s]
    columns = []
    for w in range(routes.target.shape[1]):
        if routes.target[s, w] < 0:
            continue
        value = field_of(row[routes.column[s, w]], length)
        flag = None
        if routes.has_flag[s, w]:
            flag_field = field_of(row[routes.flag_column[s, w]], length)
            if _unsigned_64(flag_field):
                return None
            flag = (_place(flag_field, length), flag_field, float(routes.flag_invalid[s, w]))
        if _unsigned_64(value):
            return None
        columns.append(_Column(_place(value, length), value, float(routes.scale[s, w]), flag))
    return columns


def _unsigned_64(field: Field) -> bool:
    """An unsigned 64-bit field, which a shape with a signed column would read as signed."""
    return field.mask.bit_length() == _WORD_BITS and not field.sign
