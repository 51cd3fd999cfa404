"""End-to-end checks of received frames: CRC and alive counter, for a whole batch at once.

The CRC follows the slave profile of ``dbc.e2e`` (CRC byte 0 over the data ID and bytes
1..DLC-1). The alive counter must advance by 1..max_jump (lost frames are tolerated)
relative to the last *accepted* counter of the same message: a repeated counter is a
frozen sender, a larger step a stream that cannot be trusted. Frames of one message in
the same batch are checked in time order; the loop runs once per frame *rank* within
its message (one or two per control period), each pass covering every message at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from controller.errors import MappingError
from controller.ingest.layout import MessageLayout, SignalLayout, SlotTable
from controller.ingest.mapping import E2ERule
from dbc.e2e import crc8_batch

CRC_SEGMENTS = ((0, 0, 0xFF, 0),)  # the profile's CRC: all of byte 0


@dataclass(frozen=True)
class E2ETable:
    """E2E settings per message index (messages sorted as in the decoder)."""

    has_crc: np.ndarray  # (M,) bool
    has_counter: np.ndarray  # (M,) bool
    counter: SlotTable  # row m: the counter signal of message m
    modulo: np.ndarray  # (M,) int64, 2**counter bits
    max_jump: np.ndarray  # (M,) int64


def _root_signal(layout: MessageLayout, name: str, key: str) -> SignalLayout:
    """A signal present in every slot of the message (not multiplexed)."""
    found = [next((s for s in slot.signals if s.name == name), None) for slot in layout.slots]
    if not found or any(s is None for s in found):
        raise MappingError(f"{key}: {layout.name} has no unmultiplexed signal {name!r}")
    return found[0]


def build_e2e(layouts: Sequence[MessageLayout], rules: Sequence[E2ERule]) -> E2ETable:
    """Resolve which messages carry a CRC and/or counter; the first matching rule applies."""
    m = len(layouts)
    has_crc = np.zeros(m, bool)
    has_counter = np.zeros(m, bool)
    modulo = np.ones(m, np.int64)
    max_jump = np.zeros(m, np.int64)
    counters: list[list[SignalLayout]] = [[] for _ in layouts]
    for i, layout in enumerate(layouts):
        match, rule = next(
            ((mt, r) for r in rules if (mt := r.message.fullmatch(layout.name))), (None, None)
        )
        if rule is None or match is None:
            continue
        names = {"message": layout.name, **match.groupdict()}
        if rule.crc is not None:
            crc = _root_signal(layout, rule.crc.format(**names), f"{rule.key}.crc")
            if crc.segments != CRC_SEGMENTS or crc.signed:
                raise MappingError(f"{rule.key}.crc: {crc.name} must be the unsigned byte 0")
            has_crc[i] = True
        if rule.counter is not None:
            counter = _root_signal(layout, rule.counter.format(**names), f"{rule.key}.counter")
            if counter.signed or counter.scale != 1 or counter.offset != 0:
                raise MappingError(f"{rule.key}.counter: {counter.name} must be raw unsigned")
            if rule.max_jump >= 2**counter.length:
                raise MappingError(
                    f"{rule.key}.max_jump: {rule.max_jump} is not below the counter modulo "
                    f"{2**counter.length} of {layout.name}"
                )
            has_counter[i] = True
            counters[i] = [counter]
            modulo[i] = 2**counter.length
            max_jump[i] = rule.max_jump
    return E2ETable(has_crc, has_counter, SlotTable(counters), modulo, max_jump)


def crc_ok(ids: np.ndarray, data: np.ndarray, dlc: np.ndarray) -> np.ndarray:
    """True where byte 0 holds the CRC of the frame."""
    return crc8_batch(ids, data, dlc) == data[:, 0]


@dataclass(frozen=True)
class CounterVerdict:
    frozen: np.ndarray  # (n,) bool: same counter as the last accepted frame
    jump: np.ndarray  # (n,) bool: step outside 1..max_jump


def check_counters(
    table: E2ETable,
    msg: np.ndarray,
    counter: np.ndarray,
    timestamps: np.ndarray,
    last: np.ndarray,
) -> CounterVerdict:
    """Check alive counters of frames (message index ``msg``); updates ``last`` in place.

    ``last`` holds the last accepted counter per message, -1 before the first frame
    (which is accepted with any counter).
    """
    n = msg.shape[0]
    frozen = np.zeros(n, bool)
    jump = np.zeros(n, bool)
    if n == 0:
        return CounterVerdict(frozen, jump)
    counter = counter.astype(np.int64)
    order = np.lexsort((timestamps, msg))  # stable: arrival order breaks timestamp ties
    sorted_msg = msg[order]
    first = np.ones(n, bool)
    np.not_equal(sorted_msg[1:], sorted_msg[:-1], out=first[1:])
    if _all_advance(table, order, sorted_msg, first, counter, last):
        return CounterVerdict(frozen, jump)
    starts = np.flatnonzero(first)
    sizes = np.diff(starts, append=n)
    for rank in range(int(sizes.max())):
        frames = order[starts[sizes > rank] + rank]  # at most one frame per message
        _advance(table, frames, msg, counter, last, frozen, jump)
    return CounterVerdict(frozen, jump)


def _all_advance(
    table: E2ETable,
    order: np.ndarray,
    sorted_msg: np.ndarray,
    first: np.ndarray,
    counter: np.ndarray,
    last: np.ndarray,
) -> bool:
    """The usual case in one pass: every frame steps validly from its predecessor.

    Each frame is compared with the previous frame of its message in the batch (or with
    ``last`` for the first one); when all pass, that is exactly what the frame-by-frame
    check would have found, and ``last`` takes each message's newest counter. Otherwise
    nothing is changed and the caller checks rank by rank.
    """
    value = counter[order]
    ref = np.empty_like(value)
    ref[1:] = value[:-1]
    ref[first] = last[sorted_msg[first]]
    step = (value - ref) % table.modulo[sorted_msg]
    good = (ref < 0) | ((step >= 1) & (step <= table.max_jump[sorted_msg]))
    if not good.all():
        return False
    newest = np.ones_like(first)
    newest[:-1] = first[1:]
    last[sorted_msg[newest]] = value[newest]
    return True


def _advance(
    table: E2ETable,
    frames: np.ndarray,
    msg: np.ndarray,
    counter: np.ndarray,
    last: np.ndarray,
    frozen: np.ndarray,
    jump: np.ndarray,
) -> None:
    """Judge ``frames`` (at most one per message) and advance ``last`` where accepted."""
    m = msg[frames]
    ref = last[m]
    value = counter[frames]
    step = (value - ref) % table.modulo[m]
    fresh = ref < 0
    good = fresh | ((step >= 1) & (step <= table.max_jump[m]))
    still = ~fresh & (step == 0)
    frozen[frames] = still
    jump[frames] = ~(good | still)
    last[m[good]] = value[good]
