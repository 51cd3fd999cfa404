"""What a steady batch's frame IDs alone decide, kept for the next batch with the same IDs.

Periodic traffic repeats: batches of the same length carry the same IDs in the same order,
batch after batch. Everything that depends on the IDs only (each frame's message row, the
order of each message's frames for its counter check, the frames per source and each
source's last frame) is worked out once per sequence of IDs and reused while it repeats;
the payload checks still run on every batch.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from dbc.e2e_counter import CounterState
from dbc.masks import every, positions


class CounterOrder(NamedTuple):
    """The frames with a counter and, for each, where its predecessor's counter is: the
    previous frame of its message (an index among those frames) or, for a message's first
    frame, its message's stored counter (index ``k + g`` for message ``group[g]``)."""

    frames: np.ndarray | None  # (k,) rows of the frames with a counter, None: every row
    previous: np.ndarray  # (k,) intp
    group: np.ndarray  # (G,) message of each group, ascending
    newest: np.ndarray  # (G,) index among the k frames of each message's last frame
    base: np.ndarray | None  # (k,) int64 offset of each frame's counter table, None: all 0

    @classmethod
    def build(
        cls, msg: np.ndarray, has: np.ndarray, base: np.ndarray | None
    ) -> CounterOrder | None:
        """From the message of each frame, whether it has a counter and the offset of each
        message's counter table (None: all 0); None where no frame has a counter."""
        frames = positions(has)
        k = frames.shape[0]
        if k == 0:
            return None
        if k == msg.shape[0]:
            frames = None
        else:
            msg = msg.take(frames)
        order = msg.argsort(kind="stable")
        ordered = msg.take(order)
        first = np.ones(k, bool)
        np.not_equal(ordered[1:], ordered[:-1], out=first[1:])
        starts = positions(first)
        previous_ordered = np.empty(k, np.intp)
        previous_ordered[1:] = order[:-1]
        previous_ordered[starts] = k + np.arange(starts.shape[0])
        previous = np.empty(k, np.intp)
        previous[order] = previous_ordered
        ends = np.append(starts[1:], k) - 1
        return cls(
            frames,
            previous,
            ordered.take(starts),
            order.take(ends),
            None if base is None else base.take(msg),
        )

    def advance(
        self, value: np.ndarray, counters: CounterState, ok: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """The messages and their newest counters, to store as received and reference, if
        every counter ``value`` (one per row of the batch) steps 1..K from its predecessor
        by ``ok[(previous + 1) * 256 + counter]``, else None."""
        if self.frames is not None:
            value = value.take(self.frames)
        group = self.group
        received = counters.received.take(group)
        if not every(counters.reference.take(group) == received):  # a dropped frame to resume
            return None
        previous = np.concatenate((value, received)).take(self.previous)
        previous += 1
        previous <<= 8  # times the 256 counter values of a table row
        previous |= value
        if self.base is not None:
            previous += self.base
        if not every(ok.take(previous)):
            return None
        return group, value.take(self.newest)


class IdPattern(NamedTuple):
    """The IDs of a batch (as looked up) and what they decide."""

    ids: np.ndarray  # a copy of the looked-up IDs
    standard: bool  # looked up by 11-bit ID (else by frame key)
    message: np.ndarray  # (columns, N) the message table's columns of each frame
    counters: CounterOrder | None
    accepted: np.ndarray  # (sources,) frames per source
    sources: np.ndarray  # sources with a frame
    last: np.ndarray  # each of those sources' last frame

    @classmethod
    def build(
        cls,
        ids: np.ndarray,
        standard: bool,
        message: np.ndarray,
        counters: CounterOrder | None,
        source: np.ndarray,
        n_sources: int,
    ) -> IdPattern:
        last = np.full(n_sources, -1, np.intp)
        np.maximum.at(last, source, np.arange(source.shape[0]))
        sources = positions(last >= 0)
        return cls(
            ids.copy(),
            standard,
            message,
            counters,
            np.bincount(source, minlength=n_sources),
            sources,
            last.take(sources),
        )

    def matches(self, ids: np.ndarray, standard: bool) -> bool:
        """The batch's IDs are these, looked up the same way."""
        return (
            standard is self.standard
            and ids.shape == self.ids.shape
            and ids.dtype == self.ids.dtype
            and every(ids == self.ids)
        )

    def mark_seen(self, last_seen: np.ndarray, times: np.ndarray) -> None:
        """Advance each source's last-seen time to its last frame's (``times`` ascending)."""
        sources = self.sources
        seen = last_seen.take(sources)
        np.maximum(seen, times.take(self.last), out=seen)
        last_seen[sources] = seen
