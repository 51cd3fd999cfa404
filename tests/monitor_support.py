"""The simulated pack and the controller in virtual time, every frame both send also put on
python-can virtual buses for a monitor to read, as it would read a live installation.

The frames keep the pack's virtual timestamps (``preserve_timestamps``), so the monitor judges
freshness on the pack's clock whether the run goes faster or slower than real time."""

from __future__ import annotations

import uuid

import can

from controller.config.loader import default_config
from controller.core import Controller
from controller.frames import FrameBatch
from slaves.ems import EmsCommand, EmsRequest
from slaves.system import SimulatedSystem


class PackOnBuses:
    """Steps plant and controller in lockstep; ``channels`` are the monitor's virtual buses."""

    def __init__(self, seed: int = 1) -> None:
        self.config = default_config()
        self.system = SimulatedSystem(
            seed=seed, load=20.0, ems_script=[EmsCommand(0.0, EmsRequest.DISCHARGE)]
        )
        self.controller = Controller(self.config)
        self.state = self.controller.initial_state(0.0)
        self.now = 0.0
        run = uuid.uuid4().hex[:8]
        self.channels = {name: f"monitor-{run}-{name}" for name in ("internal", "vehicle")}
        self._out = {
            name: can.Bus(interface="virtual", channel=ch, preserve_timestamps=True)
            for name, ch in self.channels.items()
        }
        self.sent_at = 0.0  # the pack's time of the last frame put on a bus (frames carry it)

    def run(self, steps: int, dt: float = 0.01) -> None:
        for _ in range(steps):
            self.now += dt
            plant = self.system.step(dt)
            batch = FrameBatch.concatenate(
                FrameBatch.from_messages(m, bus=b) for b, m in plant.items()
            )
            result = self.controller.step(self.state, batch, self.now)
            self.state = result.state
            bms: dict[str, list[can.Message]] = {name: [] for name in plant}
            for f in result.frames:
                bms[f.bus].append(
                    can.Message(
                        arbitration_id=f.arbitration_id,
                        data=f.data,
                        is_extended_id=f.is_extended_id,
                        is_fd=f.is_fd,
                    )
                )
            for name, messages in bms.items():
                self.system.receive(name, messages)
            for name in plant:
                for msg in (*plant[name], *bms[name]):
                    msg.timestamp = self.now  # the pack's clock, however fast the run goes
                    self._out[name].send(msg)
        self.sent_at = self.now

    def monitor_buses(self) -> dict[str, can.BusABC]:
        return {
            name: can.Bus(interface="virtual", channel=ch) for name, ch in self.channels.items()
        }

    def close(self) -> None:
        for bus in self._out.values():
            bus.shutdown()
