"""What the runtime reports about itself, in virtual time: BMS_RuntimeHealth on the bus,
decoded by an independent cantools load of the DBC, and a receive flood that waits its turn
instead of stretching the cycle ahead of the contactor command.
"""

from __future__ import annotations

import logging
import uuid
from types import SimpleNamespace
from typing import Any

import can
import cantools
import pytest
from can.interfaces.virtual import VirtualBus

from controller.frames import FrameBatch, OutFrame
from controller.shell.health_frame import HealthFrame
from controller.shell.runtime import Runtime
from controller.shell.supervision import SupervisionConfig
from dbc import path as dbc_path

PERIOD = 1 / 128  # exact in binary, so virtual time adds up without rounding
HEALTH_ID = 0x0FC
COMMAND = OutFrame(0x0E8, b"\x07\x00", "internal")  # stands for ContactorCommand


class VirtualClock:
    """Time that moves only when the loop waits (late by ``overshoot[cycle]``) or a step
    costs it."""

    def __init__(self) -> None:
        self.now = 1024.0
        self.cycles = 0
        self.overshoot: dict[int, float] = {}

    def __call__(self) -> float:
        return self.now

    def wait(self, seconds: float) -> bool:
        self.now += seconds + self.overshoot.get(self.cycles, 0.0)
        return False


class ScriptedCore:
    """A core whose step costs ``cost[k]`` seconds, raises where ``raises`` says and sends
    ``frames`` in that order; it records every batch it was handed."""

    def __init__(self, clock: VirtualClock, frames: tuple[OutFrame, ...] = ()) -> None:
        self.clock = clock
        self.frames = frames
        self.cost: dict[int, float] = {}
        self.raises: set[int] = set()
        self.batches: list[FrameBatch] = []

    def step(self, state: Any, batch: FrameBatch, now: float) -> SimpleNamespace:
        k = self.clock.cycles
        self.clock.cycles += 1
        self.batches.append(batch)
        self.clock.now += self.cost.get(k, 0.0006)
        if k in self.raises:
            raise ZeroDivisionError("defect")
        return SimpleNamespace(state=state, frames=self.frames, events=())

    def request_shutdown(self, state: Any) -> Any:
        return state

    def fail_safe_frames(self, state: Any) -> tuple[OutFrame, ...]:
        return self.frames


class DeafBus(VirtualBus):
    """A bus whose every send fails (no other node acknowledges)."""

    def send(self, msg: can.Message, timeout: float | None = None) -> None:
        raise can.CanOperationError("no acknowledge")


class RecordingBus(VirtualBus):
    def __init__(self, channel: str) -> None:
        super().__init__(channel=channel)
        self.sent: list[int] = []

    def send(self, msg: can.Message, timeout: float | None = None) -> None:
        self.sent.append(msg.arbitration_id)
        super().send(msg, timeout)


def _run(runtime: Runtime, clock: VirtualClock, cycles: int) -> None:
    runtime._stop = SimpleNamespace(wait=clock.wait, is_set=lambda: clock.cycles >= cycles)  # type: ignore[assignment]
    runtime._safe_stop = lambda timeout: None  # type: ignore[method-assign]
    runtime.run()


