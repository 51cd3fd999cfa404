"""The one interface of every configurable stage of the assembly.

A stage is a protocol or service that lives on one named bus: the CAN-BMS inverter protocol,
an Elcon charger group, the CiA 418 node. Each cycle, after the pack core has judged the pack,
every stage gets the snapshot and the frames its bus delivered, and returns its new state, the
frames it wants sent, its events and, optionally, a cap on the current limits. ``step`` is
pure in the sense the core is: no clock, no bus, no thread; time comes in as ``now``.

A stage declares what it consumes and produces on its bus (frame keys, see
`controller.frames.frame_key`), so that the assembly can refuse at load two producers of
one identifier on one bus, instead of a device seeing two senders in the field.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from controller.adapters.base import BmsSnapshot, LimitRequest
from controller.diagnosis import Event
from controller.frames import FrameBatch, OutFrame


@dataclass(frozen=True)
class StageInputs:
    """What a stage sees in one cycle."""

    snapshot: BmsSnapshot  # the pack as the core judged it this cycle
    frames: FrameBatch  # received on the stage's bus since the last cycle


@dataclass(frozen=True)
class StageOutput:
    """What a stage returns besides its new state."""

    frames: tuple[OutFrame, ...] = ()
    events: tuple[Event, ...] = ()
    limits: LimitRequest = LimitRequest()  # a cap; it can only lower the limits
    reset_requested: bool = False  # a fault reset asked on this stage's bus, applied next step


@dataclass(frozen=True)
class Traffic:
    """The frame keys a stage reads and writes on its bus."""

    consumes: frozenset[int] = frozenset()
    produces: frozenset[int] = frozenset()


class Stage(Protocol):
    """A protocol or service of the assembly, on one configured bus."""

    name: str
    bus: str

    @property
    def traffic(self) -> Traffic: ...

    def initial_state(self) -> Any: ...

    def step(self, state: Any, inputs: StageInputs, now: float) -> tuple[Any, StageOutput]:
        """New state and output at ``now``; ``inputs.frames`` came from this stage's bus."""
        ...
