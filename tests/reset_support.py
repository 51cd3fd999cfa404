"""Stepping a controller against the test plant for the fault-reset tests."""

from __future__ import annotations

from core_support import Rig, to_batch

from controller.diagnosis import Event


def run(rig: Rig, seconds: float, extra: tuple[tuple[int, int, bytes], ...] = ()) -> list[Event]:
    """Step for ``seconds``; ``extra`` frames go into the first step's batch. The events."""
    events: list[Event] = []
    end = rig.now + seconds - 1e-9
    while rig.now < end:
        rig.k += 1
        rig.now = round(rig.k * rig.cycle, 9)
        frames = rig.plant.frames(rig.k, rig.now, rig.cycle) + list(extra)
        extra = ()
        result = rig.controller.step(rig.state, to_batch(frames, rig.now), rig.now)
        rig.state = result.state
        rig.deliver(result.frames)
        events.extend(result.events)
    return events


def named(events: list[Event], diagnosis: str) -> list[Event]:
    return [e for e in events if e.diagnosis == diagnosis]


def bms_state(rig: Rig) -> int:
    return int(rig.plant.received["BMS_Status"]["BMS_State"])
