"""BMS_RuntimeHealth: the control loop's health on the vehicle bus, once per DBC period.

The frame describes the shell (its cycles, receivers, sends, store), so the shell produces it,
encoded through cantools from the master DBC like every other frame. Each count is of the
last period only and saturates at its field maximum; a 4-bit alive counter shows lost frames.
"""

from __future__ import annotations

from collections.abc import Mapping

from cantools.database.can import Database

from controller.adapters.framing import FrameEncoder
from controller.errors import ConfigError
from controller.frames import OutFrame, frame_key
from controller.shell.supervision import RuntimeStats

NAME = "BMS_RuntimeHealth"


class HealthFrame:
    """Encodes `RuntimeStats` of one period into BMS_RuntimeHealth."""

    def __init__(self, master: Database) -> None:
        message = master.get_message_by_name(NAME)
        role = message.dbc.attributes.get("BusRole") if message.dbc is not None else None
        self.bus = str(role.value) if role is not None else "vehicle"
        self.period = (message.cycle_time or 1000) / 1000.0
        self._encoder = FrameEncoder(message, self.bus)
        self._counter = -1

    @classmethod
    def of(cls, master: Database | None) -> HealthFrame | None:
        """The frame of ``master``; None for a master DBC that does not define it."""
        if master is None or NAME not in {m.name for m in master.messages}:
            return None
        return cls(master)

    @property
    def key(self) -> int:
        return frame_key(self._encoder.frame_id, self._encoder.is_extended)

    def check(self, producers: Mapping[str, frozenset[int]]) -> None:
        """Refuse a configuration where someone else sends this frame's ID on its bus."""
        for who, keys in producers.items():
            if self.key in keys:
                raise ConfigError(
                    who,
                    f"sends 0x{self._encoder.frame_id:03X} on bus {self.bus!r}, "
                    f"which the controller uses for {NAME}",
                )

    def encode(self, stats: RuntimeStats) -> OutFrame:
        self._counter = (self._counter + 1) % 16
        return self._encoder.encode(
            {
                "BMS_RtOverruns": stats.overruns,
                "BMS_RtLateCycles": stats.late_cycles,
                "BMS_RtLongestCycle": stats.max_cycle_s * 1e3,
                "BMS_RtAliveCounter": self._counter,
                "BMS_RtRxBacklog": stats.max_backlog,
                "BMS_RtDroppedFrames": stats.dropped_frames,
                "BMS_RtSendErrors": stats.send_errors,
                "BMS_RtFailedSteps": stats.step_errors,
                "BMS_RtStoreDrops": stats.store_drops,
            }
        )
