"""Frames per second of the batch decoder against a cantools ``decode_message`` loop.

Each 100 ms batch carries every slave frame of the pack once (cell voltages, temperatures,
module status) with advancing alive counters, so the decoder does its full work: ID
lookup, length, CRC, counter, mux routing, decoding and the scatter into measurements.
The cantools loop only decodes. A slave bus carries at most 64 x 64 cells, so the
10,000-cell pack is four CAN FD buses of 50 modules x 50 cells, one decoder each.

    python bench/ingest_speed.py [--seconds 10]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import asdict

import numpy as np

from controller.frames import MAX_PAYLOAD, FrameBatch
from controller.ingest import compile_decoder, load_mapping
from dbc import e2e
from dbc.slave_protocol import build_database
from dbc.topology import Topology

PERIOD = 0.1
PACKS = {  # name: (buses, 100 ms cycles per batch)
    "96 cells (8 x 12, classic)": ([Topology(8, 12, 4, False)], 1),
    "96 cells, 1 s of frames per batch": ([Topology(8, 12, 4, False)], 10),
    "4,096 cells (64 x 64, FD, one bus)": ([Topology(64, 64, 16, True)], 1),
    "10,000 cells (4 buses x 50 x 50, FD)": ([Topology(50, 50, 16, True)] * 4, 1),
}


def _targets(topology: Topology) -> dict[str, int]:
    module = (
        "module_voltage board_temperature cells_balancing module_open_wire module_adc_fault "
        "module_self_test_failed module_balancing_overtemp"
    ).split()
    sizes = {"cell_voltage": topology.n_cells, "cell_temperature": topology.n_sensors}
    return sizes | dict.fromkeys(module, topology.modules)


def _one_cycle(db, rng: np.random.Generator) -> FrameBatch:
    """Every slave-to-master frame once, mux groups enumerated, random in-range values."""
    ids, payloads = [], []
    for message in db.messages:
        if message.name.startswith("BalancingCommand"):
            continue
        mux = next((s for s in message.signals if s.is_multiplexer), None)
        groups = sorted({v for s in message.signals for v in (s.multiplexer_ids or ())})
        for group in groups or [None]:
            values = {}
            for s in message.signals:
                if s.multiplexer_ids is not None and group not in s.multiplexer_ids:
                    continue
                low, high = s.minimum or 0, s.maximum or 0
                values[s.name] = rng.uniform(low, high) if s.scale != 1 else 0
            if mux is not None:
                values[mux.name] = group
            ids.append(message.frame_id)
            payloads.append(message.encode(values, strict=False))
    n = len(ids)
    data = np.zeros((n, MAX_PAYLOAD), np.uint8)
    for i, p in enumerate(payloads):
        data[i, : len(p)] = np.frombuffer(p, np.uint8)
    return FrameBatch(
        ids=np.array(ids, np.uint32),
        dlc=np.array([len(p) for p in payloads], np.uint8),
        data=data,
        timestamps=np.linspace(0.0, PERIOD, n, endpoint=False),
    )


def _cycles(cycle: FrameBatch, count: int) -> list[FrameBatch]:
    """``count`` consecutive cycles; each ID's counter advances once per frame it sends."""
    _, first, per_id = np.unique(cycle.ids, return_index=True, return_counts=True)
    position = np.searchsorted(np.unique(cycle.ids), cycle.ids)
    rank = np.arange(len(cycle)) - first[position]  # frames of one ID are adjacent
    out = []
    for k in range(count):
        counters = k * per_id[position] + rank
        data = e2e.protect_batch(cycle.ids, cycle.data, cycle.dlc, counters)
        out.append(FrameBatch(cycle.ids, cycle.dlc, data, cycle.timestamps + k * PERIOD, cycle.bus))
    return out


def measure(topologies: list[Topology], seconds: float, merge: int) -> tuple[int, float, float]:
    """(frames per batch, decoder frames/s, cantools frames/s) over all buses of a pack."""
    rng = np.random.default_rng(0)
    cycles = round(seconds / PERIOD)
    buses = []
    for topology in topologies:
        db = build_database(topology)
        params = {k: v for k, v in asdict(topology).items() if isinstance(v, int)}
        decoder = compile_decoder(db, load_mapping("canbms_slaves", params), _targets(topology))
        batches = _cycles(_one_cycle(db, rng), cycles)
        merged = [FrameBatch.concatenate(batches[k : k + merge]) for k in range(0, cycles, merge)]
        buses.append((db, decoder, merged))
    frames = sum(len(b) for _, _, batches in buses for b in batches)
    began = time.perf_counter()
    for _, decoder, batches in buses:
        state = decoder.new_state()
        for batch in batches:
            report = decoder.decode(batch, state)
        assert report.rejected.sum() == 0 and report.unknown == 0
    ours = frames / (time.perf_counter() - began)
    db, _, batches = buses[0]
    sample = batches[: max(1, len(batches) // 10)]
    began = time.perf_counter()
    decoded = 0
    for batch in sample:
        for i in range(len(batch)):
            payload = bytes(batch.data[i, : batch.dlc[i]])
            db.decode_message(int(batch.ids[i]), payload, decode_choices=False)
            decoded += 1
    theirs = decoded / (time.perf_counter() - began)
    return frames // (len(batches) * len(buses)), ours, theirs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds of bus traffic")
    args = parser.parse_args()
    print(f"{'pack':40s} {'frames/batch':>12s} {'decoder f/s':>12s} {'cantools f/s':>13s} ratio")
    for name, (topologies, merge) in PACKS.items():
        per_batch, ours, theirs = measure(topologies, args.seconds, merge)
        print(f"{name:40s} {per_batch:12d} {ours:12.0f} {theirs:13.0f} {ours / theirs:5.1f}")


if __name__ == "__main__":
    main()