def test_the_health_frame_carries_each_periods_counts(caplog: pytest.LogCaptureFixture) -> None:
    run = uuid.uuid4().hex[:8]
    clock = VirtualClock()
    core = ScriptedCore(clock, (COMMAND,))
    # first second: two steps of 20 ms (overruns), three wake-ups 6 ms late
    core.cost.update({10: 0.020, 50: 0.020})
    clock.overshoot.update({70: 0.006, 80: 0.006, 90: 0.006})
    core.cost[200] = 0.352  # second second: the CPU spike of the field
    core.raises.update({300, 301, 302})  # third second: three steps that raise
    vehicle = can.Bus(interface="virtual", channel=f"health-{run}")
    listener = can.Bus(interface="virtual", channel=f"health-{run}")
    internal = DeafBus(channel=f"health-{run}-internal")  # every contactor command fails
    master = cantools.database.load_file(str(dbc_path("canbms_master.dbc")))
    runtime = Runtime(
        core,
        None,
        {"internal": internal, "vehicle": vehicle},
        PERIOD,
        clock=clock,
        health=HealthFrame(master),
    )
    with caplog.at_level(logging.WARNING, logger="controller.shell.runtime"):
        _run(runtime, clock, 420)
    received = [m for m in iter(lambda: listener.recv(0.5), None) if m.arbitration_id == HEALTH_ID]
    listener.shutdown()

    independent = cantools.database.load_file(str(dbc_path("canbms_master.dbc")))
    frames = [independent.decode_message(HEALTH_ID, bytes(m.data)) for m in received]
    assert [f["BMS_RtAliveCounter"] for f in frames] == [0, 1, 2]
    assert [f["BMS_RtOverruns"] for f in frames] == [2, 1, 0]
    assert [f["BMS_RtLateCycles"] for f in frames] == [3, 0, 0]
    assert [f["BMS_RtLongestCycle"] for f in frames] == [20, 352, 1]
    assert [f["BMS_RtFailedSteps"] for f in frames] == [0, 0, 3]
    assert all(f["BMS_RtSendErrors"] == 15 for f in frames), "saturated: one per cycle"
    assert all(f["BMS_RtDroppedFrames"] == f["BMS_RtStoreDrops"] == 0 for f in frames)
    assert runtime.stats.overruns == 3 and runtime.stats.late_cycles == 3
    assert runtime.stats.step_errors == 3 and runtime.stats.max_cycle_s == pytest.approx(0.352)
    lines = [r.getMessage() for r in caplog.records]
    assert not any("cycle_late" in line or "cycle_overrun" in line for line in lines), (
        "three late cycles and three overruns are jitter, not a diagnosis (count 5)"
    )


def test_a_flood_waits_its_turn_behind_the_contactor_command(
    caplog: pytest.LogCaptureFixture,
) -> None:
    run = uuid.uuid4().hex[:8]
    clock = VirtualClock()
    others = tuple(OutFrame(0x0F0 + i, bytes(8), "internal") for i in range(4))
    core = ScriptedCore(clock, (COMMAND, *others))
    internal = RecordingBus(channel=f"flood-{run}")
    limit = 1024
    runtime = Runtime(
        core,
        None,
        {"internal": internal},
        PERIOD,
        clock=clock,
        supervision=SupervisionConfig(max_frames_per_cycle=limit, count=2),
    )
    flood = 3000  # what a flooding node left in the receive buffer before the cycle
    receiver = runtime._listeners[0]
    for i in range(flood):
        receiver.on_message_received(can.Message(arbitration_id=0x700 + i % 64, data=bytes(8)))
    with caplog.at_level(logging.WARNING, logger="controller.shell.runtime"):
        _run(runtime, clock, 5)

    sizes = [len(b.ids) for b in core.batches]
    assert sizes[:4] == [limit, limit, flood - 2 * limit, 0], "bounded, the rest next cycle"
    taken = [int(i) for b in core.batches for i in b.ids]
    assert taken == [0x700 + i % 64 for i in range(flood)], "nothing lost, nothing reordered"
    per_cycle = len(others) + 1
    firsts = internal.sent[::per_cycle]
    assert len(internal.sent) == 5 * per_cycle and set(firsts) == {COMMAND.arbitration_id}
    assert runtime.stats.max_backlog == limit
    backlog = [r.getMessage() for r in caplog.records if "receive_backlog" in r.getMessage()]
    assert len(backlog) == 1 and "receive_backlog warning set bus 0" in backlog[0]


def test_a_configuration_that_sends_the_health_id_elsewhere_is_refused() -> None:
    health = HealthFrame(cantools.database.load_file(str(dbc_path("canbms_master.dbc"))))
    health.check({"the pack core": frozenset({0x0F0, 0x0F1})})
    with pytest.raises(Exception, match="0x0FC on bus 'vehicle'"):
        health.check({"stage 'mine'": frozenset({HEALTH_ID})})


def test_the_documented_example_is_what_the_dbc_encodes() -> None:
    """docs/master-protocol.md, BMS_RuntimeHealth worked example."""
    from controller.shell.supervision import RuntimeStats

    health = HealthFrame(cantools.database.load_file(str(dbc_path("canbms_master.dbc"))))
    for _ in range(6):  # the example is the sixth frame: alive counter 5
        frame = health.encode(
            RuntimeStats(
                overruns=3,
                late_cycles=12,
                max_cycle_s=0.352,
                max_backlog=40,
                dropped_frames=300,
                send_errors=2,
                step_errors=0,
                store_drops=1,
            )
        )
    assert frame.data.hex(" ") == "03 0c 60 51 28 f0 2f 10"
    doc = (dbc_path("canbms_master.dbc").parent.parent / "docs" / "master-protocol.md").read_text()
    assert "`03 0C 60 51 28 F0 2F 10`" in doc
