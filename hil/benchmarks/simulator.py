"""How many times faster than real time the stepped pack simulator runs, at 10 ms steps.

One slave bus carries at most 64 modules x 64 cells (CAN FD), so the 10,000-cell pack is
four FD buses of 50 modules x 50 cells, each its own simulator, stepped in turn.

    python bench/sim_speed.py [--seconds 20]
"""

from __future__ import annotations

import argparse
import time

from dbc.topology import Topology
from slaves.simulator import PackSimulator

STEP = 0.01
PACKS = {
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="virtual seconds per pack")
    args = parser.parse_args()
    results = {}
    for name, topologies in PACKS.items():
        factor, rate = realtime_factor(topologies, args.seconds)
        results[name] = factor
        cells = sum(t.n_cells for t in topologies)
        print(f"{name:40s} {factor:8.1f}x real time  {rate:7.0f} frames/s  ({cells} cells)")
    small, *_, large = results.values()
    print(f"ratio 96 cells / 10,000 cells: {small / large:.1f}")


if __name__ == "__main__":
    main()
