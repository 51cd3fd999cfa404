"""The two ways a fault-matrix row runs: lock-step virtual time and black-box real time.

Both drive the same simulated plant (`slaves.system.SimulatedSystem`) with the same script
(`hil.rows`); they differ in who the controller is and where the time comes from.

`LockStep`: the controller's core in this process, stepped with the plant, frames handed over
in the process (`hil.bench.VirtualBench`); deterministic, as fast as the machine allows.

`RealTime`: the controller is another process or a device, reached only through the buses.
The plant steps on an absolute monotonic schedule; every time comes from bus timestamps: the
controller's frames carry theirs, and a plant step takes the timestamp of the first frame it
sent, as the bus echoes it back (``receive_own_messages``). An interface that does not echo
leaves the host clock at the step, in the same epoch as python-can's timestamps.
"""

from __future__ import annotations

import collections
import math
import time
from collections.abc import Callable, Mapping

import can

from controller.adapters.base import Level
from controller.core import Controller, StepResult
from hil.bench import VirtualBench
from hil.record import Record
from hil.scenarios.session import LimitFollowingLoad
from hil.timing import Timing
from slaves.system import SimulatedSystem


class BenchLoad(LimitFollowingLoad):
    """A load or charger on the DC link that wants ``demand`` A (+ discharges) and obeys the
    published limits as the EMS receives them, unless ``ignore_limits`` (a faulty device)."""

    def __init__(self, system: SimulatedSystem) -> None:
        super().__init__(system)
        self.ignore_limits = False

    def __call__(self, t: float) -> float:
        return self.demand if self.ignore_limits else super().__call__(t)


class Driver:
    """Plant, load, record and the bus roles cut off; subclasses step them."""

    def __init__(self, system: SimulatedSystem, timing: Timing) -> None:
        self.system = system
        self.timing = timing
        self.load = BenchLoad(system)
        system.set_load(self.load)
        self.cut: set[str] = set()
        self.record = Record()
        self.steps = 0

    @property
    def now(self) -> float:
        return self.system.t

    def advance(self) -> None:
        raise NotImplementedError

    def step_time(self, step: int) -> float:
        """The bus time of plant step ``step``."""
        raise NotImplementedError

    def run_for(self, seconds: float) -> None:
        end = self.now + seconds - 1e-9
        while self.now < end:
            self.advance()

    def wait(self, done: Callable[[], bool], timeout: float) -> bool:
        end = self.now + timeout
        while not done():
            if self.now >= end:
                return False
            self.advance()
        return True

    def _coils(self) -> None:
        on = any(k.coil for k in self.system.circuit.contactors.values())
        self.record.coils.append((self.steps, on))

    def close(self) -> None:
        """Nothing to release."""


class _CutPlant:
    """The plant as the bench sees it: frames of a cut bus role go nowhere, either way."""

    def __init__(self, driver: Driver) -> None:
        self.driver = driver

    def step(self, dt: float) -> dict[str, list[can.Message]]:
        out = self.driver.system.step(dt)
        return {role: ([] if role in self.driver.cut else frames) for role, frames in out.items()}

    def receive(self, role: str, messages: list[can.Message]) -> None:
        for msg in messages:  # the bench watches the controller's side of a cut bus too
            self.driver.record.frame(msg, self.driver.bench.now)
        if role not in self.driver.cut:
            self.driver.system.receive(role, messages)


class LockStep(Driver):
    """The controller's core in-process, in virtual time."""

    def __init__(self, system: SimulatedSystem, controller: Controller, timing: Timing) -> None:
        super().__init__(system, timing)
        self.bench = VirtualBench(_CutPlant(self), controller, on_step=self._observe)

    def _observe(self, now: float, result: StepResult) -> None:
        for event in result.events:
            if event.kind == "set" and event.level >= Level.WARNING:
                self.record.events.append((now, event.diagnosis, int(event.level)))

    def advance(self) -> None:
        self.bench.step()
        self.steps += 1
        self._coils()

    def step_time(self, step: int) -> float:
        return step * self.bench.cycle

    def close(self) -> None:
        self.bench.close()


class RealTime(Driver):
    """The plant alone on real buses; the controller is whatever answers on them."""

    def __init__(
        self,
        system: SimulatedSystem,
        buses: Mapping[str, can.BusABC],
        timing: Timing,
        step: float = 0.01,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(system, timing)
        self.buses = dict(buses)
        self.step = step
        self.clock = clock
        self._anchor = clock()
        self._host: dict[int, float] = {}  # plant step -> host clock when its frames went out
        self._echo: dict[int, float] = {}  # plant step -> bus time of its first echoed frame
        self._sent: dict[str, collections.deque[tuple[int, int]]] = {
            r: collections.deque() for r in buses
        }
        self._own_ids: set[int] = set()
        self.late_steps = 0
        self.lags: dict[int, float] = {}  # plant step -> s it started behind its schedule

    def advance(self) -> None:
        due = self._anchor + (self.steps + 1) * self.step
        lag = self.clock() - due
        self.lags[self.steps + 1] = lag
        if lag < 0:
            time.sleep(-lag)
        elif lag > 0.5:  # a stalled process: re-anchor rather than burst
            self._anchor = self.clock() - (self.steps + 1) * self.step
            self.late_steps += 1
        for role, bus in self.buses.items():
            received = self._drain(role, bus)
            if role not in self.cut and received:
                self.system.receive(role, received)
        self.steps += 1
        self._host[self.steps] = time.time()
        for role, frames in self.system.step(self.step).items():
            if role in self.cut or role not in self.buses:
                continue
            for msg in frames:
                try:
                    self.buses[role].send(msg, timeout=0.005)
                except can.CanError:
                    continue
                self._own_ids.add(msg.arbitration_id)
                self._sent[role].append((self.steps, msg.arbitration_id))
        self._coils()

    def _drain(self, role: str, bus: can.BusABC) -> list[can.Message]:
        out = []
        while (msg := bus.recv(0)) is not None:
            sent = self._sent[role]
            if msg.arbitration_id in self._own_ids and sent and sent[0][1] == msg.arbitration_id:
                step, _ = sent.popleft()
                self._echo.setdefault(step, msg.timestamp)
                continue
            if msg.arbitration_id in self._own_ids:
                continue  # an own frame whose echo order was lost
            self.record.frame(msg, msg.timestamp)
            out.append(msg)
        return out

    def worst_lag(self, since: float) -> float:
        """The most a plant step started behind its schedule from bus time ``since`` on."""
        return max((lag for k, lag in self.lags.items() if self._host[k] >= since), default=0.0)

    def step_time(self, step: int) -> float:
        echoed = self._echo.get(step)
        if echoed is not None:
            return echoed
        return self._host.get(step, math.nan)

    @property
    def echoes(self) -> int:
        return len(self._echo)
