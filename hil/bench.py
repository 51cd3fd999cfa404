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

from controller.config.pack import BUS_ROLES
from controller.core import BUS_INDEX, Controller, ControllerState, StepResult
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
        self._plant_side = {
            role: can.Bus(interface=interface, channel=f"canbms-{run}-{role}") for role in BUS_ROLES
        }
        self._controller_side = {
            role: can.Bus(interface=interface, channel=f"canbms-{run}-{role}") for role in BUS_ROLES
        }
        self._steps = itertools.count(1)

    def step(self) -> StepResult:
        self.now = next(self._steps) * self.cycle
        for role, messages in self.plant.step(self.cycle).items():
            for msg in messages:
                self._plant_side[role].send(msg)
        batch = FrameBatch.concatenate(
            self._drain(self._controller_side[role], BUS_INDEX[role]) for role in BUS_ROLES
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
        for role in BUS_ROLES:
            received = list(iter(lambda b=self._plant_side[role]: b.recv(0), None))
            if received:
                self.plant.receive(role, received)
        if self.on_step is not None:
            self.on_step(self.now, result)
        return result

    def _drain(self, bus: can.BusABC, index: int) -> FrameBatch:
        messages = list(iter(lambda: bus.recv(0), None))
        batch = FrameBatch.from_messages(messages, bus=index)
        # Stamp with virtual time: the bus stamps wall-clock time on send.
        return FrameBatch(
            batch.ids,
            batch.dlc,
            batch.data,
            np.full(len(batch), self.now),
            batch.bus,
            batch.extended,
        )

    def close(self) -> None:
        for bus in (*self._plant_side.values(), *self._controller_side.values()):
            bus.shutdown()

    def __enter__(self) -> VirtualBench:
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()
