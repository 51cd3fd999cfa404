"""The batch decoder: frames in, measured arrays updated, every rejection counted.

Per batch: look up each frame's message by ID, check its length, decode the multiplexer
to find its slot, check CRC and alive counter, then decode the mapped signals of all
accepted frames in one gather and scatter them into the measurements (latest timestamp
wins). No step loops over frames, modules or signals. A steady batch (every frame known,
well formed and in sequence, the usual case) is checked and decoded with fewer, coarser
operations (`controller.ingest.steady`); a small batch goes frame by frame
(`controller.ingest.per_frame`). All three give the same result.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import IntEnum

import numpy as np
from cantools.database import Database

from controller.errors import MappingError
from controller.frames import FrameBatch
from controller.ingest import e2e
from controller.ingest.layout import MessageLayout, SlotTable, compile_message
from controller.ingest.mapping import MappingConfig
from controller.ingest.per_frame import PerFrame
from controller.ingest.routing import route_slots, source_names
from controller.ingest.selection import select_messages
from controller.ingest.steady import SteadyPath
from controller.measurements import Measurements
from dbc.masks import every, positions


class RejectReason(IntEnum):
    """Why a frame of a known message was dropped."""

    DLC = 0
    UNKNOWN_MUX = 1
    CRC = 2
    COUNTER_FROZEN = 3  # repeated counter: dropped, the stream goes on
    COUNTER_JUMP = 4  # wrong sequence: too far ahead and not confirmed by the next frame
    COUNTER_OUT_OF_ORDER = 5  # behind the last accepted counter: dropped, the stream goes on
    COUNTER_INVALID = 6  # a value the counter never takes (15 for Profile 11)


_REASONS = len(RejectReason)
# Work (`PerFrame.work_per_frame` per frame) up to which the per-frame path is cheaper than
# the fixed cost of the array path's steady batch: about 15 classic or 5 64-byte FD slave
# frames.
SMALL_BATCH_WORK = 80
_OK = np.int8(-1)  # reason of a frame that is still acceptable
_DLC = np.int8(RejectReason.DLC)
_COUNTER_REASON = np.zeros(len(e2e.CounterVerdict), np.int8)  # by e2e.CounterVerdict
_COUNTER_REASON[e2e.CounterVerdict.REPEATED] = RejectReason.COUNTER_FROZEN
_COUNTER_REASON[e2e.CounterVerdict.OUT_OF_ORDER] = RejectReason.COUNTER_OUT_OF_ORDER
_COUNTER_REASON[e2e.CounterVerdict.WRONG_SEQUENCE] = RejectReason.COUNTER_JUMP
_COUNTER_REASON[e2e.CounterVerdict.INVALID] = RejectReason.COUNTER_INVALID


@dataclass
class IngestState:
    """Everything the decoder remembers between batches (owned by the controller state)."""

    measurements: Measurements
    counters: e2e.CounterState  # per message: last accepted and last received counter
    accepted: np.ndarray  # (sources,) int64, cumulative
    rejected: np.ndarray  # (sources, reasons) int64, cumulative
    last_seen: np.ndarray  # (sources,) float64, time of the last accepted frame
    unknown: int = 0  # frames with an ID outside the databases, cumulative


@dataclass(frozen=True)
class IngestReport:
    """What one batch did."""

    sources: tuple[str, ...]
    frames: int
    unknown: int
    accepted: np.ndarray  # (sources,) int64
    rejected: np.ndarray  # (sources, reasons) int64
    updated: int  # measured elements written

    def rejected_for(self, reason: RejectReason) -> int:
        return int(self.rejected[:, reason].sum())


@dataclass(frozen=True)
class DecodedMessage:
    """All signals of one message for the frames of a batch that carried it."""

    name: str
    rows: np.ndarray  # indices into the batch
    timestamps: np.ndarray
    values: dict[str, np.ndarray] = field(default_factory=dict)  # NaN where not present
    present: dict[str, np.ndarray] = field(default_factory=dict)  # mux routing per frame


@dataclass(frozen=True)
class _Routed:
    rows: np.ndarray  # batch rows of known messages
    msg: np.ndarray  # message index per row
    slot: np.ndarray  # slot index per row (valid where reason < 0)
    reason: np.ndarray  # int8 RejectReason, -1 when still acceptable


class BatchDecoder:
    """A compiled decoder for a set of databases and one mapping; immutable and reusable."""

    def __init__(
        self,
        layouts: list[MessageLayout],
        mapping: MappingConfig,
        targets: Mapping[str, int],
        unsupported: dict[str, str],
        optional: Collection[str] = (),
        notices: Sequence[str] = (),
    ) -> None:
        self.unsupported = unsupported
        self._layouts = layouts
        self._by_name = {layout.name: i for i, layout in enumerate(layouts)}
        self._ids = np.array([layout.frame_id for layout in layouts], np.uint32)
        self._length = np.array([layout.length for layout in layouts], np.int64)
        self._is_mux = np.array([layout.mux is not None for layout in layouts], bool)
        self._mux = SlotTable([[layout.mux] if layout.mux else [] for layout in layouts])
        slots = [(m, slot) for m, layout in enumerate(layouts) for slot in layout.slots]
        self._slot_msg = np.array([m for m, _ in slots], np.int64)
        first = np.searchsorted(self._slot_msg, np.arange(len(layouts)))
        self._base_slot = first.astype(np.int64)
        # (message << 32 | mux value) -> slot, ascending; the -1 sentinel never matches.
        keyed = [
            (m << 32 | s.mux_value, k) for k, (m, s) in enumerate(slots) if s.mux_value is not None
        ]
        self._slot_keys = np.array([-1] + [key for key, _ in keyed], np.int64)
        self._keyed_slots = np.array([0] + [k for _, k in keyed], np.int64)
        self._all = SlotTable([slot.signals for _, slot in slots])
        self._slot_names = [tuple(s.name for s in slot.signals) for _, slot in slots]
        self._targets = dict(targets)
        self.layout = Measurements(self._targets).layout
        offsets = {name: (start, size) for name, start, size in self.layout}
        self._routes = route_slots(layouts, slots, mapping, offsets, optional)
        self.available = self._routes.available
        absent = [name for name in self._targets if name not in self.available]
        self.notices = tuple(notices) + tuple(
            f"{name}: no signal feeds it, so it is not available and the checks that need "
            f"it are off"
            for name in absent
        )
        self._e2e = e2e.build_e2e(layouts, mapping.e2e)
        names = source_names(layouts, mapping)
        self.sources = tuple(dict.fromkeys(names))
        self._source = np.array([self.sources.index(n) for n in names], np.int64)
        self._checked: Callable[[], Measurements | None] = lambda: None
        self._per_frame = PerFrame(
            layouts, self._slot_msg.tolist(), self._routes, self._e2e, self._source, _COUNTER_REASON
        )
        self.small_batch = int(SMALL_BATCH_WORK / self._per_frame.work_per_frame)
        self._steady = SteadyPath(
            layouts, self._slot_msg.tolist(), self._routes, self._e2e, self._source
        )

    # -- state ------------------------------------------------------------------------

    def new_state(self) -> IngestState:
        """Fresh state: nothing measured, no counter seen."""
        n = len(self.sources)
        return IngestState(
            measurements=Measurements(self._targets, self.available),
            counters=e2e.CounterState.fresh(len(self._layouts)),
            accepted=np.zeros(n, np.int64),
            rejected=np.zeros((n, _REASONS), np.int64),
            last_seen=np.full(n, -np.inf),
        )

    @property
    def protected(self) -> dict[str, tuple[bool, bool]]:
        """(CRC checked, counter checked) of every message with an end-to-end check."""
        return {
            layout.name: (bool(self._e2e.has_crc[i]), bool(self._e2e.has_counter[i]))
            for i, layout in enumerate(self._layouts)
            if self._e2e.has_crc[i] or self._e2e.has_counter[i]
        }

    # -- per batch --------------------------------------------------------------------

    def _route(self, batch: FrameBatch, check_crc: bool) -> _Routed:
        """Message, slot and length/CRC/mux verdict of every frame with a known ID.

        The CRC is checked before the multiplexer so that a corrupted frame counts as a
        CRC failure, not as an unknown group.
        """
        keys = batch.keys
        pos = np.searchsorted(self._ids, keys)
        np.minimum(pos, self._ids.shape[0] - 1, out=pos)
        known = self._ids[pos] == keys
        rows = positions(known)
        msg = pos[rows]
        reason = np.where(batch.dlc[rows] != self._length[msg], _DLC, _OK)
        if check_crc:
            check = positions((reason < 0) & self._e2e.has_crc[msg])
            if check.size:
                sub = rows[check]
                good = e2e.crc_ok(self._e2e, msg[check], batch.data[sub], batch.dlc[sub])
                reason[check[~good]] = RejectReason.CRC
        slot = self._base_slot[msg]
        muxed = positions(self._is_mux[msg] & (reason < 0))
        if muxed.size:
            value = np.trunc(self._mux.physical(batch.data[rows[muxed]], msg[muxed])[:, 0])
            in_range = (value >= 0) & (value < 2**32)
            key = (msg[muxed] << 32) | np.where(in_range, value, 0).astype(np.int64)
            at = np.searchsorted(self._slot_keys, key)
            np.minimum(at, self._slot_keys.shape[0] - 1, out=at)
            hit = in_range & (self._slot_keys[at] == key)
            slot[muxed] = self._keyed_slots[at]
            reason[muxed[~hit]] = RejectReason.UNKNOWN_MUX
        return _Routed(rows, msg, slot, reason)

    def _check_counters(self, batch: FrameBatch, r: _Routed, state: IngestState) -> None:
        """Mark counter failures in ``r.reason``; advance the accepted counters."""
        table = self._e2e
        check = positions((r.reason < 0) & table.has_counter[r.msg])
        if check.size:
            rows = r.rows[check]
            counter = table.counter.raw(batch.data[rows], r.msg[check])[:, 0]
            verdict = e2e.check_counters(
                table, r.msg[check], counter, batch.timestamps[rows], state.counters
            )
            dropped = positions(verdict)
            r.reason[check[dropped]] = _COUNTER_REASON[verdict[dropped]]

    def decode(self, batch: FrameBatch, state: IngestState) -> IngestReport:
        """Check and decode ``batch`` into ``state.measurements`` (in place).

        Batches up to `small_batch` frames go frame by frame, larger ones as arrays: the
        same result either way (`decode_frames`, `decode_arrays`), at the lower cost.
        """
        if len(batch) <= self.small_batch:
            return self.decode_frames(batch, state)
        return self.decode_arrays(batch, state)

    def _check_layout(self, state: IngestState) -> None:
        """Measurements never change their layout, so each is checked once."""
        meas = state.measurements
        if self._checked() is not meas:
            if meas.layout != self.layout:
                raise MappingError("measurements were not built for this decoder's targets")
            self._checked = weakref.ref(meas)

    def decode_frames(self, batch: FrameBatch, state: IngestState) -> IngestReport:
        """`decode` frame by frame with per-ID tables: no fixed cost of array calls."""
        self._check_layout(state)
        n_src = len(self.sources)
        accepted = np.zeros(n_src, np.int64)
        rejected = np.zeros((n_src, _REASONS), np.int64)
        if len(batch) == 0:
            return IngestReport(self.sources, 0, 0, accepted, rejected, 0)
        unknown, taken, updated = self._per_frame.decode(
            batch, state.counters, accepted, rejected, state.last_seen, state.measurements
        )
        n = len(batch)
        state.accepted += accepted
        if unknown + taken < n:  # some frame was rejected
            state.rejected += rejected
        state.unknown += unknown
        return IngestReport(self.sources, n, unknown, accepted, rejected, updated)

    def decode_arrays(self, batch: FrameBatch, state: IngestState) -> IngestReport:
        """`decode` with one array operation per step over the whole batch."""
        self._check_layout(state)
        meas = state.measurements
        n_src = len(self.sources)
        if len(batch) == 0:  # a quiet bus in this cycle: nothing to route or count
            nothing = np.zeros(n_src, np.int64)
            return IngestReport(
                self.sources, 0, 0, nothing, np.zeros((n_src, _REASONS), np.int64), 0
            )
        steady = self._steady.decode(
            batch,
            state.counters,
            state.last_seen,
            meas,
            lambda rows, slot: self._write_accepted(batch, rows, slot, meas),
        )
        if steady is not None:  # the usual batch: nothing rejected, nothing unknown
            state.accepted += steady.accepted
            rejected = np.zeros((n_src, _REASONS), np.int64)
            return IngestReport(
                self.sources, len(batch), 0, steady.accepted, rejected, steady.updated
            )
        r = self._route(batch, check_crc=True)
        self._check_counters(batch, r, state)
        source = self._source[r.msg]
        ok = r.reason < 0
        rejected = np.zeros((n_src, _REASONS), np.int64)
        if every(ok):  # the usual batch: nothing to count as rejected, no selection
            rows, slot = r.rows, r.slot
        else:
            bad = ~ok
            rejected.flat += np.bincount(
                source[bad] * _REASONS + r.reason[bad], minlength=n_src * _REASONS
            )
            rows, slot, source = r.rows[ok], r.slot[ok], source[ok]
            state.rejected += rejected
        accepted = np.bincount(source, minlength=n_src)
        unknown = len(batch) - r.rows.shape[0]
        np.maximum.at(state.last_seen, source, batch.timestamps[rows])
        state.accepted += accepted
        state.unknown += unknown
        updated = self._write_accepted(batch, rows, slot, meas)
        return IngestReport(self.sources, len(batch), unknown, accepted, rejected, updated)

    def _write_accepted(
        self, batch: FrameBatch, rows: np.ndarray, slot: np.ndarray, meas: Measurements
    ) -> int:
        """`_scatter` of the accepted frames whose slot feeds some element."""
        use = self._routes.has_mapped[slot]
        if not every(use):
            rows, slot = rows[use], slot[use]
        return self._scatter(batch, rows, slot, meas)

    def _scatter(
        self, batch: FrameBatch, rows: np.ndarray, slot: np.ndarray, meas: Measurements
    ) -> int:
        """Write decoded values of accepted frames; per element the latest timestamp wins.

        ``rows`` ascend (arrival order), so stable sorts keep arrival order among frames
        with equal timestamps and the later arrival wins.
        """
        if rows.size == 0:
            return 0
        routes = self._routes
        when = batch.timestamps[rows]
        if routes.slot_exclusive and rows.size > 1:
            # Every element belongs to one slot: keep the newest frame of each slot.
            order = np.lexsort((when, slot))
            ordered = slot[order]
            newest = np.ones(order.shape[0], bool)
            np.not_equal(ordered[1:], ordered[:-1], out=newest[:-1])
            if not every(newest):
                keep = np.sort(order[newest])
                rows, slot, when = rows[keep], slot[keep], when[keep]
        values = routes.table.physical(batch.data[rows], slot)
        frame = np.arange(rows.shape[0])[:, None]
        elem = routes.target[slot]  # (n, W), whole rows per slot
        if routes.indexed:
            elem = self._moved(elem, values[frame, routes.index_column[slot]], slot)
        value = values[frame, routes.column[slot]]
        flag = values[frame, routes.flag_column[slot]]
        invalid = routes.has_flag[slot] & (flag == routes.flag_invalid[slot])
        if routes.scaled:
            value *= routes.scale[slot]
        good = ~invalid & np.isfinite(value)
        if routes.padded or routes.indexed:
            real = elem >= 0
            when = when[real.nonzero()[0]]
            elem, value, good = elem[real], value[real], good[real]
        else:
            when = when.repeat(elem.shape[1])
            elem, value, good = elem.ravel(), value.ravel(), good.ravel()
        if not routes.slot_exclusive:
            order = np.lexsort((when, elem))
            ordered = elem[order]
            newest = np.ones(order.shape[0], bool)
            np.not_equal(ordered[1:], ordered[:-1], out=newest[:-1])
            last = order[newest]
            elem, value, good, when = elem[last], value[last], good[last], when[last]
        newer = when >= meas.updated_at[elem]
        if not every(newer):
            elem, value, good, when = elem[newer], value[newer], good[newer], when[newer]
        meas.value[elem] = value
        meas.reported_valid[elem] = good
        meas.updated_at[elem] = when
        return int(elem.size)

    def _moved(self, elem: np.ndarray, index: np.ndarray, slot: np.ndarray) -> np.ndarray:
        """Elements shifted by each frame's index signal; -1 where outside their target."""
        routes = self._routes
        moves = routes.has_index[slot]
        step = index * routes.index_stride[slot]
        whole = np.isfinite(step) & (step == np.trunc(step))
        elem = elem + np.where(moves & whole, step, 0).astype(np.int64)
        inside = (elem >= routes.low[slot]) & (elem < routes.high[slot]) & (whole | ~moves)
        return np.where(inside, elem, -1)

    # -- generic decoding ---------------------------------------------------------------

    def decode_all(self, batch: FrameBatch) -> dict[str, DecodedMessage]:
        """Every signal of every frame with a known ID, right length and known mux value.

        No end-to-end check and no state: for diagnosis, tools and equivalence tests.
        """
        r = self._route(batch, check_crc=False)
        ok = r.reason < 0
        rows, msg, slot = r.rows[ok], r.msg[ok], r.slot[ok]
        values = self._all.physical(batch.data[rows], slot)
        out: dict[str, DecodedMessage] = {}
        for m in np.unique(msg):  # one pass per message present, to build its dict
            sel = positions(msg == m)
            out[self._layouts[m].name] = self._message_values(
                int(m), rows[sel], slot[sel], values[sel], batch.timestamps[rows[sel]]
            )
        return out

    def _message_values(
        self, m: int, rows: np.ndarray, slot: np.ndarray, values: np.ndarray, ts: np.ndarray
    ) -> DecodedMessage:
        layout = self._layouts[m]
        names = list(dict.fromkeys(s.name for sl in layout.slots for s in sl.signals))
        result = DecodedMessage(layout.name, rows, ts)
        for name in names:
            result.values[name] = np.full(rows.shape[0], np.nan)
            result.present[name] = np.zeros(rows.shape[0], bool)
        for k in np.unique(slot):
            sel = slot == k
            for col, name in enumerate(self._slot_names[k]):
                result.values[name][sel] = values[sel, col]
                result.present[name][sel] = True
        return result

    def latest(self, batch: FrameBatch, message: str) -> dict[str, float] | None:
        """Signals of the newest well-formed frame of ``message`` in the batch, or None.

        Length, mux and CRC (where configured) are checked; the alive counter needs state,
        so supervise such messages through ``decode`` and a mapping instead.
        """
        if message not in self._by_name:
            raise MappingError(f"{message!r} is not a message of the decoder's databases")
        m = self._by_name[message]
        sub = batch.select(batch.keys == self._ids[m])
        r = self._route(sub, check_crc=True)
        ok = positions(r.reason < 0)
        if ok.size == 0:
            return None
        newest = ok[np.lexsort((ok, sub.timestamps[r.rows[ok]]))[-1]]
        row, slot = r.rows[newest], r.slot[newest]
        values = self._all.physical(sub.data[row : row + 1], np.array([slot]))[0]
        return {name: float(values[c]) for c, name in enumerate(self._slot_names[slot])}


