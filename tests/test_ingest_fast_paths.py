"""Shortcuts of the batch decoder give what the general path gives.

Alive-counter verdicts of a whole batch equal a frame-by-frame check in time order, and a
quiet bus (an empty batch) leaves the state as it was.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from ingest_support import slave_decoder

from controller.frames import FrameBatch
from controller.ingest import RejectReason
from controller.ingest.e2e import E2ETable, check_counters
from controller.ingest.layout import SlotTable
from dbc.topology import Topology

MESSAGES = 3
TABLE = E2ETable(
    has_crc=np.zeros(MESSAGES, bool),
    has_counter=np.ones(MESSAGES, bool),
    counter=SlotTable([[] for _ in range(MESSAGES)]),
    modulo=np.array([16, 16, 4], np.int64),
    max_jump=np.array([3, 1, 2], np.int64),
)


def _reference(msg, counter, timestamps, last):
    """One frame at a time, oldest first (arrival order breaks ties)."""
    frozen = np.zeros(len(msg), bool)
    jump = np.zeros(len(msg), bool)
    for i in sorted(range(len(msg)), key=lambda i: (timestamps[i], i)):
        m = msg[i]
        if last[m] < 0:
            last[m] = counter[i]
            continue
        step = (counter[i] - last[m]) % TABLE.modulo[m]
        if step == 0:
            frozen[i] = True
        elif step > TABLE.max_jump[m]:
            jump[i] = True
        else:
            last[m] = counter[i]
    return frozen, jump


@st.composite
def _batches(draw):
    n = draw(st.integers(1, 12))
    msg = draw(st.lists(st.integers(0, MESSAGES - 1), min_size=n, max_size=n))
    # mostly valid steps, so both the one-pass path and the rank-by-rank path are taken
    start = draw(st.lists(st.integers(-1, 3), min_size=MESSAGES, max_size=MESSAGES))
    steps = draw(st.lists(st.sampled_from([1, 1, 1, 2, 0, 5]), min_size=n, max_size=n))
    running = [max(s, 0) for s in start]
    counter = []
    for m, step in zip(msg, steps, strict=True):
        running[m] += step
        counter.append(running[m] % int(TABLE.modulo[m]))
    times = draw(st.lists(st.sampled_from([0.0, 0.01, 0.02]), min_size=n, max_size=n))
    return np.array(msg), np.array(counter), np.array(sorted(times)), np.array(start)


@given(_batches(), st.randoms(use_true_random=False))
def test_batch_verdicts_match_one_frame_at_a_time(data, random) -> None:
    msg, counter, timestamps, start = data
    arrival = list(range(len(msg)))
    random.shuffle(arrival)  # arrival order differs from time order only across timestamps
    arrival = np.array(sorted(arrival, key=lambda i: timestamps[i]))
    msg, counter, timestamps = msg[arrival], counter[arrival], timestamps[arrival]
    last = start.astype(np.int64)
    expected_last = last.copy()
    frozen, jump = _reference(msg, counter, timestamps, expected_last)
    verdict = check_counters(TABLE, msg, counter, timestamps, last)
    np.testing.assert_array_equal(verdict.frozen, frozen)
    np.testing.assert_array_equal(verdict.jump, jump)
    np.testing.assert_array_equal(last, expected_last)


def test_an_empty_batch_changes_nothing_and_reports_zeros() -> None:
    _, decoder = slave_decoder(Topology())
    state = decoder.new_state()
    report = decoder.decode(FrameBatch.empty(), state)
    assert (report.frames, report.unknown, report.updated) == (0, 0, 0)
    assert report.accepted.shape == (len(decoder.sources),) and not report.accepted.any()
    assert report.rejected.shape == (len(decoder.sources), len(RejectReason))
    assert not report.rejected.any() and not state.accepted.any()
    assert np.isinf(state.last_seen).all() and state.unknown == 0
