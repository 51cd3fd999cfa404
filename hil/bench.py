"""Plant and controller in lockstep virtual time.

Time is virtual: the bench steps the plant, hands its frames to the controller's core with the
same ``now`` and hands the controller's frames back to the plant. By default the frames are
handed over in this process: the plant's frames of each bus role become the core's
`FrameBatch` directly, as the live shell builds it from a bus. With ``interface`` every frame
crosses a real python-can bus of that interface instead (one channel per bus role): the same
frames in the same order, only slower. A run is deterministic and runs as fast as the machine
allows.
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
    """Steps plant and controller together; ``interface`` puts a python-can bus between them."""

    def __init__(
        self,
        plant: Plant,
        controller: Controller,
        cycle: float | None = None,
        interface: str | None = None,
        on_step: Callable[[float, StepResult], None] | None = None,
    ) -> None:
        self.plant = plant
        self.controller = controller
        self.cycle = cycle or controller.config.cycle_s
        self.state: ControllerState = controller.initial_state(0.0)
        self.now = 0.0
        self.on_step = on_step
        self.frames_carried = 0
        self._names = tuple(controller.config.buses)  # every bus the assembly is configured with
        self._plant_side: dict[str, can.BusABC] = {}
        self._controller_side: dict[str, can.BusABC] = {}
        if interface is not None:
            run = uuid.uuid4().hex[:8]
            for side in (self._plant_side, self._controller_side):
                for name in self._names:
                    side[name] = can.Bus(interface=interface, channel=f"canbms-{run}-{name}")
        self._steps = itertools.count(1)

    def step(self) -> StepResult:
        self.now = next(self._steps) * self.cycle
        received = self._to_controller(self.plant.step(self.cycle))
        batch = FrameBatch.concatenate(
            FrameBatch.from_messages(messages, bus=name) for name, messages in received.items()
        )
        # Stamped with virtual time: a bus stamps wall-clock time on send.
        batch = batch.restamped(np.full(len(batch), self.now))
        self.frames_carried += len(batch)
        result = self.controller.step(self.state, batch, self.now)
        self.state = result.state
        for name, messages in self._to_plant(result).items():
            if messages:
                self.plant.receive(name, messages)
        if self.on_step is not None:
            self.on_step(self.now, result)
        return result

    def _to_controller(self, sent: dict[str, list[can.Message]]) -> dict[str, list[can.Message]]:
        """What the controller receives on each configured bus, in arrival order."""
        unknown = {name for name, messages in sent.items() if messages} - set(self._names)
        if unknown:
            raise KeyError(f"the plant sent on buses the controller lacks: {sorted(unknown)}")
        if not self._plant_side:
            return {name: sent.get(name, []) for name in self._names}
        for name, messages in sent.items():
            for msg in messages:
                self._plant_side[name].send(msg)
        return {name: _drain(bus) for name, bus in self._controller_side.items()}

    def _to_plant(self, result: StepResult) -> dict[str, list[can.Message]]:
        """The controller's frames as the plant receives them on each bus."""
        out: dict[str, list[can.Message]] = {name: [] for name in self._names}
        for frame in result.frames:
            msg = can.Message(
                arbitration_id=frame.arbitration_id,
                data=frame.data,
                timestamp=self.now,
                is_extended_id=frame.is_extended_id,
                is_fd=frame.is_fd,
            )
            if self._controller_side:
                self._controller_side[frame.bus].send(msg)
            else:
                out[frame.bus].append(msg)
        if self._plant_side:
            out = {name: _drain(bus) for name, bus in self._plant_side.items()}
        return out

    def close(self) -> None:
        for bus in (*self._plant_side.values(), *self._controller_side.values()):
            bus.shutdown()

    def __enter__(self) -> VirtualBench:
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()


def _drain(bus: can.BusABC) -> list[can.Message]:
    """Every frame waiting on ``bus``, in arrival order."""
    return list(iter(lambda: bus.recv(0), None))
