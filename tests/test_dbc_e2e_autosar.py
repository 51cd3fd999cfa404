"""The slave E2E profile against an independent AUTOSAR E2E Profile 11 implementation.

The ``autosar-e2e`` package (a C implementation of the AUTOSAR E2E library) protects and
checks the same frames: 10,000 seeded random frames of every length, data ID and counter.
"""

from __future__ import annotations

import numpy as np
from e2e.p11 import E2E_P11_DATAID_BOTH, e2e_p11_check, e2e_p11_protect

from dbc.e2e import COUNTER_MODULO, protect_batch, verify_batch

FRAMES = 10_000


def _random_frames(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    data_ids = rng.integers(0, 0x10000, FRAMES)
    dlc = rng.integers(3, 65, FRAMES)  # the package needs more than 2 bytes to protect
    data = rng.integers(0, 256, (FRAMES, 64), dtype=np.uint8)
    counters = rng.integers(0, COUNTER_MODULO, FRAMES)
    return data_ids, dlc, data, counters


def _theirs(data_id: int, frame: bytes) -> bytes:
    buffer = bytearray(frame)
    e2e_p11_protect(buffer, data_id, data_id_mode=E2E_P11_DATAID_BOTH, increment_counter=False)
    return bytes(buffer)


def test_10000_random_frames_are_protected_alike():
    data_ids, dlc, data, counters = _random_frames(11)
    ours = protect_batch(data_ids, data, dlc, counters)
    for row in range(FRAMES):
        frame = bytes(ours[row, : dlc[row]])
        # the package keeps the counter it is given and writes the CRC byte
        unprotected = bytes([0x00]) + frame[1:]
        assert _theirs(int(data_ids[row]), unprotected) == frame, row
        assert e2e_p11_check(bytearray(frame), int(data_ids[row]))


def test_10000_random_frames_get_the_same_verdict():
    data_ids, dlc, data, counters = _random_frames(12)
    protected = protect_batch(data_ids, data, dlc, counters)
    rng = np.random.default_rng(13)
    # a third intact, a third with one flipped bit, a third with a random CRC byte or counter 15
    kind = rng.integers(0, 3, FRAMES)
    bit = rng.integers(0, 8 * dlc)
    rows = np.flatnonzero(kind == 1)
    protected[rows, bit[rows] // 8] ^= (1 << (bit[rows] % 8)).astype(np.uint8)
    rows = np.flatnonzero(kind == 2)
    protected[rows, 0] = rng.integers(0, 256, rows.size)
    protected[rows[::7], 1] |= 0x0F
    ours = verify_batch(data_ids, protected, dlc)
    theirs = [
        e2e_p11_check(bytearray(protected[row, : dlc[row]]), int(data_ids[row]))
        for row in range(FRAMES)
    ]
    assert ours.tolist() == theirs
    assert ours[kind == 0].all() and not ours[kind == 1].any()
