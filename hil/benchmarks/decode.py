"""Frames per second of the batch decoder against a cantools ``decode_message`` loop.

The frames are the slave traffic of ``traffic.Traffic`` (advancing alive counters, valid
CRCs), cut into batches of 10 ms (what the controller decodes per cycle), 100 ms or 1 s.
The decoder does its full work: ID lookup, length, CRC, counter, mux routing, decoding
and the scatter into measurements. The cantools loop only decodes, over the same frames.

Both sides are timed in CPU time of the measuring thread (best of `REPEATS`), so work of
other processes on a shared machine does not count against either.

The alive counter check is timed on its own for 4,096 frames of one ID in one batch, each
genuine frame followed by a late copy (every other frame dropped), against the rule
applied frame by frame in a plain Python loop.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import numpy as np

from controller.config.ingest import MODULE_ARRAYS
from controller.frames import FrameBatch
from controller.ingest import compile_decoder, load_mapping
from dbc.e2e import COUNTER_MODULO
from dbc.e2e_counter import CounterState, check_counters, judge_counter
from dbc.slave_protocol import build_database
from dbc.topology import Topology
from hil.benchmarks import Row
from hil.benchmarks.traffic import Traffic

REPEATS = 5  # best of: the machine may be shared
CANTOOLS_FRAMES = 2000  # the cantools loop decodes at least this many frames (or all)
CASES = {  # name: (topology, 10 ms steps per batch)
    "96 cells (8 x 12, classic), 10 ms batches": (Topology(8, 12, 4, False), 1),
    "96 cells (8 x 12, classic), 100 ms batches": (Topology(8, 12, 4, False), 10),
    "96 cells (8 x 12, classic), 1 s batches": (Topology(8, 12, 4, False), 100),
    "4,096 cells (64 x 64, FD), 10 ms batches": (Topology(64, 64, 16, True), 1),
    "4,096 cells (64 x 64, FD), 100 ms batches": (Topology(64, 64, 16, True), 10),
    "4,096 cells (64 x 64, FD, 64-byte frames), 1 s batches": (Topology(64, 64, 16, True), 100),
    "10,000 cells (200 x 50, FD, 29-bit), 10 ms batches": (
        Topology(200, 50, 16, True, extended_ids=True),
        1,
    ),
}


def targets(topology: Topology) -> dict[str, int]:
    sizes = {"cell_voltage": topology.n_cells, "cell_temperature": topology.n_sensors}
    return sizes | dict.fromkeys(MODULE_ARRAYS, topology.modules)


def _batches(topology: Topology, ids: np.ndarray, steps: int, merge: int) -> list[FrameBatch]:
    """The slave frames (``ids``) of ``steps`` 10 ms steps, ``merge`` steps per batch."""
    traffic = Traffic(topology)
    out = []
    for _ in range(0, steps, merge):
        batch = FrameBatch.concatenate(traffic.next_batch() for _ in range(merge))
        out.append(batch.select(np.isin(batch.ids, ids)))
    return out


def measure(topology: Topology, seconds: float, merge: int) -> tuple[float, float, float]:
    """(frames per batch, decoder frames/s, cantools frames/s)."""
    db = build_database(topology)
    params = {"cells_per_module": topology.cells_per_module}
    params["sensors_per_module"] = topology.sensors_per_module
    decoder = compile_decoder(db, load_mapping("canbms_slaves", params), targets(topology))
    ids = np.array([m.frame_id for m in db.messages], np.uint32)
    batches = _batches(topology, ids, round(seconds / 0.01), merge)
    frames = sum(len(b) for b in batches)
    decoder.decode(batches[0], decoder.new_state())  # warm up
    ours = 0.0
    for _ in range(REPEATS):
        state = decoder.new_state()
        began = time.thread_time()
        for batch in batches:
            decoder.decode(batch, state)
        ours = max(ours, frames / (time.thread_time() - began))
        if state.rejected.sum() or state.unknown:
            raise RuntimeError(f"decoder rejected benchmark frames: {state.rejected.sum()}")
    sample = batches[: max(1, len(batches) // 10)]
    while sum(len(b) for b in sample) < CANTOOLS_FRAMES and len(sample) < len(batches):
        sample = batches[: 2 * len(sample)]
    decoded = sum(len(b) for b in sample)
    first = next(b for b in sample if len(b))
    db.decode_message(int(first.ids[0]), bytes(first.data[0, : first.dlc[0]]))  # warm up
    theirs = 0.0
    for _ in range(REPEATS):
        began = time.thread_time()
        for batch in sample:
            for i in range(len(batch)):
                payload = bytes(batch.data[i, : batch.dlc[i]])
                db.decode_message(int(batch.ids[i]), payload, decode_choices=False)
        theirs = max(theirs, decoded / (time.thread_time() - began))
    return frames / len(batches), ours, theirs


COUNTER_FRAMES = 4096


def _late_copies() -> np.ndarray:
    """Counters of one ID: every genuine frame followed by a copy of one 3 frames older."""
    genuine = np.arange(1, COUNTER_FRAMES // 2 + 1) % COUNTER_MODULO
    stream = np.empty(COUNTER_FRAMES, np.int64)
    stream[0::2], stream[1::2] = genuine, np.roll(genuine, 3)
    return stream


def counter_check() -> tuple[float, float]:
    """(batch check ms, frame-by-frame loop ms) for `COUNTER_FRAMES` frames of one ID."""
    stream = _late_copies()
    msg = np.zeros(COUNTER_FRAMES, np.intp)
    times = np.arange(COUNTER_FRAMES, dtype=np.float64)
    modulo, step = np.array([COUNTER_MODULO]), np.array([1])
    ours = loop = np.inf
    for _ in range(5 * REPEATS):
        state = CounterState.fresh(1)
        began = time.thread_time()
        check_counters(state, msg, stream, times, modulo, step)
        ours = min(ours, time.thread_time() - began)
    for _ in range(REPEATS):
        state = CounterState.fresh(1)
        began = time.thread_time()
        for value in stream.tolist():
            judge_counter(state, 0, value, COUNTER_MODULO, 1)
        loop = min(loop, time.thread_time() - began)
    return 1e3 * ours, 1e3 * loop


def rows(quick: bool, progress: Callable[[str], None]) -> Iterator[Row]:
    """One row per batch case, then the counter check."""
    for case, (topology, merge) in CASES.items():
        progress(f"decode: {case}")
        per_batch, ours, theirs = measure(topology, 2.0 if quick else 10.0, merge)
        yield Row(
            "decode",
            case,
            ours,
            "frames/s",
            "cantools loop",
            theirs,
            ours / theirs,
            f"{per_batch:.0f} frames/batch",
        )
    progress("decode: alive counter check")
    ours_ms, loop_ms = counter_check()
    yield Row(
        "decode",
        f"alive counter check, {COUNTER_FRAMES:,} frames of one ID, half late copies",
        ours_ms,
        "ms/batch",
        "frame-by-frame loop",
        loop_ms,
        loop_ms / ours_ms,
        "target under 1 ms",
    )
