"""The receiver's alive-counter check, for a whole batch of frames at once.

Per message the receiver keeps the last accepted counter (the reference) and the counter of
the last frame received. Frames of one message are judged in time order; a frame's step is
``(counter - reference) mod N`` (N = 15 for Profile 11, 2**bits for a plain alive counter),
K is the message's largest accepted step and A = max((N - 1) // 2, K):

* accepted when the step is 1..K (the Profile 11 statuses OK and OKSOMELOST), or when the
  step is K+1..A and the frame steps 1..K from the frame received just before it: two
  frames in sequence re-establish the stream after more than K-1 lost frames;
* otherwise dropped, the reference unchanged: step 0 is a repeated frame, a step above A a
  frame out of order (up to N-1-A counts behind), K+1..A a wrong sequence.

So a duplicate or a late copy costs itself and no genuine frame after it, and a loss of up
to A-1 frames costs one frame. The first frame of a message ever heard is accepted.

Without a loop over frames: frames that step 1..K from their predecessor are accepted
whenever their predecessor was, which settles the usual batch at once. Otherwise, for small
counters (Profile 11), a table holds per counter value and frame the next frame that value
accepts as reference, so each accepted frame points at the next one and the accepted frames
are the chain from each message's first, marked by pointer doubling; the table is linear in
frames. For large counters only the frames that break the chain (the "breaks") start a
search for the frame that is accepted again, a first-occurrence query per possible counter
value (a sorted-key search), and the breaks are chained the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from dbc.masks import every, positions, some


class CounterVerdict(IntEnum):
    """The verdict on one frame's counter."""

    OK = 0
    REPEATED = 1  # same counter as the reference
    OUT_OF_ORDER = 2  # behind the reference
    WRONG_SEQUENCE = 3  # too far ahead of the reference and not confirmed
    INVALID = 4  # a value the counter never takes (15 for Profile 11)


@dataclass
class CounterState:
    """Per message: the last accepted counter and the last received one, -1 before any."""

    reference: np.ndarray  # (M,) int64
    received: np.ndarray  # (M,) int64

    @classmethod
    def fresh(cls, messages: int) -> CounterState:
        return cls(np.full(messages, -1, np.int64), np.full(messages, -1, np.int64))


