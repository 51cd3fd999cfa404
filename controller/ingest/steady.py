"""The decoder's path for a steady batch: every frame known, well formed and in sequence.

On a healthy bus almost every batch is such a batch: frames in time order, each of a known
message of the right length, with a good CRC, a known multiplexer value and a counter one
step (up to the message's largest step) after the previous frame of its message. For such
a batch the general path's per-reason bookkeeping is dead weight, so this path checks all
of that with a few whole-batch operations on tables built per message, and only when
everything holds does it touch the state: counters, counts and the measurements. When any
check fails it returns None before changing anything, and the general path decides.

The tables: per message its length, the columns of its CRC check
(``controller.ingest.crc_check``), the multiplexer and counter as shift and mask of the
first 64-bit word of the payload, a dense multiplexer-value-to-slot table, and per counter
kind a table of (previous counter, counter) pairs that step 1..K; for 11-bit IDs the
message columns are also laid out by ID, so one gather by ID fetches them all. Decoding reads
the payload as little-endian 64-bit words: a little-endian signal is a shift and a mask of
one word or of two neighbouring ones.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np

from controller.frames import MAX_PAYLOAD, FrameBatch
from controller.ingest.crc_check import CrcRow, crc_check
from controller.ingest.e2e import E2ETable
from controller.ingest.fields import Field, field_of
from controller.ingest.layout import MessageLayout
from controller.ingest.routing import Routes
from controller.measurements import Measurements
from dbc.e2e_counter import CounterState
from dbc.masks import every, positions, some

_WORD_BITS = 64
_LUT_VALUES = 256  # multiplexer and counter values up to which the tables are dense
_KEY_SENTINEL = np.uint32(0xFFFF_FFFF)  # above every frame key, never a message
_STANDARD_IDS = 0x800
_SCAN_PER_GATHER = 8  # elements scanned for a max at the cost of one gathered and compared


class Steady(NamedTuple):
    """What a steady batch did, for the decoder's report."""

    accepted: np.ndarray  # (sources,) int64
    updated: int


_NO_COUNTERS = (np.zeros(0, np.intp), np.zeros(0, np.int64))


def _word_field(field: Field) -> bool:
    """The field is little-endian and inside the first 64-bit word, with a small mask."""
    return (
        not field.big
        and field.shift + field.mask.bit_length() <= _WORD_BITS
        and field.mask < _LUT_VALUES
    )


# Columns of the per-message table (one int64 row per message, the sentinel row last).
# _SHIFTS and _MASKS: the multiplexer's and the counter's, side by side; a message without
# a counter has counter mask 0.
_MSG, _LENGTH, _SOURCE, _LUT = range(4)
_SHIFTS, _MASKS = slice(4, 6), slice(6, 8)
_COUNTER_MASK = 7
_CRC = 8  # then the CRC check's columns


