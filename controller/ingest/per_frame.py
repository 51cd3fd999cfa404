"""Per-frame decoding of small batches, with tables precomputed per frame ID.

Below a few dozen frames the array path's fixed cost (about a hundred NumPy calls per batch)
exceeds the work itself: a controller reading a small pack every 10 ms sees four frames. This
path walks the frames in plain Python against dictionaries built once from the same
compiled layouts and routes, and makes the same decisions in the same order (length, CRC,
multiplexer, alive counter, then the scatter where the newest frame of each element wins).
Tests hold both paths equal on arbitrary batches, so ``BatchDecoder.decode`` picks by size.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from controller.frames import EXTENDED_FLAG, MAX_PAYLOAD, FrameBatch
from controller.ingest.e2e import E2ETable
from controller.ingest.fields import Field, field_of
from controller.ingest.layout import MessageLayout
from controller.ingest.routing import Routes
from controller.ingest.slot_code import compile_slot
from controller.measurements import Measurements
from dbc import e2e as profile
from dbc.e2e_counter import CounterState, judge_counter

_TABLE = profile.TABLE.tolist()
_MUX_END = 2.0**32
_SCALAR_WRITES = 48  # elements up to which a batch's values are written one by one


class _Column(NamedTuple):
    """A mapped column of a slot: the element it feeds and how its value is judged."""

    element: int
    value: Field
    flag: Field | None
    flag_invalid: float
    scale: float
    index: Field | None
    stride: int
    low: int
    high: int


@dataclass(frozen=True, slots=True)
class _Message:
    index: int
    length: int
    source: int
    crc_start: int | None  # the CRC register after the data ID, None without a CRC
    counter: Field | None
    modulo: int
    max_step: int
    mux: Field | None
    slots: dict[int, int]  # mux value -> slot (a message without a mux: {0: its slot})
    slot: int  # the slot of a message without a mux
    raw_mux: bool  # the multiplexer is unsigned with scale 1 and offset 0
    big: bool  # some signal needs the big-endian reading


class PerFrame:
    """The decoder's tables re-cut per frame ID and slot, for `decode`."""

    def __init__(
        self,
        layouts: Sequence[MessageLayout],
        slot_message: Sequence[int],
        routes: Routes,
        e2e: E2ETable,
        source: np.ndarray,
        counter_reason: Sequence[int],
    ) -> None:
        self._counter_reason = list(counter_reason)
        self._scaled = routes.scaled
        self._exclusive = routes.slot_exclusive
        self._columns = [
            _slot_columns(routes, k, layouts[m].length) if routes.has_mapped[k] else None
            for k, m in enumerate(slot_message)
        ]
        self._slot_code = [
            None
            if columns is None or any(c.index is not None for c in columns)
            else compile_slot(columns, [c.element for c in columns], routes.scaled)
            for columns in self._columns
        ]
        widest = [0] * len(layouts)
        for k, m in enumerate(slot_message):
            widest[m] = max(widest[m], len(self._columns[k] or ()))
        # What a frame costs here, in decoded columns (checks count as 2); the mean over
        # messages stands for the traffic.
        self.work_per_frame = 2 + sum(widest) / len(widest)
        self._messages: dict[int, _Message] = {}
        for m, layout in enumerate(layouts):
            mine = [k for k, mm in enumerate(slot_message) if mm == m]
            length = layout.length
            data_id = int(e2e.data_id[m])
            counter = e2e.counter.rows[m][0] if e2e.has_counter[m] else None
            signals = [sig for k in mine for sig in routes.table.rows[k]]
            signals += [layout.mux] if layout.mux is not None else []
            signals += [counter] if counter is not None else []
            self._messages[layout.frame_id] = _Message(
                index=m,
                length=length,
                source=int(source[m]),
                crc_start=_TABLE[_TABLE[data_id & 0xFF] ^ (data_id >> 8 & 0xFF)]
                if e2e.has_crc[m]
                else None,
                counter=field_of(counter, length) if counter is not None else None,
                modulo=int(e2e.modulo[m]),
                max_step=int(e2e.max_jump[m]),
                mux=field_of(layout.mux, length) if layout.mux is not None else None,
                slots={s.mux_value: k for k, s in zip(mine, layout.slots, strict=True)}
                if layout.mux is not None
                else {0: mine[0]},
                slot=mine[0],
                raw_mux=layout.mux is not None
                and not layout.mux.signed
                and layout.mux.scale == 1
                and layout.mux.offset == 0,
                big=any(field_of(sig, length).big for sig in signals),
            )

    def decode(
        self,
        batch: FrameBatch,
        counters: CounterState,
        accepted: np.ndarray,
        rejected: np.ndarray,
        last_seen: np.ndarray,
        meas: Measurements,
    ) -> tuple[int, int, int]:
        """Check every frame, count it into ``accepted`` or ``rejected`` (per source and
        reason), advance ``counters`` and ``last_seen``, write accepted values into ``meas``.

        Returns the unknown and the accepted frames and the number of measured elements
        written.
        """
        ids, dlc = batch.ids.tolist(), batch.dlc.tolist()
        extended, times = batch.extended.tolist(), batch.timestamps.tolist()
        payload = batch.data.tobytes()
        messages = self._messages
        table = _TABLE
        # In time order (the usual batch) counters are judged as frames come; otherwise
        # after sorting the frames that pass the other checks.
        in_order = all(map(operator.le, times, times[1:]))  # False with a NaN
        reference, received = counters.reference, counters.received
        reference_of = reference.item
        known: list[_Frame] = []  # frames still acceptable, arrival order
        unknown = 0
        for i, frame_id in enumerate(ids):
            message = messages.get(frame_id | EXTENDED_FLAG if extended[i] else frame_id)
            if message is None:
                unknown += 1
                continue
            length = message.length
            if dlc[i] != length:
                rejected[message.source, _DLC] += 1
                continue
            start = MAX_PAYLOAD * i
            row = payload[start : start + length]
            crc = message.crc_start
            if crc is not None:
                for byte in row[1:]:
                    crc = table[crc ^ byte]
                if crc != row[0]:
                    rejected[message.source, _CRC] += 1
                    continue
            little = int.from_bytes(row, "little")
            big = int.from_bytes(row, "big") if message.big else 0
            mux = message.mux
            if mux is None:
                slot = message.slot
            else:
                if message.raw_mux:  # unsigned, unscaled: the raw value is the mux value
                    raw = ((big if mux.big else little) >> mux.shift) & mux.mask
                    slot = message.slots.get(raw, -1)
                else:
                    slot = _slot(message, mux.physical(little, big))
                if slot < 0:
                    rejected[message.source, _UNKNOWN_MUX] += 1
                    continue
            counter = message.counter
            if counter is not None and in_order:
                value = ((big if counter.big else little) >> counter.shift) & counter.mask
                m = message.index
                held = reference_of(m)
                modulo = message.modulo
                if held >= 0 and value < modulo and 0 < (value - held) % modulo <= message.max_step:
                    received[m] = reference[m] = value  # the usual step: as judge_counter
                else:
                    verdict = judge_counter(counters, m, value, modulo, message.max_step)
                    if verdict:
                        rejected[message.source, self._counter_reason[verdict]] += 1
                        continue
            known.append((i, message, slot, little, big))
        if not in_order and any(frame[1].counter is not None for frame in known):
            known = self._judge(known, times, counters, rejected)
        newest: dict[int, list] = {}  # per source: [frames, newest time]
        for i, message, _, _, _ in known:
            held = newest.get(message.source)
            if held is None:
                held = newest[message.source] = [0, last_seen.item(message.source)]
            held[0] += 1
            when = times[i]
            if held[1] == held[1] and (when != when or when > held[1]):  # NaN wins
                held[1] = when
        for source, (count, when) in newest.items():
            accepted[source] = count
            last_seen[source] = when
        if self._exclusive:
            return unknown, len(known), self._scatter_slots(known, times, in_order, meas)
        return unknown, len(known), self._scatter(known, times, meas)

    def _judge(
        self, known: list[_Frame], times: list[float], counters: CounterState, rejected
    ) -> list[_Frame]:
        """Alive counters, each message's frames in (time, arrival) order; the accepted
        frames are returned in arrival order."""
        order = sorted(known, key=lambda f: (_time_key(times[f[0]]), f[0]))
        dropped = set()
        for frame in order:
            i, message, _, little, big = frame
            if message.counter is None:
                continue
            verdict = judge_counter(
                counters,
                message.index,
                message.counter.raw(little, big),
                message.modulo,
                message.max_step,
            )
            if verdict:
                rejected[message.source, self._counter_reason[verdict]] += 1
                dropped.add(i)
        return [f for f in known if f[0] not in dropped] if dropped else known

    def _scatter_slots(
        self, known: list[_Frame], times: list[float], in_order: bool, meas: Measurements
    ) -> int:
        """`_scatter` when each element has one slot: only the newest frame of each slot
        (ties: the later arrival) is decoded, and no two of them share an element."""
        newest: dict[int, _Frame] = {}
        if in_order:
            for frame in known:
                newest[frame[2]] = frame
        else:
            ranks: dict[int, tuple[bool, float]] = {}
            for frame in known:
                rank = _time_key(times[frame[0]])
                if frame[2] not in ranks or rank >= ranks[frame[2]]:
                    ranks[frame[2]] = rank
                    newest[frame[2]] = frame
        elems: list[int] = []
        values: list[float] = []
        goods: list[bool] = []
        whens: list[float] = []
        for i, _, slot, little, big in newest.values():
            code = self._slot_code[slot]
            if code is None:  # unmapped (a slot with an index signal is never exclusive)
                continue
            value, good = code.decode(little, big)
            elems += code.elements
            values += value
            goods += good
            whens += [times[i]] * len(value)
        return _write(meas, elems, values, goods, whens)

    def _scatter(self, known: list[_Frame], times: list[float], meas: Measurements) -> int:
        """The newest frame of each element wins (ties: the later arrival), and only
        when it is not older than what the element holds."""
        newest: dict[int, tuple[tuple[bool, float], float, bool, float]] = {}
        scaled = self._scaled
        isfinite = math.isfinite
        for i, _, slot, little, big in known:
            columns = self._columns[slot]
            if columns is None:
                continue
            when = times[i]
            rank = _time_key(when)
            for elem, field, flag, invalid, scale, index, stride, low, high in columns:
                if index is not None:
                    elem = _moved(elem, index.physical(little, big) * stride, low, high)
                if elem < 0:
                    continue
                value_big, shift, mask, sign, value_scale, offset = field
                raw = ((big if value_big else little) >> shift) & mask
                if raw & sign:
                    raw -= sign << 1
                value = raw * value_scale + offset
                if scaled:
                    value *= scale
                good = isfinite(value)
                if good and flag is not None:
                    flag_big, shift, mask, sign, flag_scale, offset = flag
                    raw = ((big if flag_big else little) >> shift) & mask
                    if raw & sign:
                        raw -= sign << 1
                    good = raw * flag_scale + offset != invalid
                held = newest.get(elem)
                if held is None or rank >= held[0]:
                    newest[elem] = (rank, value, good, when)
        held = list(newest.values())
        return _write(
            meas,
            list(newest),
            [h[1] for h in held],
            [h[2] for h in held],
            [h[3] for h in held],
        )