def check_counters(
    state: CounterState,
    msg: np.ndarray,
    counter: np.ndarray,
    timestamps: np.ndarray,
    modulo: np.ndarray,
    max_step: np.ndarray,
) -> np.ndarray:
    """Verdict (``CounterVerdict`` as int8) of each frame; advances ``state`` in place.

    ``msg`` is each frame's message index into ``modulo``/``max_step``/``state``; frames of
    one message are taken in timestamp order, arrival order breaking ties.
    """
    n = msg.shape[0]
    verdict = np.zeros(n, np.int8)
    if n == 0:
        return verdict
    msg = np.asarray(msg, np.intp)
    counter = np.asarray(counter, np.int64)
    invalid = (counter < 0) | (counter >= modulo[msg])
    rows = np.arange(n)
    if some(invalid):
        verdict[invalid] = CounterVerdict.INVALID
        rows = positions(~invalid)
        if rows.size == 0:
            return verdict
    order = _time_order(rows, msg[rows], timestamps[rows])
    g, c = msg[order], counter[order]
    first = np.ones(g.shape[0], bool)
    np.not_equal(g[1:], g[:-1], out=first[1:])
    prev = np.empty_like(c)
    prev[1:] = c[:-1]
    prev[first] = state.received[g[first]]
    modulo_g, step_g = modulo[g], max_step[g]
    local = (prev >= 0) & _within(_wrap(c - prev, modulo_g), step_g)
    local[first & (state.reference[g] < 0)] = True  # the first frame ever heard
    resume = first & (state.reference[g] != state.received[g])  # last frame was dropped
    if every(local) and not some(resume):
        accepted = local
    else:
        dropped, reference = _resolve(g, c, first, prev, local, resume, state, modulo_g, step_g)
        accepted = np.ones(g.shape[0], bool)
        accepted[dropped] = False
        n_d = modulo_g[dropped]
        step = _wrap(c[dropped] - reference, n_d)
        ahead = np.maximum((n_d - 1) // 2, step_g[dropped])
        verdict[order[dropped]] = np.where(
            step == 0,
            CounterVerdict.REPEATED,
            np.where(step > ahead, CounterVerdict.OUT_OF_ORDER, CounterVerdict.WRONG_SEQUENCE),
        )
    _advance(state, g, c, first, accepted)
    return verdict


def judge_counter(
    state: CounterState, message: int, counter: int, modulo: int, max_step: int
) -> CounterVerdict:
    """The rule above for one frame; a message's frames must come in time order.

    What ``check_counters`` decides for a batch, one frame at a time: the cheaper way for
    the few frames of a small batch.
    """
    if not 0 <= counter < modulo:
        return CounterVerdict.INVALID
    reference = state.reference.item(message)
    previous = state.received.item(message)
    state.received[message] = counter
    step = (counter - reference) % modulo
    if (
        reference < 0
        or 1 <= step <= max_step
        or (
            max_step < step <= max((modulo - 1) // 2, max_step)
            and previous >= 0
            and 1 <= (counter - previous) % modulo <= max_step
        )
    ):
        state.reference[message] = counter
        return CounterVerdict.OK
    if step == 0:
        return CounterVerdict.REPEATED
    if step > max((modulo - 1) // 2, max_step):
        return CounterVerdict.OUT_OF_ORDER
    return CounterVerdict.WRONG_SEQUENCE


def _time_order(rows: np.ndarray, msg: np.ndarray, timestamps: np.ndarray) -> np.ndarray:
    """``rows`` by message, then time, then arrival; a batch usually arrives in time order."""
    if timestamps.size < 2 or every(timestamps[1:] >= timestamps[:-1]):
        if every(msg[1:] >= msg[:-1]):
            return rows
        return rows[np.argsort(msg, kind="stable")]
    return rows[np.lexsort((timestamps, msg))]


def _wrap(diff: np.ndarray, modulo: np.ndarray) -> np.ndarray:
    """``diff mod modulo`` for ``-modulo < diff < modulo``, without a division."""
    return np.where(diff < 0, diff + modulo, diff)


def _within(step: np.ndarray, high: np.ndarray) -> np.ndarray:
    return (step >= 1) & (step <= high)


def _resolve(
    g: np.ndarray,
    c: np.ndarray,
    first: np.ndarray,
    prev: np.ndarray,
    local: np.ndarray,
    resume: np.ndarray,
    state: CounterState,
    modulo_g: np.ndarray,
    step_g: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Dropped frames (positions in time order) and the reference each was judged by.

    An anchor opens a run of dropped frames: a break (a frame that does not step 1..K from
    its accepted predecessor; the reference is that predecessor) or the start of a message
    whose previous frame was dropped (the reference is the stored one). Apart from the
    run marking, the work is per anchor, not per frame.
    """
    m = g.shape[0]
    starts = positions(first)
    seg_ends = np.concatenate((starts[1:], [m]))
    values = int(modulo_g.max())
    if values * m <= _TABLE_CELLS:
        return _resolve_by_table(g, c, local, starts, seg_ends, state, modulo_g, step_g, values)
    breaks = positions(~local & ~resume)
    opened = positions(resume)
    anchors = np.concatenate([breaks, opened])  # where each run of dropped frames starts
    reference = np.concatenate([prev[breaks], state.reference[g[opened]]])
    search_from = np.concatenate([breaks + 1, opened])
    ends = seg_ends[np.searchsorted(starts, anchors, "right") - 1]
    back = _reaccept(g, c, local, anchors, reference, search_from, ends, modulo_g, step_g)
    # the next break after a re-accepted frame, as an anchor number (len(anchors): none)
    unsettled = np.concatenate((positions(~local), [m]))  # breaks and opened starts
    nxt = unsettled[np.searchsorted(unsettled, np.minimum(back + 1, m))]
    nxt = np.where((back < ends) & (nxt < ends), nxt, -1)
    successor = np.full(anchors.shape[0] + 1, anchors.shape[0], np.intp)
    at = np.searchsorted(breaks, nxt)
    follows = positions(nxt >= 0)
    successor[follows] = at[follows]
    # the chain of each message starts at its opened run or at its first break
    on_chain = np.zeros(anchors.shape[0] + 1, bool)
    on_chain[breaks.shape[0] : -1] = True
    plain = positions(~resume[starts])
    first_break = np.searchsorted(breaks, starts[plain])
    has_break = first_break < breaks.shape[0]
    has_break[has_break] &= breaks[first_break[has_break]] < seg_ends[plain[has_break]]
    on_chain[first_break[has_break]] = True
    _mark_chains(on_chain, successor)
    chosen = positions(on_chain[:-1])
    run_starts, run_ends = anchors[chosen], back[chosen]
    delta = np.bincount(run_starts, minlength=m + 1) - np.bincount(run_ends, minlength=m + 1)
    dropped = positions(np.cumsum(delta[:-1]) > 0)
    by_start = np.argsort(run_starts)
    run = by_start[np.searchsorted(run_starts[by_start], dropped, "right") - 1]
    return dropped, reference[chosen][run]


def _reaccept(
    g: np.ndarray,
    c: np.ndarray,
    local: np.ndarray,
    anchors: np.ndarray,
    reference: np.ndarray,
    search_from: np.ndarray,
    ends: np.ndarray,
    modulo_g: np.ndarray,
    step_g: np.ndarray,
) -> np.ndarray:
    """Per anchor, the first frame from ``search_from`` on that is accepted against its
    reference (or the end of the message's frames): a step of 1..K, or K+1..A from the
    reference for a frame that steps 1..K from its predecessor.

    The next few frames settle almost every anchor in one 2-D pass; the rest are found by a
    first-occurrence search per counter value over keys sorted by (message, value, time).
    """
    n_a, k_a = modulo_g[anchors], step_g[anchors]
    ahead = np.maximum((n_a - 1) // 2, k_a)
    at = search_from[:, None] + np.arange(_WINDOW)
    inside = at < ends[:, None]
    at = np.minimum(at, g.shape[0] - 1)
    step = _wrap(c[at] - reference[:, None], n_a[:, None])
    good = (step >= 1) & (step <= np.where(local[at], ahead[:, None], k_a[:, None])) & inside
    hit = good.any(axis=1)
    found = np.where(hit, at[np.arange(at.shape[0]), good.argmax(axis=1)], ends)
    far = positions(~hit & (search_from + _WINDOW < ends))
    if far.size:
        found[far] = _search(
            g,
            c,
            local,
            reference[far],
            search_from[far],
            ends[far],
            n_a[far],
            k_a[far],
            ahead[far],
            g[anchors[far]],
        )
    return found


_WINDOW = 8  # frames looked at directly after an anchor
_TABLE_CELLS = 1 << 18  # (counter values x frames) up to which `_resolve_by_table` runs


def _resolve_by_table(
    g: np.ndarray,
    c: np.ndarray,
    local: np.ndarray,
    starts: np.ndarray,
    seg_ends: np.ndarray,
    state: CounterState,
    modulo_g: np.ndarray,
    step_g: np.ndarray,
    values: int,
) -> tuple[np.ndarray, np.ndarray]:
    """`_resolve` for small counters (Profile 11's 15 values), in time linear in frames.

    An accepted frame makes its counter the reference, so the next accepted frame of its
    message is the first one that reference accepts: one lookup in a table with a row per
    counter value. The accepted frames are then the chain from each message's first
    accepted frame (the first one its stored reference accepts, or its first frame ever).
    """
    m = g.shape[0]
    table = _next_accepted(c, local, modulo_g, step_g, values)
    end_of = np.repeat(seg_ends, seg_ends - starts)
    following = np.concatenate((table[c[:-1], np.arange(1, m)], [m]))
    successor = np.concatenate((np.where(following < end_of, following, m), [m]))
    stored = state.reference[g[starts]]
    head = np.where(stored < 0, starts, table[np.maximum(stored, 0), starts])
    on_chain = np.zeros(m + 1, bool)
    on_chain[np.where(head < seg_ends, head, m)] = True
    _mark_chains(on_chain, successor)
    accepted = on_chain[:-1]
    dropped = positions(~accepted)
    last = np.maximum.accumulate(np.where(accepted, np.arange(m), -1))[dropped]
    opened = starts[np.searchsorted(starts, dropped, "right") - 1]
    before = last >= opened
    reference = np.where(before, c[np.maximum(last, 0)], state.reference[g[dropped]])
    return dropped, reference


def _next_accepted(
    c: np.ndarray, local: np.ndarray, modulo_g: np.ndarray, step_g: np.ndarray, values: int
) -> np.ndarray:
    """``table[v, i]``: the first frame from ``i`` on that a reference ``v`` accepts (a step
    of 1..K, or K+1..A for a frame in sequence with its predecessor), else the frame count.

    One row per counter value, so the cost is linear in frames for small counters; it does
    not stop at message boundaries (the caller caps it at the end of the anchor's message).
    """
    m = c.shape[0]
    small = np.int16 if values < 2**15 else np.int32  # compact tables stay in the cache
    step = c.astype(small)[None, :] - np.arange(values, dtype=small)[:, None]
    np.add(step, modulo_g.astype(small), out=step, where=step < 0)
    high = np.where(local, np.maximum((modulo_g - 1) // 2, step_g), step_g).astype(small)
    accepts = step >= 1
    accepts &= step <= high
    position = np.int16 if m < 2**15 - 1 else np.int32
    table = np.where(accepts, np.arange(m, dtype=position), position(m))
    np.minimum.accumulate(table[:, ::-1], axis=1, out=table[:, ::-1])
    return table


def _search(
    g: np.ndarray,
    c: np.ndarray,
    local: np.ndarray,
    reference: np.ndarray,
    search_from: np.ndarray,
    found: np.ndarray,
    n_a: np.ndarray,
    k_a: np.ndarray,
    ahead: np.ndarray,
    g_a: np.ndarray,
) -> np.ndarray:
    """``_reaccept`` for anchors whose frame lies further on: every (anchor, step) pair is
    one query of a sorted search over the frames (any frame, or those in sequence)."""
    m = g.shape[0]
    found = found.copy()
    values = max(int(c.max()) + 1, int(n_a.max()))
    key = (g.astype(np.int64) * values + c) * m + np.arange(m)
    tables = (np.sort(key), np.sort(key[local]))
    group = g_a.astype(np.int64) * values
    steps = np.arange(1, int(ahead.max()) + 1)
    wanted = group[:, None] + (reference[:, None] + steps) % n_a[:, None]
    asked = steps <= ahead[:, None]
    chained = steps > k_a[:, None]  # beyond K only a frame in sequence with its predecessor
    start = np.broadcast_to(search_from[:, None], wanted.shape)
    for which, table in enumerate(tables):
        sel = asked & (chained == bool(which))
        if table.size == 0 or not some(sel):
            continue
        at = np.searchsorted(table, wanted[sel] * m + start[sel])
        hit = at < table.size
        at = np.minimum(at, table.size - 1)
        hit &= table[at] // m == wanted[sel]
        position = np.full(wanted.shape, m)
        position[sel] = np.where(hit, table[at] % m, m)
        found = np.minimum(found, position.min(axis=1))
    return found


def _mark_chains(on_chain: np.ndarray, successor: np.ndarray) -> None:
    """Mark every node reachable from the marked ones (pointer doubling, in place).

    ``successor`` maps a node to a later node or to the last one (the end, mapped to
    itself); after pass k every node up to 2**k steps from a start is marked.
    """
    end = successor.shape[0] - 1
    jump = successor
    while True:
        on_chain[jump[on_chain]] = True
        if every(jump[:-1] == end):
            break
        jump = jump[jump]
    on_chain[end] = False


def _advance(
    state: CounterState, g: np.ndarray, c: np.ndarray, first: np.ndarray, accepted: np.ndarray
) -> None:
    """Each message's newest received counter, and its newest accepted one as reference."""
    starts = positions(first)
    last = np.concatenate((starts[1:], [g.shape[0]])) - 1
    state.received[g[last]] = c[last]
    newest = np.maximum.reduceat(np.where(accepted, np.arange(g.shape[0]), -1), starts)
    some = newest >= starts
    state.reference[g[starts[some]]] = c[newest[some]]
