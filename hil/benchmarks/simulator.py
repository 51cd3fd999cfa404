"""How many times faster than real time the stepped pack simulator runs, at 10 ms steps.

The simulator models one slave bus with 11-bit IDs (at most 64 modules), so the
10,000-cell pack is four CAN FD buses of 50 modules x 50 cells, each its own simulator,
stepped in turn. The baseline is real time: a factor of 1 is just fast enough for a live
bus.
"""

from __future__ import annotations

import time

from dbc.topology import Topology
from slaves.simulator import PackSimulator

STEP = 0.01
CASES = {
    "96 cells (8 x 12, classic)": [Topology(8, 12, 4, False)],
    "4,096 cells (64 x 64, FD, one bus)": [Topology(64, 64, 16, True)],
    "10,000 cells (4 buses x 50 x 50, FD)": [Topology(50, 50, 16, True)] * 4,
}


def realtime_factor(topologies: list[Topology], seconds: float) -> tuple[float, float]:
    """(virtual seconds per wall second, frames per virtual second)."""
    sims = [PackSimulator(t, seed=k, current=-50.0) for k, t in enumerate(topologies)]
    for sim in sims:
        sim.run(1.0, STEP)  # warm up caches and schedules
    frames = 0
    began = time.perf_counter()
    for _ in range(round(seconds / STEP)):
        for sim in sims:
            frames += len(sim.step(STEP))
    wall = time.perf_counter() - began
    return seconds / wall, frames / seconds