def _write(
    meas: Measurements,
    elems: list[int],
    values: list[float],
    goods: list[bool],
    whens: list[float],
) -> int:
    """Store each value where its time is not older than the element's; returns how many."""
    if len(elems) <= _SCALAR_WRITES:  # cheaper element by element than as arrays
        written = 0
        value_of, valid_of, stored = meas.value, meas.reported_valid, meas.updated_at
        for elem, value, good, when in zip(elems, values, goods, whens, strict=True):
            if when >= stored.item(elem):
                value_of[elem] = value
                valid_of[elem] = good
                stored[elem] = when
                written += 1
        return written
    elem = np.array(elems, np.int64)
    value = np.array(values, np.float64)
    good = np.array(goods, bool)
    when = np.array(whens, np.float64)
    newer = when >= meas.updated_at[elem]
    if not newer.all():
        elem, value, good, when = elem[newer], value[newer], good[newer], when[newer]
    meas.value[elem] = value
    meas.reported_valid[elem] = good
    meas.updated_at[elem] = when
    return int(elem.size)


def _moved(elem: int, step: float, low: int, high: int) -> int:
    """The element an index signal moves a column to, or -1 outside its target."""
    if not (math.isfinite(step) and step == math.trunc(step)):
        return -1
    elem += int(step)
    return elem if low <= elem < high else -1


