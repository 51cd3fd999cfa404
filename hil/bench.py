"""Plant and controller in lockstep virtual time, frames carried by python-can buses.

Every frame crosses a real python-can bus (by default the in-process ``virtual`` interface,
one channel per bus role), so the controller sees exactly what it would see live, but time is
virtual: the bench steps the plant, delivers its frames, steps the controller's core with the
same ``now`` and hands the controller's frames back to the plant. A run is deterministic and
runs as fast as the machine allows.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable
from typing import Any, Protocol

import can
import numpy as np

from controller.core import Controller, ControllerState, StepResult
from controller.frames import FrameBatch


class Plant(Protocol):
    """What the bench needs from the simulated system."""

    def step(self, dt: float) -> dict[str, list[can.Message]]: ...

    def receive(self, role: str, messages: list[can.Message]) -> None: ...


class VirtualBench:
    """Steps plant and controller together; ``interface`` chooses the python-can transport."""

    def __init__(
        self,
        plant: Plant,
        controller: Controller,
        cycle: float | None = None,
        interface: str = "virtual",
        on_step: Callable[[float, StepResult], None] | None = None,
    ) -> None:
        self.plant = plant
        self.controller = controller
        self.cycle = cycle or controller.config.cycle_s
        self.state: ControllerState = controller.initial_state(0.0)
        self.now = 0.0
        self.on_step = on_step
        self.frames_carried = 0
        run = uuid.uuid4().hex[:8]
        names = tuple(controller.config.buses)  # every bus the assembly is configured with
        self._plant_side = {
            name: can.Bus(interface=interface, channel=f"canbms-{run}-{name}") for name in names
        }
        self._controller_side = {
            name: can.Bus(interface=interface, channel=f"canbms-{run}-{name}") for name in names
        }
        self._steps = itertools.count(1)

    def step(self) -> StepResult:
        self.now = next(self._steps) * self.cycle
        for name, messages in self.plant.step(self.cycle).items():
            for msg in messages:
                self._plant_side[name].send(msg)
        batch = FrameBatch.concatenate(
            self._drain(bus, name) for name, bus in self._controller_side.items()
        )
        self.frames_carried += len(batch)
        result = self.controller.step(self.state, batch, self.now)
        self.state = result.state
        for frame in result.frames:
            self._controller_side[frame.bus].send(
                can.Message(
                    arbitration_id=frame.arbitration_id,
                    data=frame.data,
                    is_extended_id=frame.is_extended_id,
                    is_fd=frame.is_fd,
                )
            )
        for name, bus in self._plant_side.items():
            received = list(iter(lambda b=bus: b.recv(0), None))
            if received:
                self.plant.receive(name, received)
        if self.on_step is not None:
            self.on_step(self.now, result)
        return result

    def _drain(self, bus: can.BusABC, name: str) -> FrameBatch:
        messages = list(iter(lambda: bus.recv(0), None))
        batch = FrameBatch.from_messages(messages, bus=name)
        # Stamp with virtual time: the bus stamps wall-clock time on send.
        return batch.restamped(np.full(len(batch), self.now))

    def close(self) -> None:
        for bus in (*self._plant_side.values(), *self._controller_side.values()):
            bus.shutdown()

    def __enter__(self) -> VirtualBench:
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()
