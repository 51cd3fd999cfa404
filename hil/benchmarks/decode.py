"""Frames per second of the batch decoder against a cantools ``decode_message`` loop.

The frames are the slave traffic of ``traffic.Traffic`` (advancing alive counters, valid
CRCs), cut into batches of 10 ms (what the controller decodes per cycle), 100 ms or 1 s.
The decoder does its full work: ID lookup, length, CRC, counter, mux routing, decoding
and the scatter into measurements. The cantools loop only decodes, over the same frames.
"""

from __future__ import annotations

import time

import numpy as np

from controller.config.ingest import MODULE_ARRAYS
from controller.frames import FrameBatch
from controller.ingest import compile_decoder, load_mapping
from dbc.slave_protocol import build_database
from dbc.topology import Topology
from hil.benchmarks.traffic import Traffic

REPEATS = 3  # best of: the machine may be shared
CANTOOLS_FRAMES = 2000  # the cantools loop decodes at least this many frames (or all)
CASES = {  # name: (topology, 10 ms steps per batch)
    "96 cells (8 x 12, classic), 10 ms batches": (Topology(8, 12, 4, False), 1),
    "96 cells (8 x 12, classic), 100 ms batches": (Topology(8, 12, 4, False), 10),
    "96 cells (8 x 12, classic), 1 s batches": (Topology(8, 12, 4, False), 100),
    "4,096 cells (64 x 64, FD), 10 ms batches": (Topology(64, 64, 16, True), 1),
    "4,096 cells (64 x 64, FD), 100 ms batches": (Topology(64, 64, 16, True), 10),
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
        began = time.perf_counter()
        for batch in batches:
            decoder.decode(batch, state)
        ours = max(ours, frames / (time.perf_counter() - began))
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
        began = time.perf_counter()
        for batch in sample:
            for i in range(len(batch)):
                payload = bytes(batch.data[i, : batch.dlc[i]])
                db.decode_message(int(batch.ids[i]), payload, decode_choices=False)
        theirs = max(theirs, decoded / (time.perf_counter() - began))
    return frames / len(batches), ours, theirs
