"""How many times faster than real time the simulated plant runs, alone and in closed loop.

Alone, the simulator runs multi-rate: the physics advances by its own step
(`PackSimulator.physics_step`, the modules' longest send period: 1 s) while every frame
still goes out at its own instant with the plant's values there, and the frames stay
arrays (`slaves.frames.SlaveFrames`) because nobody in the process needs python-can
messages. The note gives the old way beside it: 10 ms steps with a
`can.Message` per frame, as a live bus needs. The simulator models one slave bus with 11-bit
IDs (at most 64 modules), so the 10,000-cell pack is four CAN FD buses of 50 modules x 50
cells, each its own simulator, stepped in turn.

The closed loop is ``canbms demo``'s session (96 cells, controller and plant in lock-step at
the controller's 10 ms cycle, frames handed over in process): close, discharge, charge, a
fault and its reset. Its note splits a step into plant, controller and bench.

Each row's baseline is its target in times real time (real time itself where none is set).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dbc.topology import Topology
from slaves.simulator import PackSimulator

if TYPE_CHECKING:
    from hil.benchmarks import Row

STEP = 0.01
MIN_WALL_S = 0.2
CLOSED_LOOP_TARGET = 50.0


@dataclass(frozen=True)
class Case:
    topologies: list[Topology]
    target: float  # times real time; 1.0: no target beyond keeping up


CASES = {
    "96 cells (8 x 12, classic)": Case([Topology(8, 12, 4, False)], 1000.0),
    "4,096 cells (64 x 64, FD, one bus)": Case([Topology(64, 64, 16, True)], 1.0),
    "10,000 cells (4 buses x 50 x 50, FD)": Case([Topology(50, 50, 16, True)] * 4, 100.0),
}


@dataclass(frozen=True)
class Alone:
    factor: float  # virtual seconds per wall second, multi-rate, frames as arrays
    frames_per_s: float  # frames per virtual second
    physics_step_s: float
    fixed_step_factor: float  # the same pack at 10 ms steps with python-can messages


def realtime_factor(topologies: list[Topology], seconds: float) -> Alone:
    """The pack alone, multi-rate, and at fixed 10 ms steps with messages. The multi-rate
    run goes on past ``seconds`` until it has taken `MIN_WALL_S`: a fast plant would
    otherwise be timed over a millisecond, at the mercy of one scheduler tick."""
    sims = _packs(topologies)
    step = min(sim.physics_step for sim in sims)
    frames = steps = 0
    began = time.perf_counter()
    while steps * step < seconds - 1e-9 or time.perf_counter() - began < MIN_WALL_S:
        for sim in sims:
            modules, others = sim.step_frames(step)
            frames += len(others) + (0 if modules is None else len(modules))
        steps += 1
    virtual = steps * step
    factor = virtual / (time.perf_counter() - began)
    sims = _packs(topologies)
    began = time.perf_counter()
    for _ in range(round(seconds / STEP)):
        for sim in sims:
            sim.step(STEP)
    fixed = seconds / (time.perf_counter() - began)
    return Alone(factor, frames / virtual, step, fixed)


def _packs(topologies: list[Topology]) -> list[PackSimulator]:
    sims = [PackSimulator(t, seed=k, current=-50.0) for k, t in enumerate(topologies)]
    for sim in sims:
        sim.run(1.0, STEP)  # warm up caches and schedules
    return sims


@dataclass(frozen=True)
class ClosedLoop:
    factor: float  # virtual seconds per wall second
    plant_ms: float  # per 10 ms step
    controller_ms: float
    bench_ms: float  # hand-over and scenario script
    frames_per_s: float  # carried to the controller per virtual second


def closed_loop(seconds: float) -> ClosedLoop:
    """``seconds`` of the demo session from its start (at most its 60 s)."""
    from hil.scenarios.session import DemoSession

    with DemoSession(seed=0) as session:
        bench = session.bench
        spent = {"plant": 0.0, "controller": 0.0}
        bench.plant = _Timed(bench.plant, spent, "plant")
        bench.controller = _Timed(bench.controller, spent, "controller")
        steps = 0
        began = time.perf_counter()
        while not session.finished and bench.now < min(seconds, session.max_duration) - 1e-9:
            session.step()
            steps += 1
        wall = time.perf_counter() - began
        virtual = bench.now
        carried = bench.frames_carried
    rest = wall - spent["plant"] - spent["controller"]
    return ClosedLoop(
        virtual / wall,
        1e3 * spent["plant"] / steps,
        1e3 * spent["controller"] / steps,
        1e3 * rest / steps,
        carried / virtual,
    )


class _Timed:
    """Forwards to ``inner`` and adds the wall time its ``step`` took to ``spent[key]``."""

    def __init__(self, inner: object, spent: dict[str, float], key: str) -> None:
        self._inner, self._spent, self._key = inner, spent, key

    def step(self, *args: object) -> object:
        began = time.perf_counter()
        try:
            return self._inner.step(*args)  # type: ignore[attr-defined]
        finally:
            self._spent[self._key] += time.perf_counter() - began

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)


def rows(quick: bool, progress: Callable[[str], None]) -> Iterator[Row]:
    """The rows of ``canbms bench``: each case alone, then the closed loop."""
    from hil.benchmarks import Row

    for case, spec in CASES.items():
        progress(f"simulator: {case}")
        r = realtime_factor(spec.topologies, 3.0 if quick else 20.0)
        target = f"{spec.target:,.0f}x target" if spec.target > 1.0 else "real time"
        yield Row(
            "simulator",
            case,
            r.factor,
            "x real time",
            target,
            spec.target,
            r.factor / spec.target,
            f"physics every {1e3 * r.physics_step_s:.0f} ms, {r.frames_per_s:.0f} frames/s "
            f"as arrays; {r.fixed_step_factor:.1f}x at 10 ms steps with messages",
        )
    progress("simulator: closed loop, 96 cells")
    loop = closed_loop(20.0 if quick else 60.0)
    yield Row(
        "simulator",
        "closed loop, 96 cells, lock-step 10 ms",
        loop.factor,
        "x real time",
        f"{CLOSED_LOOP_TARGET:.0f}x target",
        CLOSED_LOOP_TARGET,
        loop.factor / CLOSED_LOOP_TARGET,
        f"per step: plant {loop.plant_ms:.3f} ms, controller {loop.controller_ms:.3f} ms, "
        f"bench {loop.bench_ms:.3f} ms; {loop.frames_per_s:.0f} frames/s",
    )