class SteadyPath:
    """The per-message and per-slot tables of a decoder, for `decode`."""

    def __init__(
        self,
        layouts: Sequence[MessageLayout],
        slot_message: Sequence[int],
        routes: Routes,
        e2e: E2ETable,
        source: np.ndarray,
    ) -> None:
        self._n_sources = int(source.max()) + 1 if source.size else 0
        rows: dict[int, tuple[list[int], CrcRow]] = {}  # frame key -> columns, CRC row
        lut: list[int] = []
        kinds: dict[tuple[int, int], int] = {}
        self._counter_base = np.zeros(len(layouts), np.int64)
        for m, layout in enumerate(layouts):
            mine = [k for k, mm in enumerate(slot_message) if mm == m]
            length = layout.length
            mux = field_of(layout.mux, length) if layout.mux is not None else None
            if mux is not None and (mux.sign or mux.scale != 1 or mux.offset != 0):
                continue
            counter = field_of(e2e.counter.rows[m][0], length) if e2e.has_counter[m] else None
            if counter is not None and e2e.modulo[m] > _LUT_VALUES:
                continue
            if any(f is not None and not _word_field(f) for f in (mux, counter)):
                continue
            base = len(lut)
            if mux is None:
                lut.append(mine[0])
            else:
                by_value = {s.mux_value: k for k, s in zip(mine, layout.slots, strict=True)}
                lut += [by_value.get(v, -1) for v in range(mux.mask + 1)]
            if counter is not None:
                kind = (int(e2e.modulo[m]), int(e2e.max_jump[m]))
                self._counter_base[m] = kinds.setdefault(kind, len(kinds))
            crc = CrcRow(length, int(e2e.data_id[m]) if e2e.has_crc[m] else None)
            columns = [m, length, int(source[m]), base, 0, 0, 0, 0]
            if mux is not None:
                columns[4], columns[6] = mux.shift, mux.mask
            if counter is not None:
                columns[5], columns[7] = counter.shift, counter.mask
            rows[layout.frame_id] = (columns, crc)
        ordered = sorted(rows)
        self._keys = np.array([*ordered, _KEY_SENTINEL], np.uint32)
        self._crc = crc_check([rows[k][1] for k in ordered] + [CrcRow(0, None)])
        sentinel = [0, -1] + [0] * 6  # a length no frame has
        # column-major: one contiguous row per column after a gather of the frames' rows
        own = np.array([rows[k][0] for k in ordered] + [sentinel], np.int64).T
        self._messages = np.ascontiguousarray(np.concatenate((own, self._crc.columns)))
        # the same columns by 11-bit ID (the sentinel's for others), and of IDs above, clipped
        standard = np.full(_STANDARD_IDS + 1, len(ordered), np.intp)
        for row, key in enumerate(ordered):
            if key < _STANDARD_IDS:
                standard[key] = row
        self._by_standard_id = self._messages.take(standard, axis=1)
        self._lut = np.array(lut, np.int64)
        self._counter_base *= (_LUT_VALUES + 1) * _LUT_VALUES
        self._one_kind = len(kinds) <= 1  # every counter base is 0
        self._index_type = np.int16 if len(layouts) < 2**15 else np.intp  # sorts faster
        self._counter_ok = np.concatenate(
            [_counter_table(n, k) for n, k in kinds] or [np.zeros(0, bool)]
        )
        self._scatter = _SlotWords.build(routes, layouts, slot_message)

    def decode(
        self,
        batch: FrameBatch,
        counters: CounterState,
        last_seen: np.ndarray,
        meas: Measurements,
        general_scatter: Callable[[np.ndarray, np.ndarray], int],
    ) -> Steady | None:
        """Decode ``batch`` into ``meas`` and advance ``counters`` and ``last_seen`` if it is
        steady; else None, with nothing changed.

        ``general_scatter(rows, slot)`` writes the accepted frames where the slot tables
        here do not apply (elements fed by several slots, index signals, Motorola signals).
        """
        n = len(batch)
        times = batch.timestamps
        if n > 1 and not every(times[1:] >= times[:-1]):  # also fails on NaN
            return None
        if some(batch.extended) or batch.ids.dtype.kind != "u":
            keys = batch.keys
            pos = self._keys.searchsorted(keys)
            if not every(self._keys[pos] == keys):
                return None
            message = self._messages.take(pos, axis=1)
        else:  # an unknown ID reads the sentinel's columns, whose length no frame has
            message = self._by_standard_id.take(batch.ids, axis=1, mode="clip")
        if not every(message[_LENGTH] == batch.dlc):
            return None
        data = batch.data
        if data.dtype != np.uint8 or data.shape[1] != MAX_PAYLOAD:
            return None
        if not data.flags.c_contiguous:
            data = np.ascontiguousarray(data)
        if not self._crc.ok(data, message[_CRC:]):
            return None
        words = data.view("<i8")
        # signed words: the fields read here end below bit 64, see `_word_field`
        mux_counter = (words[:, 0] >> message[_SHIFTS]) & message[_MASKS]
        slot = self._lut.take(mux_counter[0] + message[_LUT])
        if some(slot < 0):
            return None
        advance = self._counters(mux_counter[1], message, counters)
        if advance is None:
            return None
        group, newest = advance
        counters.received[group] = newest
        counters.reference[group] = newest
        source = message[_SOURCE]
        accepted = np.bincount(source, minlength=self._n_sources)
        np.maximum.at(last_seen, source, times)
        if self._scatter is None:
            return Steady(accepted, general_scatter(np.arange(n), slot))
        return Steady(accepted, self._scatter.write(words, slot, times, meas))

    def _counters(
        self, value: np.ndarray, message: np.ndarray, counters: CounterState
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """The messages and their newest counters, to store as received and reference, if
        every counter steps 1..K from the previous frame of its message (or the message's
        first frame ever), else None."""
        has = message[_COUNTER_MASK]
        k = np.count_nonzero(has)
        if k == 0:
            return _NO_COUNTERS
        msg = message[_MSG]
        if k < has.shape[0]:
            at = positions(has)
            msg, value = msg.take(at), value.take(at)
        order = msg.astype(self._index_type).argsort(kind="stable")
        msg, value = msg.take(order), value.take(order)
        bounds = np.empty(k + 1, bool)  # a message's first frame and the end
        bounds[0] = bounds[k] = True
        np.not_equal(msg[1:], msg[:-1], out=bounds[1:k])
        starts = positions(bounds[:k])
        newest = value[bounds[1:]]  # each message's last frame
        group = msg.take(starts)
        received = counters.received.take(group)
        if not every(counters.reference.take(group) == received):  # a dropped frame to resume
            return None
        previous = np.empty(k, np.int64)
        previous[1:] = value[:-1]
        previous[starts] = received
        previous += 1
        previous <<= 8  # times _LUT_VALUES
        previous |= value
        if not self._one_kind:
            previous += self._counter_base.take(msg)
        if not every(self._counter_ok.take(previous)):
            return None
        return group, newest


def _counter_table(modulo: int, max_step: int) -> np.ndarray:
    """``ok[(previous + 1) * 256 + counter]``: the counter steps 1..K from the previous one
    (previous -1: the first frame ever, any valid counter)."""
    previous = np.arange(-1, _LUT_VALUES)[:, None]
    counter = np.arange(_LUT_VALUES)[None, :]
    step = (counter - previous) % modulo
    ok = (counter < modulo) & ((previous < 0) | ((step >= 1) & (step <= max_step)))
    return ok.ravel()


class _SlotWords:
    """Per slot and mapped column (values, then their flags): where the field sits in the
    payload's 64-bit words and how it scales, for the newest frame of each slot.

    ``table[:, s, c]`` holds, as 64-bit words: shift, mask, sign bit, word, next word, the
    next word's left shift (64, which shifts everything out, for a field inside one word),
    then as floats the scale, the offset and the unit scale of a value column or the
    invalid value of a flag column (NaN where the column has no flag: never equal), then
    the element a value column feeds; one gather of the slots' rows fetches it all. A slot
    with fewer columns than the widest repeats its first column in the rest: the same value
    written twice to the same element, which costs less than leaving the padding out.
    """

    _SHIFT, _MASK, _SIGN, _WORD, _NEXT_WORD, _NEXT_SHIFT = range(6)
    _SCALE, _OFFSET, _UNIT_OR_INVALID, _ELEMENT = range(6, 10)  # _ELEMENT: while building

    def __init__(self, routes: Routes, fields: list[list[tuple[Field, Field | None]]]) -> None:
        k, width = routes.target.shape
        table = np.zeros((10, k, 2 * width), np.uint64)
        self._floats = table.view(np.float64)
        table[self._NEXT_SHIFT] = _WORD_BITS
        self._floats[self._SCALE] = 1.0
        self._floats[self._UNIT_OR_INVALID, :, :width] = 1.0
        self._floats[self._UNIT_OR_INVALID, :, width:] = np.nan
        self._table = table
        finite = True
        for s, row in enumerate(fields):
            for w, (value, flag) in enumerate(row):
                unit = float(routes.scale[s, w])
                finite &= math.isfinite((abs(value.scale) * 2.0**64 + abs(value.offset)) * unit)
                self._place(s, w, value)
                self._floats[self._UNIT_OR_INVALID, s, w] = unit
                if flag is not None:
                    self._place(s, width + w, flag)
                    self._floats[self._UNIT_OR_INVALID, s, width + w] = routes.flag_invalid[s, w]
                table[self._ELEMENT, s, w] = routes.target[s, w]
            for w in range(len(row), width):  # padding: a copy of the first column
                table[:, s, w] = table[:, s, 0]
                table[:, s, width + w] = table[:, s, width]
        self.width = width
        self.element = np.ascontiguousarray(table[self._ELEMENT, :, :width].view(np.int64))
        self.real = routes.target >= 0
        self.mapped = routes.has_mapped
        self.none = np.full(k, -1, np.intp)  # per slot: no frame yet
        self.arange = np.arange(1024)  # frame numbers, grown with the largest batch
        self.one_word = not table[self._WORD : self._NEXT_WORD + 1].any()
        self.signed = bool(table[self._SIGN].any())
        self.scaled = routes.scaled
        self.finite = finite  # no raw value can give an infinite or NaN value
        scales = self._floats[self._SCALE]
        # adding a zero offset changes nothing unless a negative scale made a -0.0
        self.offset = bool(self._floats[self._OFFSET].any() or (scales < 0).any())

    def _place(self, s: int, column: int, field: Field) -> None:
        word, shift = divmod(field.shift, _WORD_BITS)
        high = (word, _WORD_BITS)
        if shift + field.mask.bit_length() > _WORD_BITS:
            high = (word + 1, _WORD_BITS - shift)
        self._table[: self._SCALE, s, column] = (shift, field.mask, field.sign, word, *high)
        self._floats[self._SCALE : self._UNIT_OR_INVALID, s, column] = (field.scale, field.offset)

    @classmethod
    def build(
        cls, routes: Routes, layouts: Sequence[MessageLayout], slot_message: Sequence[int]
    ) -> _SlotWords | None:
        """None where the tables do not apply: an element fed by several slots or moved by
        an index signal, a Motorola signal, or an unsigned 64-bit one (read as signed)."""
        if not routes.slot_exclusive or routes.indexed:
            return None
        fields = []
        for s, m in enumerate(slot_message):
            row = routes.table.rows[s]
            length = layouts[m].length
            columns = []
            for w in range(routes.target.shape[1]):
                if routes.target[s, w] < 0:
                    continue
                value = field_of(row[routes.column[s, w]], length)
                flag = (
                    field_of(row[routes.flag_column[s, w]], length)
                    if routes.has_flag[s, w]
                    else None
                )
                for f in (value, flag):
                    if f is not None and (f.big or (f.mask.bit_length() == 64 and not f.sign)):
                        return None
                columns.append((value, flag))
            fields.append(columns)
        return cls(routes, fields)

    def write(
        self, words: np.ndarray, slot: np.ndarray, times: np.ndarray, meas: Measurements
    ) -> int:
        """Decode the last frame of each mapped slot (the batch is in time order) and write
        it where the element holds nothing newer; returns the elements written."""
        last = self.none.copy()
        if self.arange.shape[0] < slot.shape[0]:
            self.arange = np.arange(2 * slot.shape[0])
        np.maximum.at(last, slot, self.arange[: slot.shape[0]])
        rows = last[self.mapped & (last >= 0)]
        if rows.size == 0:
            return 0
        s = slot.take(rows)
        fields = self._table.take(s, axis=1)
        floats = fields.view(np.float64)
        words = words.view(np.uint64)
        if self.one_word:
            raw = words[:, 0].take(rows)[:, None] >> fields[self._SHIFT]
        else:
            frame = (rows * words.shape[1])[:, None]
            flat = words.reshape(-1)
            at = fields.view(np.int64)
            raw = flat.take(frame + at[self._WORD]) >> fields[self._SHIFT]
            raw |= flat.take(frame + at[self._NEXT_WORD]) << fields[self._NEXT_SHIFT]
        raw &= fields[self._MASK]
        if self.signed:
            raw ^= fields[self._SIGN]
            raw -= fields[self._SIGN]
            raw = raw.view(np.int64)
        value = raw.astype(np.float64)
        value *= floats[self._SCALE]
        if self.offset:
            value += floats[self._OFFSET]
        width = self.width
        measured = value[:, :width]
        if self.scaled:
            measured *= floats[self._UNIT_OR_INVALID, :, :width]
        good = value[:, width:] != floats[self._UNIT_OR_INVALID, :, width:]
        if not self.finite:
            good &= np.isfinite(measured)
        elem = self.element.take(s, axis=0)
        when = times.take(rows)[:, None]
        if self._all_newer(elem, when, times[0], meas.updated_at):
            written = np.count_nonzero(self.real.take(s, axis=0))
        else:
            newer = when >= meas.updated_at.take(elem)
            written = np.count_nonzero(newer & self.real.take(s, axis=0))
            when = np.broadcast_to(when, elem.shape)[newer]
            elem, measured, good = elem[newer], measured[newer], good[newer]
        meas.value[elem] = measured
        meas.reported_valid[elem] = good
        meas.updated_at[elem] = when
        return int(written)

    @staticmethod
    def _all_newer(elem: np.ndarray, when: np.ndarray, first: float, held: np.ndarray) -> bool:
        """No element holds anything newer than its frame: one scan of all times against
        the batch's first (no frame is older), where that is less work than a gather."""
        if elem.size * _SCAN_PER_GATHER >= held.size:
            if first >= held.max(initial=-np.inf):
                return True
        return every(when >= held.take(elem))