_Frame = tuple  # (batch row, _Message, slot, payload little-endian, payload big-endian)
_DLC, _UNKNOWN_MUX, _CRC = 0, 1, 2  # RejectReason values (the decoder imports this module)


def _slot(message: _Message, value: float) -> int:
    """The slot of a multiplexer value, as the array path: truncated, within 0..2**32-1."""
    if not math.isfinite(value):
        return -1
    value = float(math.trunc(value))
    if not 0.0 <= value < _MUX_END:
        return -1
    return message.slots.get(int(value), -1)


def _time_key(when: float) -> tuple[bool, float]:
    """Sort key of a timestamp as NumPy sorts: NaN after everything."""
    return (True, 0.0) if when != when else (False, when)


def _slot_columns(routes: Routes, k: int, length: int) -> tuple[_Column, ...]:
    """The mapped columns of slot ``k`` (padding left out)."""
    row = routes.table.rows[k]
    out = []
    for w in range(routes.target.shape[1]):
        if routes.target[k, w] < 0 and not routes.has_index[k, w]:
            continue
        out.append(
            _Column(
                element=int(routes.target[k, w]),
                value=field_of(row[routes.column[k, w]], length),
                flag=field_of(row[routes.flag_column[k, w]], length)
                if routes.has_flag[k, w]
                else None,
                flag_invalid=float(routes.flag_invalid[k, w]),
                scale=float(routes.scale[k, w]),
                index=field_of(row[routes.index_column[k, w]], length)
                if routes.has_index[k, w]
                else None,
                stride=int(routes.index_stride[k, w]),
                low=int(routes.low[k, w]),
                high=int(routes.high[k, w]),
            )
        )
    return tuple(out)
