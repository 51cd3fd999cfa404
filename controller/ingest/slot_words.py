"""The steady batch's write: the newest frame of each mapped slot, decoded from 64-bit words.

Slots whose mapped columns sit at the same places and scale alike (the cell-voltage frames
of every module, say) share one shape; each shape holds per column where the field sits in
the payload's 64-bit words and how it scales, and per member slot the elements it feeds.
A batch sorts its frames by slot once, keeps the newest of each, and decodes and writes
each shape present with whole-array operations on exactly its columns: the loop runs over
the shapes present, which the DBC bounds, never over frames, modules or signals.

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


class _Shape:
    """The columns shared by the member slots of one shape (value columns, then the flag
    columns) and, per member, the elements its value columns feed."""

    def __init__(self, columns: Sequence[_Column], elements: np.ndarray) -> None:
        flags = [c.flag for c in columns if c.flag is not None]
        places = [c.value for c in columns] + [place for place, _, _ in flags]
        fields = [c.field for c in columns] + [field for _, field, _ in flags]
        self.width = len(columns)
        self.elements = elements  # (members, width) int64
        word = [p.word for p in places]
        self.word = np.array(word, np.intp)
        self.same_word = word[0] if len(set(word)) == 1 else None
        self.shift = np.array([p.shift for p in places], np.uint64)
        self.next_word = np.array([p.next_word for p in places], np.intp)
        self.next_shift = np.array([p.next_shift for p in places], np.uint64)
        self.two_words = any(p.next_shift < _WORD_BITS for p in places)
        self.swapped = any(f.big for f in fields)
        self.mask = np.array([f.mask for f in fields], np.uint64)
        self.sign = np.array([f.sign for f in fields], np.uint64)
        self.signed = any(f.sign for f in fields)
        scale = [f.scale for f in fields]
        self.scale = np.array(scale, np.float64)
        self.unscaled = all(s == 1 for s in scale)  # times 1.0 changes no value
        self.offset = np.array([f.offset for f in fields], np.float64)
        # adding a zero offset changes nothing unless a negative scale made a -0.0
        self.offsets = any(f.offset for f in fields) or any(s < 0 for s in scale)
        self.unit = np.array([c.unit for c in columns], np.float64)
        self.scaled = any(c.unit != 1 for c in columns)
        self.invalid = np.array([invalid for _, _, invalid in flags], np.float64)
        self.flagged = np.array([c.flag is not None for c in columns], bool)
        self.all_flagged = len(flags) == len(columns)
        self.finite = all(  # no raw value can give an infinite or NaN value
            math.isfinite((abs(c.field.scale) * 2.0**64 + abs(c.field.offset)) * c.unit)
            for c in columns
        )

    def decode(self, words: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Values ``(N, width)`` of frames ``words`` (N, 8) and whether each is good: not
        flagged invalid and finite."""
        if self.swapped:
            words = np.concatenate((words, words.byteswap()), axis=1)
        if self.same_word is not None:
            raw = words[:, self.same_word, None] >> self.shift
        else:
            raw = words.take(self.word, axis=1)
            raw >>= self.shift
        if self.two_words:
            raw |= words.take(self.next_word, axis=1) << self.next_shift
        raw &= self.mask
        if self.signed:
            raw ^= self.sign
            raw -= self.sign
            raw = raw.view(np.int64)
        value = raw.astype(np.float64)
        if not self.unscaled:
            value *= self.scale
        if self.offsets:
            value += self.offset
        width = self.width
        measured = value[:, :width]
        if self.scaled:
            measured *= self.unit
        if self.all_flagged:
            good = value[:, width:] != self.invalid
        else:
            good = np.ones(measured.shape, bool)
            good[:, self.flagged] = value[:, width:] != self.invalid
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
        measured, good = self.decode(words.take(rows, axis=0))
        elem = self.elements.take(members, axis=0)
        when = times.take(rows)[:, None]
        if not all_newer:
            newer = when >= meas.updated_at.take(elem)
            if not every(newer):
                when = np.broadcast_to(when, elem.shape)[newer]
                elem, measured, good = elem[newer], measured[newer], good[newer]
        meas.value[elem] = measured
        meas.reported_valid[elem] = good
        meas.updated_at[elem] = when
        return int(elem.size)


class SlotWords:
    """The shapes of a decoder's mapped slots, for `write`."""

    def __init__(self, shapes: Sequence[_Shape], shape_of: Sequence[int | None]) -> None:
        self._shapes = tuple(shapes)
        sizes = [shape.elements.shape[0] for shape in shapes]
        self._starts = np.cumsum([0, *sizes])  # first rank of each shape, then the end
        # per slot its rank: shape by shape, members in order; unmapped slots last
        rank = np.full(len(shape_of), self._starts[-1], np.int64)
        member = [0] * len(shapes)
        for s, f in enumerate(shape_of):
            if f is not None:
                rank[s] = self._starts[f] + member[f]
                member[f] += 1
        self._rank = rank.astype(np.int16 if rank.size < 2**15 else np.intp)  # sorts faster
        self._widest = max((shape.width for shape in shapes), default=0)

    @classmethod
    def build(
        cls, routes: Routes, layouts: Sequence[MessageLayout], slot_message: Sequence[int]
    ) -> SlotWords | None:
        """None where the tables do not apply: an element fed by several slots or moved by
        an index signal, or an unsigned 64-bit signal (read as signed)."""
        if not routes.slot_exclusive or routes.indexed:
            return None
        index: dict[tuple[_Column, ...], int] = {}  # shape by its columns
        members: list[list[np.ndarray]] = []  # per shape the elements of each member slot
        shape_of: list[int | None] = []
        for s, m in enumerate(slot_message):
            columns = _columns(routes, s, layouts[m].length)
            if columns is None:
                return None
            if not columns:
                shape_of.append(None)
                continue
            f = index.setdefault(tuple(columns), len(index))
            if f == len(members):
                members.append([])
            members[f].append(routes.target[s, : len(columns)])
            shape_of.append(f)
        built = [_Shape(key, np.array(members[f], np.int64)) for key, f in index.items()]
        return cls(built, shape_of)

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
        bounds = ranked.searchsorted(self._starts)
        held = meas.updated_at
        all_newer = (
            rows.shape[0] * self._widest * _SCAN_PER_GATHER >= held.shape[0]
            and times[0] >= held.max(initial=-np.inf)  # no frame is older than the first
        )
        words = words.view(np.uint64)
        written = 0
        for f in positions(bounds[1:] > bounds[:-1]).tolist():
            a, b = bounds[f], bounds[f + 1]
            members = ranked[a:b] - self._starts[f]
            shape = self._shapes[f]
            written += shape.write(words, rows[a:b], members, times, meas, all_newer)
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
