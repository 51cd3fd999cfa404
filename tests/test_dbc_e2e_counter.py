"""The receiver's alive-counter check: the rule frame by frame, and what it costs an attacker.

The batch check equals a one-frame-at-a-time reading of the documented rule (written out
here), whatever the batch boundaries; a duplicate or late copy costs only itself; random
frames on a slave frame ID pass CRC and counter no more often than the profile's theory.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from dbc.e2e import COUNTER_MODULO, counters, crc8_batch, protect, verify_batch
from dbc.e2e_counter import CounterState, CounterVerdict, check_counters

MODULO = np.array([15, 16, 4, 15], np.int64)
MAX_STEP = np.array([1, 3, 1, 2], np.int64)


def _one_at_a_time(state, msg, counter, timestamps, modulo, max_step):
    """The rule of docs/slave-protocol.md, one frame at a time in time order."""
    verdict = np.zeros(len(msg), np.int8)
    for i in sorted(range(len(msg)), key=lambda i: (msg[i], timestamps[i], i)):
        m, c = msg[i], int(counter[i])
        n, k = int(modulo[m]), int(max_step[m])
        ahead = max((n - 1) // 2, k)
        if not 0 <= c < n:
            verdict[i] = CounterVerdict.INVALID
            continue
        reference, previous = state.reference[m], state.received[m]
        state.received[m] = c
        step, in_sequence = (c - reference) % n, 1 <= (c - previous) % n <= k
        if reference < 0 or 1 <= step <= k or (k < step <= ahead and in_sequence):
            state.reference[m] = c
        elif step == 0:
            verdict[i] = CounterVerdict.REPEATED
        elif step > ahead:
            verdict[i] = CounterVerdict.OUT_OF_ORDER
        else:
            verdict[i] = CounterVerdict.WRONG_SEQUENCE
    return verdict


@st.composite
def _streams(draw):
    """Batches of frames of 4 messages: mostly in sequence, with repeats, jumps, late copies."""
    batches = []
    running = draw(st.lists(st.integers(0, 14), min_size=4, max_size=4))
    for b in range(draw(st.integers(1, 4))):
        n = draw(st.integers(0, 24))
        msg = draw(st.lists(st.integers(0, 3), min_size=n, max_size=n))
        counter = []
        for m in msg:
            kind = draw(st.sampled_from(["next", "next", "next", "repeat", "skip", "any"]))
            if kind == "next":
                running[m] += 1
            elif kind == "skip":
                running[m] += draw(st.integers(2, 4))
            value = running[m] if kind != "any" else draw(st.integers(0, 16))
            counter.append(value % int(MODULO[m]) if kind != "any" else value)
        times = sorted(draw(st.lists(st.integers(0, 5), min_size=n, max_size=n)))
        batches.append(
            (np.array(msg, np.intp), np.array(counter, np.int64), b * 10.0 + np.array(times, float))
        )
    return batches


@given(_streams(), st.randoms(use_true_random=False))
def test_batch_verdicts_equal_the_rule_frame_by_frame(batches, random):
    state, expected_state = CounterState.fresh(4), CounterState.fresh(4)
    for msg, counter, timestamps in batches:
        arrival = list(range(len(msg)))
        random.shuffle(arrival)  # arrival order matters only between equal timestamps
        arrival = np.array(sorted(arrival, key=lambda i: timestamps[i]), np.intp)
        msg, counter, timestamps = msg[arrival], counter[arrival], timestamps[arrival]
        expected = _one_at_a_time(expected_state, msg, counter, timestamps, MODULO, MAX_STEP)
        got = check_counters(state, msg, counter, timestamps, MODULO, MAX_STEP)
        np.testing.assert_array_equal(got, expected)
        np.testing.assert_array_equal(state.reference, expected_state.reference)
        np.testing.assert_array_equal(state.received, expected_state.received)


def _check(counter, max_step=1, reference=None):
    """Verdicts on one Profile 11 message's counters, in time order."""
    state = CounterState.fresh(1)
    if reference is not None:
        state.reference[:] = state.received[:] = reference
    counter = np.asarray(counter, np.int64)
    msg = np.zeros(counter.size, np.intp)
    modulo, step = np.array([COUNTER_MODULO]), np.array([max_step])
    return check_counters(state, msg, counter, np.arange(counter.size, dtype=float), modulo, step)