def compile_decoder(
    databases: Database | Iterable[Database] | Mapping[str, Database],
    mapping: MappingConfig | None = None,
    targets: Mapping[str, int] | None = None,
    *,
    provides: Mapping[str, str] | None = None,
    optional: Collection[str] = (),
) -> BatchDecoder:
    """Compile ``databases`` (one bus) and ``mapping`` into a decoder for ``targets`` sizes.

    Databases keyed by a label (e.g. ``{"slaves": db, "sensor": db}``) can be named in
    ``provides`` (message name -> label) to settle a frame ID they define differently;
    see `controller.ingest.selection`. Targets in ``optional`` may be fed by no signal:
    they are then missing from ``decoder.available``. ``decoder.notices`` says what was
    ignored or is not available.

    Without a mapping the decoder feeds no measurement but still checks and counts frames
    and serves ``decode_all`` and ``latest``.

    Messages the layout compiler cannot handle (float signals, nested multiplexing) are
    left out and listed in ``decoder.unsupported``; their frames count as unknown.
    """
    if isinstance(databases, Database):
        labelled = {"database": databases}
    elif isinstance(databases, Mapping):
        labelled = dict(databases)
    else:
        labelled = {f"database {i}": db for i, db in enumerate(databases)}
    mapping = mapping or MappingConfig(rules=())
    selection = select_messages(labelled, mapping, provides)
    layouts: list[MessageLayout] = []
    unsupported: dict[str, str] = {}
    for message in selection.messages:
        try:
            layouts.append(compile_message(message))
        except MappingError as exc:
            unsupported[message.name] = str(exc)
    if not layouts:
        raise MappingError("the databases hold no decodable message")
    layouts.sort(key=lambda layout: layout.frame_id)
    return BatchDecoder(layouts, mapping, targets or {}, unsupported, optional, selection.notices)
