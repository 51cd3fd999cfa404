"""The live runtime (`controller.shell.runtime.Runtime`) on python-can's ``virtual`` bus.

Both measurements run what ``canbms run`` runs: the core stepped by the shell at its 10 ms
period on its own monotonic clock, frames crossing python-can buses read by the shell's
receivers. The traffic comes from a thread of the same process (the ``virtual`` bus does
not cross processes), so its cost is part of the load the runtime has to live with.

Throughput: the bus is filled to ``LOAD_SHARE`` of a saturated 1 Mbit/s classic bus with
the traffic of a 1,024-cell classic pack (`traffic.Traffic`, every frame checked and
decoded by the core) and frames of another node on the same bus, which the core must take
and ignore. Frames go out paced in 1 ms slices, as a bus spreads them. The baseline is the
frames offered; the runtime must process every one, with no frame dropped, no overrun and
no fault.

Reaction: the default 96-cell pack (`slaves.system.SimulatedSystem`) is closed and
discharging at 50 A. Each injection replaces the current sensor's readings, from a random
instant on, with a charge current above the charge over-current fault and below the break
current (so the contactors open at once instead of waiting for the fuse), and measures from
the first faulty frame to the first ContactorCommand with every contactor open, both as the
bus stamped them. The bound is the check's set delay plus one cycle plus 2 ms. The pack is
closed once in lock-step and every injection starts live from that moment: the plant
copied, the controller's state rebuilt by replaying the frames of the closing (the step is
deterministic; it updates its measured arrays in place, so a state cannot be copied). So a
thousand injections need no thousand live precharges.
"""

from __future__ import annotations

import copy
import logging
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import can
import numpy as np

from controller.config.loader import default_config
from controller.contactors import ContactorState
from controller.core import Controller
from controller.frames import FrameBatch
from controller.shell.runtime import Runtime
from dbc.topology import Topology
from hil.bench import VirtualBench
from hil.benchmarks.core_cycle import controller_for
from hil.benchmarks.traffic import BUSES, STEP_S, Traffic
from slaves.ems import EmsCommand, EmsRequest
from slaves.system import SimulatedSystem

if TYPE_CHECKING:
    from hil.benchmarks import Row

# 8-byte data frame with an 11-bit ID: 111 bits, 3 bits intermission, about 14 stuff bits
BITS_PER_FRAME = 128
SATURATED_FRAMES_PER_S = 1_000_000 / BITS_PER_FRAME
LOAD_SHARE = 0.9
PACK = Topology(64, 16, 8, False)  # 1,024 cells, about 4,800 frames/s of its own
FOREIGN_IDS = np.arange(0x780, 0x7A0)  # another node's frames: on the bus, not in any DBC
SLICES = STEP_S / 0.001  # frames of a 10 ms batch go out in 1 ms slices
SETTLE_S = 5.0  # at most, after the last frame offered, before the runtime stops

FAULT_CURRENT_A = 150.0  # charge: above the preset fault (130 A), below the break current
LOAD_A = 50.0
PRE_INJECTION_S = (0.03, 0.15)  # healthy running before an injection, uniform
REACTION_TIMEOUT_S = 2.0
CURRENT_FRAME = "IVT_Result_I"
CHECK = "overcurrent_charge"


@dataclass(frozen=True)
class Throughput:
    offered: int
    processed: int
    seconds: float
    dropped: int
    overruns: int
    late_cycles: int
    max_cycle_ms: float
    max_lateness_ms: float
    max_backlog: int
    fault: str | None  # the first fault the core set, if any

    @property
    def rate(self) -> float:
        return self.offered / self.seconds


class _Counting:
    """The core as the runtime sees it, counting the frames each step is handed."""

    def __init__(self, core: Controller) -> None:
        self._core = core
        self.frames = 0
        self.running = threading.Event()  # set by the first step: the loop is on its schedule

    def judge(self, state: Any, batch: FrameBatch, now: float) -> Any:
        self.running.set()
        self.frames += len(batch)
        return self._core.judge(state, batch, now)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._core, name)


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())

    def first_fault(self) -> str | None:
        """The diagnosis of the first fault set among the lines, if any."""
        return next((line.split()[0] for line in self.lines if " fault set" in line), None)


@contextmanager
def _captured() -> Iterator[_Lines]:
    """The runtime's log lines (its diagnoses), kept for the benchmark, not printed."""
    logger = logging.getLogger("controller.shell.runtime")
    handler, saved = _Lines(), (logger.propagate, logger.level)
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.propagate = saved[0]
        logger.setLevel(saved[1])


def _virtual_pair(names: tuple[str, ...]) -> tuple[dict[str, can.BusABC], dict[str, can.BusABC]]:
    """A far side and a controller side on fresh virtual channels, one per bus name."""
    run = uuid.uuid4().hex[:8]
    return tuple(  # type: ignore[return-value]
        {name: can.Bus(interface="virtual", channel=f"live-{run}-{name}") for name in names}
        for _ in range(2)
    )


