"""Bus traffic of a pack charging with its contactors closed, 10 ms at a time.

The slave frames are those of `hil.benchmarks.traffic.Traffic` (cells spread over 100 mV,
so balancing has cells to bleed); the devices around the pack are replaced by ones that
close the loop: the EMS requests charge, the contactor driver reports what the controller
last commanded, the DC link follows the pack once the minus and precharge contactors are
closed, and the current sensor shows a charging current while the plus contactor is closed.
So after the precharge every step runs with contactors closed, current flowing and
balancing active: the full work of a cycle, not the shorter standby path.
"""

from __future__ import annotations

import cantools
import numpy as np

import dbc
from controller.frames import FrameBatch, OutFrame
from dbc.topology import Topology
from hil.benchmarks.traffic import (
    COUNTERS,
    DEVICE_FRAMES,
    IVT_VOLTAGE_MAX_V,
    STEP_S,
    Traffic,
    device_frames,
)

CHARGE_CURRENT_A = 20.0  # balancing runs while charging (or resting)
CHARGE = 2  # EMS_RequestedState


class ChargingTraffic:
    """Consecutive 10 ms batches of a charging pack; `follow` feeds back the commands."""

    def __init__(self, topology: Topology, seed: int = 0) -> None:
        self._slaves = Traffic(topology, seed)
        sensor = cantools.database.load_file(str(dbc.path("ivt_s.dbc")))
        self._master = cantools.database.load_file(str(dbc.path("canbms_master.dbc")))
        self._messages = [
            ((sensor if name.startswith("IVT_") else self._master).get_message_by_name(name), n, b)
            for name, n, b in DEVICE_FRAMES
        ]
        self._device_ids = {m.frame_id for m, _, _ in self._messages}
        self._command_id = self._master.get_message_by_name("ContactorCommand").frame_id
        self._pack_voltage = min(self._slaves.pack_voltage, IVT_VOLTAGE_MAX_V)
        self._commands = (0, 0, 0)  # minus, precharge, plus as last commanded
        self._counts = dict.fromkeys(COUNTERS, 0)
        self._charge_as = 0.0  # the sensor's own charge counter: the current it measured

    @property
    def now(self) -> float:
        return self._slaves.now

    def follow(self, frames: tuple[OutFrame, ...]) -> None:
        """Take the contactor commands the controller sent in its last step."""
        for frame in frames:
            if frame.arbitration_id == self._command_id and frame.bus == "internal":
                sig = self._master.decode_message(self._command_id, frame.data)
                self._commands = (
                    int(sig["ContactorCmd_MinusClose"]),
                    int(sig["ContactorCmd_PrechargeClose"]),
                    int(sig["ContactorCmd_PlusClose"]),
                )

    def next_batch(self) -> FrameBatch:
        step = self._slaves.step_index
        batch = self._slaves.next_batch()
        slaves = batch.select(~np.isin(batch.ids, list(self._device_ids)))
        merged = FrameBatch.concatenate([slaves, self._devices(step)])
        return merged.restamped(batch.timestamps[: len(merged)])

    def _values(self) -> dict[str, float]:
        minus, precharge, plus = self._commands
        linked = minus and (precharge or plus)
        return {
            "IVT_I_Value": round(self._current() * 1000),
            "IVT_As_Value": round(self._charge_as),
            "IVT_U1_Value": round(self._pack_voltage * 1000),
            "IVT_U2_Value": round(self._pack_voltage * 1000) if linked else 0,
            "ContactorFbk_MinusClosed": minus,
            "ContactorFbk_PrechargeClosed": precharge,
            "ContactorFbk_PlusClosed": plus,
            "EMS_RequestedState": CHARGE,
        }

    def _current(self) -> float:
        minus, _, plus = self._commands
        return CHARGE_CURRENT_A if minus and plus else 0.0

    def _devices(self, step: int) -> FrameBatch:
        self._charge_as += self._current() * STEP_S
        return device_frames(self._messages, self._counts, self._values(), step)
