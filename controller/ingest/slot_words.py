"""The steady batch's write: the newest frame of each mapped slot, decoded from 64-bit words.

Slots whose mapped columns sit at the same places and scale alike (the cell-voltage frames
of every module, say) share one shape: per column where the field sits in the payload's
64-bit words and how it scales (`controller.ingest.slot_columns`). A batch finds the
newest frame of each slot in one pass (the latest row per slot, by ``np.maximum.at``).
Where that is a frame of every mapped slot, as in a batch of a second or so on a healthy
bus, and the slots are few, `controller.ingest.every_slot` writes them from flat tables.
Otherwise a small batch decodes them all in one pass, each frame gathering its shape's row
of a small table, padded to the widest shape; a large one decodes each shape present in a
pass of its own on exactly its columns, where the per-frame gathers and the padding would
cost more than the passes. The loop runs over the shapes present, which the DBC bounds,
never over frames, modules or signals.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from controller.ingest.every_slot import EverySlot
from controller.ingest.fields import Field
from controller.ingest.layout import MessageLayout
from controller.ingest.routing import Routes
from controller.ingest.slot_columns import WORD_BITS, WORDS, Column, Place, Scaling, columns_of
from controller.measurements import Measurements
from dbc.masks import every, positions

_SCAN_PER_GATHER = 8  # elements scanned for a max at the cost of one gathered and compared
_ONE_PASS = 4096  # frames times columns up to which one pass over all shapes costs less


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

    def __init__(self, shapes: Sequence[tuple[tuple[Column, ...], np.ndarray]]) -> None:
        width = max(len(columns) for columns, _ in shapes)
        flagged = any(c.flag is not None for columns, _ in shapes for c in columns)
        table = np.zeros((9, len(shapes), 2 * width if flagged else width), np.uint64)
        floats = table.view(np.float64)
        table[self._NEXT_SHIFT] = WORD_BITS
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
        self.two_words = bool((table[self._NEXT_SHIFT] < WORD_BITS).any())
        same = not self.two_words and bool((word == word.flat[0]).all())
        self.same_word = int(word.flat[0]) if same else None
        self.swapped = bool((word >= WORDS).any())
        self.signed = bool(table[self._SIGN].any())
        self.scaling = Scaling.of(
            floats[self._SCALE],
            floats[self._OFFSET],
            floats[self._UNIT_OR_INVALID, :, :width],
            (c for columns, _ in shapes for c in columns),
        )

    @classmethod
    def _put(
        cls, table: np.ndarray, v: int, column: int, place: Place, field: Field, unit: float
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
        scaling = self.scaling
        if scaling.scale:
            value *= floats[self._SCALE]
        if scaling.offset:
            value += floats[self._OFFSET]
        width = self.width
        measured = value[:, :width]
        if scaling.unit:
            measured *= floats[self._UNIT_OR_INVALID, :, :width]
        if self.flagged:
            good = value[:, width:] != floats[self._UNIT_OR_INVALID, :, width:]
        else:
            good = np.ones(measured.shape, bool)
        if not scaling.finite:
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
    own, all of them as one group for batches with few frames, and every mapped value as
    one entry for batches with a frame of every mapped slot."""

    def __init__(
        self, shapes: Sequence[_Group], whole: _Group, every: EverySlot, rank: np.ndarray
    ) -> None:
        self._shapes = tuple(shapes)
        sizes = [shape.elements.shape[0] for shape in shapes]
        self._starts = np.cumsum([0, *sizes])  # first rank of each shape, then the end
        self._whole = whole
        self._every = every
        self._rank = rank

    @classmethod
    def build(
        cls, routes: Routes, layouts: Sequence[MessageLayout], slot_message: Sequence[int]
    ) -> SlotWords | None:
        """None where the tables do not apply: an element fed by several slots or moved by
        an index signal, or an unsigned 64-bit signal (read as signed); or where no slot
        feeds any element."""
        if not routes.slot_exclusive or routes.indexed:
            return None
        shapes: dict[tuple[Column, ...], list[int]] = {}  # the slots of each shape
        for s, m in enumerate(slot_message):
            columns = columns_of(routes, s, layouts[m].length)
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
        groups = [_Group([shape]) for shape in members]
        return cls(groups, _Group(members), EverySlot(members), rank)

    def ranks(self, slots: Sequence[int]) -> np.ndarray:
        """The rank of each slot in ``slots``: unmapped slots rank after the mapped ones,
        -1 (no slot) ranks after them."""
        slot = np.asarray(slots, np.intp)
        return np.where(slot >= 0, self._rank.take(slot), self._every.ranks + 1)

    def newest(self, rank: np.ndarray) -> np.ndarray | None:
        """The last row of each mapped rank (-1 where none) of a batch in time order with
        ``ranks`` of its slots, or None where a frame has no slot."""
        newest = np.full(self._every.ranks + 2, -1, np.intp)
        np.maximum.at(newest, rank, np.arange(rank.shape[0]))
        return newest[:-2] if newest[-1] < 0 else None

    def write(
        self, words: np.ndarray, newest: np.ndarray, times: np.ndarray, meas: Measurements
    ) -> int:
        """Decode the last frame of each mapped slot (`newest`) and write it where the
        element holds nothing newer; returns the elements written."""
        held = meas.updated_at
        words = words.view(np.uint64)
        whole = self._whole
        one_pass = newest.shape[0] * whole.table.shape[2] <= _ONE_PASS
        if one_pass and np.count_nonzero(newest < 0) == 0:  # a frame of every mapped slot
            all_newer = self._all_newer(newest, times, held)
            return self._every.write(words, newest, times, meas, all_newer)
        ranked = positions(newest >= 0)
        if ranked.size == 0:
            return 0
        rows = newest.take(ranked)
        all_newer = self._all_newer(rows, times, held)
        if rows.shape[0] * whole.table.shape[2] <= _ONE_PASS:
            return whole.write(words, rows, ranked, times, meas, all_newer)
        bounds = ranked.searchsorted(self._starts)
        written = 0
        for f in positions(bounds[1:] > bounds[:-1]).tolist():
            a, b = bounds[f], bounds[f + 1]
            members = ranked[a:b] - self._starts[f]
            written += self._shapes[f].write(words, rows[a:b], members, times, meas, all_newer)
        return written

    def _all_newer(self, rows: np.ndarray, times: np.ndarray, held: np.ndarray) -> bool:
        """No frame is older than what the elements hold, judged by the first frame where
        scanning ``held`` for its newest costs less than comparing per element."""
        cheap = rows.shape[0] * self._whole.width * _SCAN_PER_GATHER >= held.shape[0]
        return cheap and times[0] >= held.max(initial=-np.inf)
