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
first 64-bit word of the payload, a dense multiplexer-value-to-slot table (to the slot's
rank in the tables of `controller.ingest.slot_words` where they apply, so that finding the
newest frame of each slot also finds an unknown multiplexer value), and per counter kind a
table of (previous counter, counter) pairs that step 1..K; for 11-bit IDs the message
columns are also laid out by ID, so one gather by ID fetches them all. The newest frame of
each mapped slot is decoded from the payload's 64-bit words and written by
`controller.ingest.slot_words`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np

from controller.frames import MAX_PAYLOAD, FrameBatch
from controller.ingest.crc_check import CrcRow, crc_check
from controller.ingest.e2e import E2ETable
from controller.ingest.fields import Field, field_of
from controller.ingest.layout import MessageLayout
from controller.ingest.routing import Routes
from controller.ingest.slot_words import SlotWords
from controller.measurements import Measurements
from dbc.e2e_counter import CounterState
from dbc.masks import every, positions, some

_WORD_BITS = 64
_LUT_VALUES = 256  # multiplexer and counter values up to which the tables are dense
_KEY_SENTINEL = np.uint32(0xFFFF_FFFF)  # above every frame key, never a message
_STANDARD_IDS = 0x800


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
        self._scatter = SlotWords.build(routes, layouts, slot_message)
        # where the slot tables apply, the table gives the slot's rank in them instead
        self._lut = np.array(lut, np.int64) if self._scatter is None else self._scatter.ranks(lut)
        self._counter_base *= (_LUT_VALUES + 1) * _LUT_VALUES
        self._one_kind = len(kinds) <= 1  # every counter base is 0
        self._index_type = np.int16 if len(layouts) < 2**15 else np.intp  # sorts faster
        self._counter_ok = np.concatenate(
            [_counter_table(n, k) for n, k in kinds] or [np.zeros(0, bool)]
        )

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
        do not apply (elements fed by several slots, index signals, unsigned 64-bit signals).
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
        slot = self._lut.take(mux_counter[0] + message[_LUT])  # or its rank
        scatter = self._scatter
        if scatter is None:
            if some(slot < 0):
                return None
            newest = None
        else:
            newest = scatter.newest(slot)
            if newest is None:
                return None
        advance = self._counters(mux_counter[1], message, counters)
        if advance is None:
            return None
        group, counter = advance
        counters.received[group] = counter
        counters.reference[group] = counter
        source = message[_SOURCE]
        accepted = np.bincount(source, minlength=self._n_sources)
        np.maximum.at(last_seen, source, times)
        if newest is None:
            return Steady(accepted, general_scatter(np.arange(n), slot))
        return Steady(accepted, scatter.write(words, newest, times, meas))

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