OK, REPEATED, LATE, WRONG, INVALID = (
    CounterVerdict.OK,
    CounterVerdict.REPEATED,
    CounterVerdict.OUT_OF_ORDER,
    CounterVerdict.WRONG_SEQUENCE,
    CounterVerdict.INVALID,
)


def test_a_late_copy_costs_itself_and_no_genuine_frame():
    for behind in range(1, 8):
        genuine = [(10 + i) % 15 for i in range(12)]
        stream = genuine[:8] + [genuine[7 - behind]] + genuine[8:]
        verdicts = _check(stream, reference=9).tolist()
        assert verdicts == [OK] * 8 + [LATE if behind else REPEATED] + [OK] * 4, behind


def test_a_duplicate_costs_itself_only():
    assert _check([1, 2, 3, 3, 4, 5], reference=0).tolist() == [OK, OK, OK, REPEATED, OK, OK]


def test_jumps_of_2_and_3_are_rejected_with_the_slave_step_of_1():
    assert _check([1, 3], reference=0).tolist() == [OK, WRONG]
    assert _check([1, 4], reference=0).tolist() == [OK, WRONG]
    assert _check([1, 3], max_step=2, reference=0).tolist() == [OK, OK]


def test_a_loss_costs_one_frame_and_the_stream_resumes():
    # frames 2 and 3 lost: 4 is a wrong sequence, 5 follows it and re-establishes the stream
    assert _check([1, 4, 5, 6], reference=0).tolist() == [OK, WRONG, OK, OK]
    # over the wrap of the 0..14 counter
    assert _check([13, 14, 2, 3, 4], reference=12).tolist() == [OK, OK, WRONG, OK, OK]


def test_a_replayed_pair_of_old_frames_is_not_taken_for_a_resumed_stream():
    assert _check([5, 6, 3, 4, 7], reference=4).tolist() == [OK, OK, LATE, LATE, OK]


def test_15_is_not_a_counter_and_the_first_frame_is_accepted():
    assert _check([15, 7, 8]).tolist() == [INVALID, OK, OK]


def test_a_late_copy_of_every_frame_loses_no_genuine_frame():
    genuine = np.arange(1, 2049) % 15
    stream = np.empty(4096, np.int64)
    stream[0::2] = genuine
    stream[1::2] = np.roll(genuine, 3)  # each frame followed by a copy of one 3 frames older
    verdicts = _check(stream, reference=0)
    assert (verdicts[0::2] == OK).all()
    assert (verdicts[7::2] == LATE).all()  # the copies from frame 3 on


FRAMES = 1_000_000


def test_random_frames_pass_no_more_often_than_the_profile_allows():
    """Profile 11 accepts a random frame with probability 1/256 (CRC) x 1/16 (the counter
    nibble is the one next value): 1/4096 for a slave ID with a step of 1."""
    rng = np.random.default_rng(2024)
    data = rng.integers(0, 256, (FRAMES, 8), dtype=np.uint8)
    ids = np.full(FRAMES, 0x203)
    crc_ok = crc8_batch(ids, data, np.full(FRAMES, 8)) == data[:, 0]
    # each random frame arrives after a genuine frame with counter 6 (reference 6)
    state = CounterState.fresh(FRAMES)
    state.reference[:] = state.received[:] = 6
    verdict = check_counters(
        state,
        np.arange(FRAMES),
        counters(data).astype(np.int64),
        np.zeros(FRAMES),
        np.full(FRAMES, COUNTER_MODULO),
        np.ones(FRAMES, np.int64),
    )
    passed = verify_batch(ids, data, np.full(FRAMES, 8)) & (verdict == OK)
    theory = 1 / 256 / 16
    expected, sigma = FRAMES * theory, np.sqrt(FRAMES * theory)
    crc_expected, crc_sigma = FRAMES / 256, np.sqrt(FRAMES / 256)
    assert abs(crc_ok.sum() - crc_expected) < 5 * crc_sigma
    assert passed.sum() <= expected + 5 * sigma
    assert passed.sum() >= expected - 5 * sigma  # the measurement itself is sound
    assert (counters(data[passed]) == 7).all()
    assert protect(0x203, bytes(data[np.flatnonzero(passed)[0]]), 7) == bytes(
        data[np.flatnonzero(passed)[0]]
    )
