"""Wall time of one ``Controller.step`` for packs of 100 to 100,000 cells.

Each step gets what the buses deliver in 10 ms (``traffic.Traffic``): a tenth of the
modules' voltage and status frames, a hundredth of their temperature frames, the current
sensor, contactor feedback and EMS frames. The pack is healthy and at rest in standby, so
every check, statistic, limit and balancing decision runs on valid data; the result says
whether a fault was raised, which would send the step down a shorter path.

The loss case cuts every bus of a healthy pack and keeps stepping until every timeout and
invalid-measurement level has set on every element: no frame arrives, so each step is
pure judgement, and the steps where thousands of cells change level at once must cost about
what a healthy step costs: the slowest step of the loss is set against the slowest healthy
step (both include the cycle where every periodic frame falls due), the medians side by side.
Steps are timed with their log lines, as the shell runs them.

The closed case runs a 96-cell pack charging (`hil.benchmarks.charging`): the controller
precharges, closes and then every timed step has contactors closed, current flowing and
cells bleeding, the longest path of a healthy cycle; the traffic follows the contactor
commands the controller sends.

Packs above 64 modules use the 29-bit slave IDs. Their slave database is built in memory
and handed to the controller: writing and strictly re-parsing the DBC of a 100,000-cell
pack would take minutes (the build time is reported).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from controller.config.loader import parse_config
from controller.core import Controller, ControllerState
from dbc.slave_protocol import build_database
from dbc.topology import Topology
from hil.benchmarks.charging import ChargingTraffic
from hil.benchmarks.traffic import Traffic

BUDGET_MS = 1.0
SMALL_PACK_TARGET_MS = 0.2  # a small gateway runs Python several times slower
LARGE_PACK_P99_MS = 10.0  # 100,000 cells: the slowest steps still fit a 10 ms cycle
LOSS_FACTOR = 2.0  # the all-data-lost step costs at most this many healthy steps
CLOSED_PACK = ("96 cells (8 x 12), closed, charging, balancing", Topology(8, 12, 4, False))
MAX_STRING_CELLS = 500  # 500 x 4.15 V stays inside the current sensor's U1 range
WARMUP_S = 1.2  # every temperature group (1 s period) has arrived: startup is complete
LOSS_S = 4.0  # every timeout and invalid-measurement level has set, temperatures included
PACKS = {
    "100 cells (10 x 10, classic)": Topology(10, 10, 4, False),
    "1,000 cells (20 x 50, FD)": Topology(20, 50, 16, True),
    "10,000 cells (200 x 50, FD, 29-bit)": Topology(200, 50, 16, True, extended_ids=True),
    "100,000 cells (2000 x 50, FD, 29-bit)": Topology(2000, 50, 16, True, extended_ids=True),
}
LOSS_PACKS = tuple(case for case, t in PACKS.items() if t.n_cells >= 10_000)


@dataclass(frozen=True)
class CycleResult:
    cells: int
    frames_per_step: float
    median_ms: float
    p99_ms: float
    max_ms: float
    build_s: float  # slave database and controller construction
    state: str  # contactor state after the run
    fault_free: bool


def controller_for(topology: Topology) -> Controller:
    """A controller for ``topology`` with its slave database built in memory."""
    pack = {
        "modules": topology.modules,
        "cells_per_module": topology.cells_per_module,
        "sensors_per_module": topology.sensors_per_module,
        "fd": topology.fd,
    }
    data: dict = {"pack": pack}
    if topology.n_cells > MAX_STRING_CELLS:
        # Packs this large are parallel strings in practice: the limits take the string
        # length (CVL/DVL), and the current sensor's U1 (a signed 32-bit mV value) cannot
        # show the sum of all cells, so the U1 cross-check is left out.
        data["limits"] = {"cells_in_series": MAX_STRING_CELLS}
        data["protection"] = {"pack_voltage_plausibility": {"enabled": False}}
        data["unsafe_override"] = ["protection.pack_voltage_plausibility.enabled"]
    return Controller(parse_config(data), slaves_db=build_database(topology))


def measure_closed(topology: Topology, steps: int) -> CycleResult:
    """Close the contactors on a charging pack, then time ``steps`` consecutive steps."""
    began = time.perf_counter()
    controller = controller_for(topology)
    build_s = time.perf_counter() - began
    traffic = ChargingTraffic(topology)
    state = controller.initial_state(0.0)
    for _ in range(round(WARMUP_S / 0.01)):
        result = controller.step(state, traffic.next_batch(), traffic.now)
        state = result.state
        traffic.follow(result.frames)
    times = np.zeros(steps)
    frames = bleeding = 0
    for k in range(steps):
        batch = traffic.next_batch()
        began = time.perf_counter()
        result = controller.step(state, batch, traffic.now)
        times[k] = time.perf_counter() - began
        state = result.state
        traffic.follow(result.frames)
        frames += len(batch)
        bleeding += bool(state.bleed.any()) and state.contactors.current_allowed
    named = state.contactors.state.name if bleeding == steps else "NOT CLOSED AND BALANCING"
    return _result(topology, times, frames / steps, build_s, state, named)


@dataclass(frozen=True)
class LossResult:
    cells: int
    healthy_ms: float  # median step before the loss
    healthy_max_ms: float  # slowest step before it (the periodic frames all fall due there)
    median_ms: float  # median step after it
    max_ms: float  # slowest step after it: where most elements changed level at once
    events: int  # events raised over the loss
    fault_free: bool


def _warm(topology: Topology) -> tuple[Controller, Traffic, ControllerState, float]:
    """A controller past startup on healthy traffic, and its build time."""
    began = time.perf_counter()
    controller = controller_for(topology)
    build_s = time.perf_counter() - began
    traffic = Traffic(topology)
    state = controller.initial_state(0.0)
    for _ in range(round(WARMUP_S / 0.01)):
        batch = traffic.next_batch()
        state = controller.step(state, batch, traffic.now).state
    return controller, traffic, state, build_s


def measure(topology: Topology, steps: int) -> CycleResult:
    """Build, warm up past startup, then time ``steps`` consecutive 10 ms steps."""
    controller, traffic, state, build_s = _warm(topology)
    batches = [traffic.next_batch() for _ in range(steps)]
    times = np.zeros(steps)
    frames = 0
    for k, batch in enumerate(batches):
        now = (traffic.step_index - steps + k + 1) * 0.01
        began = time.perf_counter()
        state = controller.step(state, batch, now).state
        times[k] = time.perf_counter() - began
        frames += len(batch)
    return _result(topology, times, frames / steps, build_s, state, state.contactors.state.name)


def _result(
    topology: Topology,
    times_s: np.ndarray,
    frames_per_step: float,
    build_s: float,
    state: ControllerState,
    state_name: str,
) -> CycleResult:
    """The figures of one timed run of steps (``times_s`` in seconds)."""
    times = times_s * 1000.0
    return CycleResult(
        cells=topology.n_cells,
        frames_per_step=frames_per_step,
        median_ms=float(np.median(times)),
        p99_ms=float(np.percentile(times, 99)),
        max_ms=float(times.max()),
        build_s=build_s,
        state=state_name,
        fault_free=not state.protection.fault_active,
    )


def measure_loss(topology: Topology, steps: int) -> LossResult:
    """Time ``steps`` healthy steps, then every step of a total loss of data until all has set."""
    controller, traffic, state, _ = _warm(topology)
    healthy = np.zeros(steps)
    for k in range(steps):
        batch = traffic.next_batch()
        began = time.perf_counter()
        result = controller.step(state, batch, traffic.now)
        [str(event) for event in result.events]  # the log lines cost their share
        healthy[k] = time.perf_counter() - began
        state = result.state
    silence = batch.select(np.zeros(len(batch), bool))
    lost = np.zeros(round(LOSS_S / 0.01))
    events = 0
    for k in range(lost.size):
        began = time.perf_counter()
        result = controller.step(state, silence, traffic.now + (k + 1) * 0.01)
        [str(event) for event in result.events]  # the log lines cost their share
        lost[k] = time.perf_counter() - began
        state, events = result.state, events + len(result.events)
    return LossResult(
        cells=topology.n_cells,
        healthy_ms=float(np.median(healthy)) * 1000.0,
        healthy_max_ms=float(healthy.max()) * 1000.0,
        median_ms=float(np.median(lost)) * 1000.0,
        max_ms=float(lost.max()) * 1000.0,
        events=events,
        fault_free=not state.protection.fault_active,
    )
