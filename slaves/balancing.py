"""Passive balancing in the slave modules, as commanded by the master.

A BalancingCommand is obeyed only when its CRC is right and its alive counter moved on by
1..`MAX_COUNTER_DELTA` since the last frame with a good CRC (a repeated counter is a hung
master, not a new command). Without a valid command for ``timeout_s`` the module stops
bleeding: a dead master must not drain cells. Bleeding also stops while the board is over
``overtemp_c`` and resumes below ``overtemp_c - overtemp_hysteresis_k``.
"""

from __future__ import annotations

from dataclasses import dataclass

import can
import cantools
import numpy as np

from dbc.e2e import COUNTER_MODULO, protect
from dbc.topology import Topology

MAX_COUNTER_DELTA = 3


@dataclass(frozen=True)
class BalancingParams:
    resistor_ohm: float = 33.0
    timeout_s: float = 2.0
    board_k_per_w: float = 4.0  # board temperature rise above the module per watt bled
    overtemp_c: float = 65.0
    overtemp_hysteresis_k: float = 10.0

    def __post_init__(self) -> None:
        if self.resistor_ohm <= 0:
            raise ValueError(f"balancing.resistor_ohm: {self.resistor_ohm} must be > 0")
        if self.timeout_s <= 0:
            raise ValueError(f"balancing.timeout_s: {self.timeout_s} must be > 0")
        if self.board_k_per_w < 0 or self.overtemp_hysteresis_k < 0:
            raise ValueError("balancing.board_k_per_w and overtemp_hysteresis_k must be >= 0")


class Balancer:
    """Balancing state of every module on one slave bus."""

    def __init__(
        self, db: cantools.database.can.Database, topology: Topology, params: BalancingParams
    ) -> None:
        self.params = params
        self.topology = topology
        self._extended = topology.extended_ids
        m, c = topology.modules, topology.cells_per_module
        self._module_of_id: dict[int, int] = {}
        self._mask_signal: list[str] = []
        for module in range(m):
            msg = db.get_message_by_name(f"BalancingCommand_M{module:02}")
            self._module_of_id[msg.frame_id] = module
            self._mask_signal.append(f"M{module:02}_BalanceMask")
        self._db = db
        self._bit = np.arange(c, dtype=np.uint64)
        self.commanded = np.zeros((m, c), bool)
        self.overtemp = np.zeros(m, bool)
        self.last_valid = np.full(m, -np.inf)
        self.last_counter = np.full(m, -1, np.int64)
        self.accepted = 0
        self.rejected = 0
        self.t = 0.0

    @property
    def idle(self) -> bool:
        """No cell is commanded to bleed (so none bleeds)."""
        return not self.commanded.any()

    @property
    def active(self) -> np.ndarray:
        """``(modules, cells)``: cells bleeding now."""
        return self.commanded & ~self.overtemp[:, None]

    def receive(self, msg: can.Message) -> None:
        module = self._module_of_id.get(msg.arbitration_id)
        if module is None or msg.is_extended_id != self._extended or msg.is_remote_frame:
            return
        data = bytes(msg.data)
        if len(data) < 2 or protect(msg.arbitration_id, bytearray(data), data[1] & 0x0F) != data:
            self.rejected += 1
            return
        counter = data[1] & 0x0F
        last = int(self.last_counter[module])
        self.last_counter[module] = counter
        if last >= 0 and not 1 <= (counter - last) % COUNTER_MODULO <= MAX_COUNTER_DELTA:
            self.rejected += 1
            return
        try:
            decoded = self._db.decode_message(
                msg.arbitration_id, data, decode_choices=False, scaling=False
            )
        except cantools.database.DecodeError:
            self.rejected += 1
            return
        mask = np.uint64(int(decoded[self._mask_signal[module]]))
        self.commanded[module] = (mask >> self._bit) & np.uint64(1) == 1
        self.last_valid[module] = self.t
        self.accepted += 1

    def update(self, t: float, board_temperature: np.ndarray) -> None:
        """Apply the command timeout and the board over-temperature cut-off at time ``t``."""
        self.t = t
        if not self.idle:
            self.commanded[t - self.last_valid > self.params.timeout_s] = False
        limit = self.params.overtemp_c
        cool = limit - self.params.overtemp_hysteresis_k
        self.overtemp = np.where(self.overtemp, board_temperature > cool, board_temperature > limit)

    def bleed_current(self, cell_voltage: np.ndarray) -> np.ndarray:
        """``(modules, cells)`` A drawn from each cell by its bleed resistor."""
        active = self.active
        if not active.any():
            return np.zeros(cell_voltage.shape)
        return np.where(active, np.maximum(cell_voltage, 0.0) / self.params.resistor_ohm, 0.0)