def _messages(batch: FrameBatch) -> list[tuple[str, can.Message]]:
    return [
        (
            batch.bus_names[batch.bus[i]],
            can.Message(
                arbitration_id=int(batch.ids[i]),
                data=batch.data[i, : batch.dlc[i]].tobytes(),
                is_extended_id=bool(batch.extended[i]),
            ),
        )
        for i in range(len(batch))
    ]


def throughput(seconds: float, share: float = LOAD_SHARE) -> Throughput:
    """Offer ``share`` of a saturated classic bus for ``seconds``; what the runtime made of it."""
    controller = controller_for(PACK)
    traffic = Traffic(PACK)
    pack_rate = sum(len(traffic.next_batch()) for _ in range(100))  # one second's worth
    traffic = Traffic(PACK)
    foreign_per_step = max(0, round((share * SATURATED_FRAMES_PER_S - pack_rate) * STEP_S))
    foreign = [
        ("internal", can.Message(arbitration_id=int(i), data=bytes(8), is_extended_id=False))
        for i in np.resize(FOREIGN_IDS, foreign_per_step)
    ]
    far, near = _virtual_pair(BUSES)
    core = _Counting(controller)
    runtime = Runtime(core, controller.initial_state(time.monotonic()), near, STEP_S)
    offered = [0]

    def offer() -> None:
        core.running.wait()  # what piles up while the runtime starts is not a rate
        start = time.monotonic()
        steps = round(seconds / STEP_S)
        for k in range(steps):
            frames = _messages(traffic.next_batch())
            mixed = [m for pair in zip(frames, foreign, strict=False) for m in pair]
            mixed += frames[len(foreign) :] + foreign[len(frames) :]
            n = len(mixed)
            for j in range(int(SLICES)):
                for name, msg in mixed[j * n // int(SLICES) : (j + 1) * n // int(SLICES)]:
                    far[name].send(msg)
                time.sleep(max(0.0, start + k * STEP_S + (j + 1) * 0.001 - time.monotonic()))
            offered[0] += n
            for bus in far.values():  # what the controller sent: not needed here
                while bus.recv(0) is not None:
                    pass
        settle = time.monotonic() + SETTLE_S  # until the runtime took what is on its way
        while core.frames < offered[0] and time.monotonic() < settle:
            time.sleep(STEP_S)
        runtime.stop()

    sender = threading.Thread(target=offer, name="traffic", daemon=True)
    with _captured() as log:
        sender.start()
        stats = runtime.run(shutdown_timeout=0.1)
        sender.join()
    for bus in far.values():
        bus.shutdown()
    return Throughput(
        offered=offered[0],
        processed=core.frames,
        seconds=seconds,
        dropped=stats.dropped_frames,
        overruns=stats.overruns,
        late_cycles=stats.late_cycles,
        max_cycle_ms=stats.max_cycle_s * 1e3,
        max_lateness_ms=stats.max_lateness_s * 1e3,
        max_backlog=stats.max_backlog,
        fault=log.first_fault() if runtime.state.protection.fault_active else None,
    )


@dataclass(frozen=True)
class Reaction:
    latencies_ms: np.ndarray  # first faulty frame to the open command, per injection
    delay_ms: float  # the check's set delay
    cycle_ms: float
    missed: int  # injections without an open command within the timeout
    other_cause: int  # opened by another fault first (a plant thread starved of the CPU)

    @property
    def bound_ms(self) -> float:
        return self.delay_ms + self.cycle_ms + 2.0

    def quantile(self, q: float) -> float:
        return float(np.quantile(self.latencies_ms, q))


class _ClosedPack:
    """The default pack closed and discharging, reached once in lock-step."""

    def __init__(self) -> None:
        self.config = default_config()
        self.controller = Controller(self.config)
        system = SimulatedSystem(
            seed=0, initial_soc=0.6, ems_script=[EmsCommand(0.0, EmsRequest.DISCHARGE)]
        )
        system.set_load(LOAD_A)
        self._closing: list[tuple[FrameBatch, float]] = []
        with VirtualBench(system, self) as bench:  # type: ignore[arg-type]
            while bench.state.contactors.state != ContactorState.CLOSED_DISCHARGE:
                bench.step()
                if bench.now > 10.0:
                    raise RuntimeError("the benchmark pack does not close")
            for _ in range(50):  # settled: precharge over, current flowing
                bench.step()
            self.now = bench.now
        self.system = system
        fault = getattr(self.config.protection, CHECK).fault
        self.debounce_ms = fault.set_delay_ms
        self.master = _database("canbms_master.dbc")
        sensor = _database("ivt_s.dbc").get_message_by_name(CURRENT_FRAME)
        self.current = sensor
        self.command = self.master.get_message_by_name("ContactorCommand")

    def step(self, state: Any, batch: FrameBatch, now: float) -> Any:
        """The controller's step, as the closing bench calls it, keeping what it was fed."""
        self._closing.append((batch, now))
        return self.controller.step(state, batch, now)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.controller, name)

    def closed_state(self) -> Any:
        """A fresh controller state at the closed moment, by replaying the closing."""
        state = self.controller.initial_state(0.0)
        for batch, now in self._closing:
            state = self.controller.step(state, batch, now).state
        return state


