"""Command security of the EMS request: a second sender, forged and random frames, in closed
loop with the plant of ``core_support`` (virtual time)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import cantools
import numpy as np
import pytest
from core_support import VEHICLE, Rig, to_batch

import dbc
from controller.config.loader import default_config
from controller.contactors import ContactorState, Request
from controller.diagnosis import Event
from controller.frames import MAX_PAYLOAD, FrameBatch
from controller.security import SecurityConfig
from dbc import master_e2e

MASTER = cantools.database.load_file(dbc.path("canbms_master.dbc"), strict=True)
REQUEST = MASTER.get_message_by_name("EMS_StateRequest")
ERROR = 6  # BMS_State Error


def forged(counter: int, request: Request, reset: bool = False) -> bytes:
    """An EMS_StateRequest any node can build: the E2E header is public."""
    plain = {
        "EMS_CRC": 0,
        "EMS_AliveCounter": 0,
        "EMS_RequestedState": int(request),
        "EMS_FaultReset": int(reset),
    }
    return master_e2e.seal(REQUEST.frame_id, REQUEST.encode(plain), counter)


class Intruder:
    """A second node on the vehicle bus that continues the EMS's counter with its own request.

    ``burst`` frames follow ``delay`` s after every frame of the EMS, counting on from the
    highest counter on the bus, so each is accepted and the EMS's next frame is the repeat.
    """

    def __init__(self, request: Request, reset: bool, delay: float, burst: int = 1) -> None:
        self.request, self.reset, self.delay, self.burst = request, reset, delay, burst
        self.counter: int | None = None
        self.due: float | None = None

    def frames(self, heard: list[tuple[int, int, bytes]], now: float) -> list[tuple]:
        for bus, frame_id, data in heard:
            if bus == VEHICLE and frame_id == REQUEST.frame_id:
                self.counter = master_e2e.counter_of(data)
                self.due = now + self.delay
        if self.due is None or now < self.due - 1e-9:
            return []
        self.due = None
        out = []
        for _ in range(self.burst):
            self.counter = master_e2e.next_counter(self.counter)
            out.append((VEHICLE, REQUEST.frame_id, forged(self.counter, self.request, self.reset)))
        return out


def run(rig: Rig, seconds: float, intruder: Intruder | None = None) -> list[Event]:
    """Step for ``seconds`` with ``intruder`` on the vehicle bus; the events."""
    events: list[Event] = []
    end = rig.now + seconds - 1e-9
    while rig.now < end:
        rig.k += 1
        rig.now = round(rig.k * rig.cycle, 9)
        frames = rig.plant.frames(rig.k, rig.now, rig.cycle)
        if intruder is not None:
            frames += intruder.frames(frames, rig.now)
        result = rig.controller.step(rig.state, to_batch(frames, rig.now), rig.now)
        rig.state = result.state
        rig.deliver(result.frames)
        events.extend(result.events)
    return events


def closing_commands(rig: Rig, since: float = 0.0) -> list[float]:
    """Times of every ContactorCommand that energised a coil."""
    names = ("ContactorCmd_MinusClose", "ContactorCmd_PrechargeClose", "ContactorCmd_PlusClose")
    return [t for t, v in rig.plant.sent("ContactorCommand", since) if any(v[n] for n in names)]


def latched_overvoltage(rig: Rig) -> None:
    """A latched cell over-voltage whose cause is gone, the EMS asking standby, no reset."""
    run(rig, 0.5)
    rig.close(Request.DISCHARGE)
    rig.plant.cell_v[7] = 5.0
    rig.plant.force("cells", "status", "ivt")
    rig.run_until(lambda r: r.state.contactors.state is ContactorState.FAULT, 5.0)
    rig.plant.request = Request.STANDBY
    rig.plant.cell_v[7] = 3.7
    rig.plant.force("cells", "status", "ivt")
    run(rig, 3.0)
    assert int(rig.plant.received["BMS_Status"]["BMS_State"]) == ERROR


@pytest.mark.parametrize(
    ("delay", "burst"),
    [(0.05, 1), (0.0, 1), (0.05, 3), (0.02, 5)],
    ids=["half-period", "right-after", "burst-3", "burst-5"],
)
def test_a_second_ems_cannot_close_the_contactors(delay: float, burst: int) -> None:
    rig = Rig()
    run(rig, 1.0)  # measured, standby requested by the EMS
    start = rig.now
    events = run(rig, 5.0, Intruder(Request.DISCHARGE, False, delay, burst))
    assert closing_commands(rig, start) == []
    assert rig.state.contactors.state is ContactorState.STANDBY
    [alarm] = [e for e in events if e.diagnosis == "ems_second_source" and e.kind == "set"]
    assert alarm.time - start < 1.0
    quiet = run(rig, 6.0)  # the intruder gone: the alarm clears after the hold time
    assert [e.kind for e in quiet if e.diagnosis == "ems_second_source"] == ["cleared"]


@pytest.mark.parametrize(("delay", "burst"), [(0.05, 1), (0.05, 3)], ids=["interleaved", "burst"])
def test_a_second_ems_cannot_reset_a_latched_fault(delay: float, burst: int) -> None:
    rig = Rig()
    latched_overvoltage(rig)
    events = run(rig, 3.0, Intruder(Request.STANDBY, True, delay, burst))
    assert not [e for e in events if e.diagnosis == "fault_reset_accepted"]
    assert int(rig.plant.received["BMS_Status"]["BMS_State"]) == ERROR
    assert "cell_overvoltage" in rig.controller.persisted(rig.state).latched
    run(rig, 6.0)  # intruder gone, hold over: the EMS's own reset still works
    rig.plant.reset = True
    events = run(rig, 1.0)
    assert [e for e in events if e.diagnosis == "fault_reset_accepted"]


@pytest.mark.parametrize("confirm", [1, 3, 5])
def test_a_close_request_acts_after_n_consecutive_good_frames(confirm: int) -> None:
    config = default_config()
    rig = Rig(replace(config, security=SecurityConfig(confirm_frames=confirm, confirm_span_ms=0)))
    run(rig, 1.0)
    rig.plant.request = Request.DISCHARGE
    asked = rig.now
    run(rig, 1.0)
    first = closing_commands(rig, asked)[0]
    frames = [t for t, _ in rig.plant.sent("ContactorCommand", asked)]  # a 20 ms grid
    period = 0.1  # EMS_StateRequest
    assert (confirm - 1) * period <= first - asked <= confirm * period + 3 * rig.cycle + 0.02
    assert frames[0] - asked < first - asked


def _with_extra_frames(rig: Rig, extra_of: Callable[[], list[tuple]], periods: int) -> None:
    """``periods`` EMS periods, ``extra_of()`` frames added once in each (its first step)."""
    for _ in range(periods):
        extra = extra_of()
        end = rig.now + 0.1 - 1e-9
        while rig.now < end:
            rig.k += 1
            rig.now = round(rig.k * rig.cycle, 9)
            frames = rig.plant.frames(rig.k, rig.now, rig.cycle) + extra
            extra = []
            result = rig.controller.step(rig.state, to_batch(frames, rig.now), rig.now)
            rig.state = result.state
            rig.deliver(result.frames)


def test_a_frame_out_of_step_between_restarts_the_confirmation() -> None:
    """A copy of the EMS's last frame (another sender's) in every period: never confirmed."""
    rig = Rig()
    run(rig, 1.0)
    rig.plant.request = Request.DISCHARGE
    asked = rig.now
    counters = rig.plant.counters

    def repeat() -> list[tuple]:
        last = counters[REQUEST.frame_id]
        return [(VEHICLE, REQUEST.frame_id, forged(last, Request.DISCHARGE))]

    _with_extra_frames(rig, repeat, 20)
    assert closing_commands(rig, asked) == []
    assert rig.state.gate.suspect_until > rig.now  # and it looks like a second sender
    run(rig, 6.0)  # the copies gone, the hold over: three frames in sequence close
    assert closing_commands(rig, asked)


def test_a_corrupted_frame_between_costs_only_itself() -> None:
    rig = Rig()
    run(rig, 1.0)
    rig.plant.request = Request.DISCHARGE
    asked = rig.now
    bad = bytearray(forged(0, Request.DISCHARGE))
    bad[0] ^= 0x01  # a CRC error: noise, not a sender

    _with_extra_frames(rig, lambda: [(VEHICLE, REQUEST.frame_id, bytes(bad))], 10)
    first = closing_commands(rig, asked)[0]
    assert first - asked <= 0.3 + 3 * rig.cycle + 0.02


RANDOM_FRAMES = 1_000_000
BATCH = 20_000


def _random_batch(rng: np.random.Generator, now: float) -> FrameBatch:
    """Random payloads of the DBC length on every master frame ID the controller owns."""
    names = master_e2e.PROTECTED
    which = rng.integers(0, len(names), BATCH)
    messages = [MASTER.get_message_by_name(n) for n in names]
    ids = np.array([m.frame_id for m in messages], np.uint32)[which]
    dlc = np.array([m.length for m in messages], np.uint8)[which]
    data = rng.integers(0, 256, (BATCH, MAX_PAYLOAD), np.uint8)
    buses = np.array([0 if m.name.startswith("Contactor") else 1 for m in messages])[which]
    return FrameBatch(
        ids=ids,
        dlc=dlc,
        data=data,
        timestamps=np.full(BATCH, now),
        bus=buses.astype(np.uint8),
        bus_names=("internal", "vehicle"),
    )


def test_random_frames_never_close_a_contactor_or_reset_a_fault() -> None:
    """10**6 random payloads on the owned IDs, the EMS silent, a latched fault whose cause
    is gone: about 1/273 pass E2E, and none of them closes or resets."""
    rig = Rig()
    latched_overvoltage(rig)
    rig.plant.silent.add("ems")
    rng = np.random.default_rng(7)
    events: list[Event] = []
    vehicle = rig.controller.decoders["vehicle"]
    source = vehicle.sources.index("ems")
    accepted_before = int(rig.state.ingest["vehicle"].accepted[source])
    for _ in range(RANDOM_FRAMES // BATCH):
        rig.k += 1
        rig.now = round(rig.k * rig.cycle, 9)
        plant = to_batch(rig.plant.frames(rig.k, rig.now, rig.cycle), rig.now)
        batch = FrameBatch.concatenate([plant, _random_batch(rng, rig.now)])
        result = rig.controller.step(rig.state, batch, rig.now)
        rig.state = result.state
        rig.deliver(result.frames)
        events.extend(result.events)
        assert not any(rig.state.contactors.commands)
    accepted = int(rig.state.ingest["vehicle"].accepted[source]) - accepted_before
    assert accepted > 0  # some random frames did pass the E2E check ...
    assert not [e for e in events if e.diagnosis == "fault_reset_accepted"]  # ... to no effect
    assert "cell_overvoltage" in rig.controller.persisted(rig.state).latched
