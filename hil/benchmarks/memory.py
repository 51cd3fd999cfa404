"""Resident memory of the controller: its size at 100,000 cells, and whether it grows.

Each case runs in a fresh interpreter (``python -m hil.benchmarks.memory``), so the figures
are of that pack alone, not of whatever an earlier benchmark left in this process. The
baseline is the same process measured before the pack exists: the interpreter with every
library the controller imports.

Growth: the controller is stepped in lock-step virtual time on the traffic of a pack that is
closed, charging and balancing (`charging.ChargingTraffic`, the full work of a cycle), for
one simulated hour at 96 cells (a shorter span with ``--quick`` and at 100,000 cells). The
resident size and the interpreter's count of allocated blocks are sampled once per simulated
minute; growth is the last sample against the first one taken after a minute of warm-up, so
caches filled once are not counted. Resident size comes from ``/proc/self/statm`` (Linux).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hil.benchmarks import Row

STEP_S = 0.01
SAMPLE_EVERY_S = 60.0
WARMUP_S = 60.0
PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


@dataclass(frozen=True)
class Footprint:
    cells: int
    simulated_s: float
    before_mb: float  # the interpreter and libraries, before the pack
    built_mb: float  # after building the controller and its first steps
    warm_mb: float  # after the warm-up: the reference for growth
    end_mb: float
    peak_mb: float
    warm_blocks: int
    end_blocks: int
    build_s: float
    wall_s: float
    state: str
    fault_free: bool

    @property
    def growth_mb(self) -> float:
        return self.end_mb - self.warm_mb


def resident_mb() -> float:
    with open("/proc/self/statm", encoding="ascii") as statm:
        return int(statm.read().split()[1]) * PAGE / 2**20


def measure(modules: int, cells: int, sensors: int, fd: bool, simulated_s: float) -> Footprint:
    """In a fresh interpreter: the footprint of a pack stepped for ``simulated_s``."""
    output = subprocess.run(
        [sys.executable, "-m", "hil.benchmarks.memory", *map(str, (modules, cells, sensors))]
        + [str(int(fd)), str(simulated_s)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return Footprint(**json.loads(output.strip().splitlines()[-1]))


def _run(modules: int, cells: int, sensors: int, fd: bool, simulated_s: float) -> Footprint:
    from dbc.topology import Topology
    from hil.benchmarks.charging import ChargingTraffic
    from hil.benchmarks.core_cycle import controller_for

    topology = Topology(modules, cells, sensors, fd, extended_ids=modules > 64)
    before = resident_mb()
    began = time.perf_counter()
    controller = controller_for(topology)
    traffic = ChargingTraffic(topology)
    state = controller.initial_state(0.0)
    build_s = time.perf_counter() - began
    steps = round(simulated_s / STEP_S)
    every = round(SAMPLE_EVERY_S / STEP_S)
    warm_step = min(round(WARMUP_S / STEP_S), steps)
    built = warm = peak = 0.0
    warm_blocks = 0
    for k in range(1, steps + 1):
        result = controller.step(state, traffic.next_batch(), traffic.now)
        state = result.state
        traffic.follow(result.frames)
        if k == 10:
            built = resident_mb()
        if k == warm_step:
            warm, warm_blocks = resident_mb(), sys.getallocatedblocks()
        if k % every == 0:
            peak = max(peak, resident_mb())
    end = resident_mb()
    return Footprint(
        cells=topology.n_cells,
        simulated_s=simulated_s,
        before_mb=before,
        built_mb=built,
        warm_mb=warm,
        end_mb=end,
        peak_mb=max(peak, end),
        warm_blocks=warm_blocks,
        end_blocks=sys.getallocatedblocks(),
        build_s=build_s,
        wall_s=time.perf_counter() - began,
        state=state.contactors.state.name,
        fault_free=not state.protection.fault_active,
    )


if __name__ == "__main__":
    m, c, s, fd, seconds = sys.argv[1:6]
    footprint = _run(int(m), int(c), int(s), bool(int(fd)), float(seconds))
    sys.stdout.write(json.dumps(asdict(footprint)) + "\n")


SMALL = (8, 12, 4, False)  # 96 cells, classic
LARGE = (2000, 50, 16, True)  # 100,000 cells, FD, 29-bit IDs
MEDIUM = (200, 50, 16, True)  # 10,000 cells: the large case of a quick run


def rows(quick: bool, progress: Callable[[str], None]) -> Iterator[Row]:
    """Resident size (ratio: the interpreter alone / with the pack) and growth (ratio:
    resident after the warm-up / at the end; 1.00 is no growth)."""
    from hil.benchmarks import Row

    large, large_s = (MEDIUM, 120.0) if quick else (LARGE, 120.0)
    small_s = 300.0 if quick else 3600.0
    progress(f"memory: {large[0] * large[1]:,} cells, {large_s:g} simulated s")
    big = measure(*large, large_s)
    per_cell = (big.built_mb - big.before_mb) * 2**20 / big.cells
    yield Row(
        "memory",
        f"resident size, {big.cells:,} cells ({large[0]} x {large[1]}, FD, 29-bit)",
        big.built_mb,
        "MB resident",
        "before the pack",
        big.before_mb,
        big.before_mb / big.built_mb,
        f"{per_cell:,.0f} bytes per cell above the interpreter and libraries, "
        f"peak {big.peak_mb:.0f} MB, build {big.build_s:.1f} s",
    )
    progress(f"memory: 96 cells, {small_s:g} simulated s")
    for footprint in (measure(*SMALL, small_s), big):
        yield _growth(Row, footprint)


def _growth(row: type[Row], f: Footprint) -> Row:
    span = f"{f.simulated_s / 60:g} simulated min" if f.simulated_s < 3600 else "1 simulated hour"
    return row(
        "memory",
        f"growth over {span}, {f.cells:,} cells closed, charging",
        f.growth_mb,
        "MB",
        "resident at 1 min",
        f.warm_mb,
        f.warm_mb / f.end_mb,
        f"{f.end_blocks - f.warm_blocks:+,} allocated blocks, {f.state}, "
        f"{'no fault' if f.fault_free else 'FAULT'}, {f.wall_s:.0f} s wall",
    )