def _database(name: str) -> Any:
    import cantools

    import dbc

    return cantools.database.load_file(str(dbc.path(name)))


def reaction(injections: int, seed: int = 0) -> Reaction:
    """``injections`` live over-current injections from the closed pack."""
    pack = _ClosedPack()
    rng = random.Random(seed)
    latencies, missed, other = [], 0, 0
    with _captured() as log:
        for _ in range(injections):
            log.lines.clear()
            latency = _inject(pack, rng.uniform(*PRE_INJECTION_S))
            if latency is None:
                missed += 1
            elif log.first_fault() != CHECK:
                other += 1
            else:
                latencies.append(latency * 1e3)
    cycle_ms = pack.config.cycle_s * 1e3
    return Reaction(np.array(latencies), pack.debounce_ms, cycle_ms, missed, other)


def _inject(pack: _ClosedPack, after: float) -> float | None:
    """One injection ``after`` seconds into a live run from the closed moment: the seconds
    from the first faulty current frame to the first open command, by bus time."""
    system, state = copy.deepcopy(pack.system), pack.closed_state()
    far, near = _virtual_pair(tuple(pack.config.buses))
    began = time.monotonic()
    runtime = Runtime(
        pack.controller,
        state,
        near,
        pack.config.cycle_s,
        clock=lambda: pack.now + (time.monotonic() - began),
    )
    injected: list[float] = []
    opened: list[float] = []
    close_bits = [s.name for s in pack.command.signals if s.name.endswith("Close")]

    def plant() -> None:
        k = 0
        while not opened and time.monotonic() - began < after + REACTION_TIMEOUT_S:
            k += 1
            time.sleep(max(0.0, began + k * STEP_S - time.monotonic()))
            for role, bus in far.items():
                received = list(iter(lambda b=bus: b.recv(0), None))
                for msg in received:
                    if opened or not injected or msg.timestamp < injected[0]:
                        continue
                    if msg.arbitration_id == pack.command.frame_id:
                        decoded = pack.command.decode(msg.data)
                        if not any(decoded[name] for name in close_bits):
                            opened.append(msg.timestamp)
                system.receive(role, received)
            faulty = time.monotonic() - began >= after
            for role, frames in system.step(STEP_S).items():
                for msg in frames:
                    if faulty and msg.arbitration_id == pack.current.frame_id:
                        msg = _overcurrent(pack, msg)
                        injected.append(time.time()) if not injected else None
                    far[role].send(msg)
        runtime.stop()

    thread = threading.Thread(target=plant, name="plant", daemon=True)
    thread.start()
    runtime.run(shutdown_timeout=0.05)
    thread.join()
    for bus in far.values():
        bus.shutdown()
    if not injected or not opened:
        return None
    return opened[0] - injected[0]


def _overcurrent(pack: _ClosedPack, msg: can.Message) -> can.Message:
    """The same current frame (counter kept) reading ``FAULT_CURRENT_A`` against the
    discharge the pack is in."""
    values = pack.current.decode(msg.data, decode_choices=False)
    discharge = 1.0 if values["IVT_I_Value"] >= 0 else -1.0
    values["IVT_I_Value"] = -discharge * FAULT_CURRENT_A * 1000
    return can.Message(
        arbitration_id=msg.arbitration_id,
        data=pack.current.encode(values),
        is_extended_id=msg.is_extended_id,
    )


def rows(quick: bool, progress: Callable[[str], None]) -> Iterator[Row]:
    """The throughput row (ratio: frames processed / offered) and the reaction row (ratio:
    the bound / p99)."""
    from hil.benchmarks import Row

    seconds, injections = (5.0, 100) if quick else (30.0, 1000)
    progress(f"live: {LOAD_SHARE:.0%} of a saturated 1 Mbit/s bus for {seconds:g} s")
    r = throughput(seconds)
    lost = r.offered - r.processed
    yield Row(
        "live",
        f"{LOAD_SHARE:.0%} of 1 Mbit/s classic, 1,024 cells + another node",
        r.processed / r.seconds,
        "frames/s taken",
        "offered",
        r.rate,
        r.processed / r.offered,
        f"{lost} not taken, {r.dropped} dropped, {r.overruns} overruns, {r.late_cycles} late "
        f"(worst {r.max_lateness_ms:.1f} ms), longest cycle {r.max_cycle_ms:.1f} ms, "
        f"at most {r.max_backlog} frames/cycle, {'no fault' if r.fault is None else r.fault}",
    )
    progress(f"live: {injections} over-current injections")
    x = reaction(injections)
    p99 = x.quantile(0.99)
    yield Row(
        "live",
        f"first faulty frame to open command, {injections} injections",
        p99,
        "ms (p99)",
        "set delay+cycle+2ms",
        x.bound_ms,
        x.bound_ms / p99,
        f"min {x.latencies_ms.min():.1f}, median {x.quantile(0.5):.1f}, "
        f"max {x.latencies_ms.max():.1f} ms, {x.missed} without an open command, "
        f"{x.other_cause} opened by another fault first",
    )
