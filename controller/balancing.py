"""Passive balancing: which cells bleed, and the BalancingCommand frames that say so.

The decision is one vectorised comparison over the pack: a cell bleeds when it is valid and
more than ``threshold`` above the lowest valid cell, the pack is at rest or charging, no fault
is active and the cells are warm enough and not too hot. The command frame's bit layout is
read from the slave DBC at construction (the ``*_BalanceMask`` signal of each module), and
the frames of all modules are packed and protected (counter + CRC) as one array.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from cantools.database.can import Database

from controller.config.declare import load, setting
from controller.errors import MappingError
from controller.frames import MAX_PAYLOAD, OutFrame, frame_key
from controller.measurements import ArrayStats
from dbc.e2e import COUNTER_MODULO, protect_batch


@dataclass(frozen=True)
class BalancingConfig:
    enabled: bool = setting(True, doc="bleed high cells (needs BalancingCommand in the slave DBC)")
    threshold_mv: float = setting(
        10.0, ge=1.0, le=500.0, unit="mV", doc="a cell bleeds this far above the lowest valid cell"
    )
    min_cell_voltage: float = setting(
        3.5, ge=0.0, le=5.0, unit="V", doc="no balancing while the lowest cell is below this"
    )
    max_temperature: float = setting(
        50.0, ge=-40.0, le=100.0, unit="degC", doc="no balancing above this temperature"
    )
    max_rest_current_a: float = setting(
        2.0, ge=0.0, le=1000.0, unit="A", doc="no balancing while discharging harder than this"
    )
    period_ms: float = setting(
        500.0, ge=50.0, le=10_000.0, unit="ms", doc="BalancingCommand period"
    )

    @property
    def threshold(self) -> float:
        """V above the lowest valid cell."""
        return self.threshold_mv / 1000.0

    @property
    def period_s(self) -> float:
        return self.period_ms / 1000.0


def parse_balancing(data: Mapping[str, Any], path: str = "balancing") -> BalancingConfig:
    return load(BalancingConfig, data, path)


def select_cells(
    config: BalancingConfig,
    voltage: np.ndarray,
    voltage_valid: np.ndarray,
    voltage_stats: ArrayStats,
    temperature_stats: ArrayStats,
    pack_current: float,
    current_valid: bool,
    fault_active: bool,
) -> np.ndarray:
    """Boolean mask of the cells that should bleed now."""
    allowed = (
        config.enabled
        and not fault_active
        and voltage_stats.valid
        and temperature_stats.valid
        and current_valid
        and pack_current > -config.max_rest_current_a
        and temperature_stats.maximum < config.max_temperature
        and voltage_stats.minimum >= config.min_cell_voltage
    )
    if not allowed:
        return np.zeros(voltage.shape, bool)
    return voltage_valid & (voltage - voltage_stats.minimum > config.threshold)


class BalancingCommandEncoder:
    """Packs a pack-wide bleed mask into one protected BalancingCommand frame per module."""

    def __init__(self, database: Database, modules: int, cells_per_module: int, bus: str) -> None:
        self.bus = bus
        self.modules = modules
        self.cells_per_module = cells_per_module
        ids, lengths, offsets = [], [], []
        for m in range(modules):
            name = f"BalancingCommand_M{m:02d}"
            try:
                message = database.get_message_by_name(name)
                mask = message.get_signal_by_name(f"M{m:02d}_BalanceMask")
            except KeyError as exc:
                raise MappingError(f"slave DBC lacks {exc.args[0]}") from None
            if (
                mask.byte_order != "little_endian"
                or mask.start % 8
                or mask.length < cells_per_module
            ):
                raise MappingError(f"{name}: balance mask must be byte-aligned little-endian")
            ids.append(message.frame_id)
            lengths.append(message.length)
            offsets.append(mask.start // 8)
        if len(set(offsets)) != 1:
            raise MappingError("BalancingCommand masks sit at different offsets")
        self._ids = np.array(ids, np.uint32)
        self._dlc = np.array(lengths, np.uint8)
        self._offset = offsets[0]
        self._mask_bytes = (cells_per_module + 7) // 8
        self._is_fd = bool(max(lengths) > 8)
        self._extended = bool(message.is_extended_frame)
        # (ID, offset into the packed payloads, length) of each module's frame, as Python ints
        self._rows = [
            (int(i), row * MAX_PAYLOAD, int(length))
            for row, (i, length) in enumerate(zip(ids, lengths, strict=True))
        ]

    def produced(self) -> frozenset[int]:
        """Frame keys of the BalancingCommand frames."""
        return frozenset(frame_key(int(i), self._extended) for i in self._ids)

    def encode(self, bleed: np.ndarray, counter: int) -> list[OutFrame]:
        """Frames for every module; ``counter`` is the alive counter of this transmission."""
        bits = bleed.reshape(self.modules, self.cells_per_module)
        packed = np.packbits(bits, axis=1, bitorder="little")[:, : self._mask_bytes]
        data = np.zeros((self.modules, MAX_PAYLOAD), np.uint8)
        data[:, self._offset : self._offset + self._mask_bytes] = packed
        counters = np.full(self.modules, counter % COUNTER_MODULO)
        payload = protect_batch(self._ids, data, self._dlc, counters).tobytes()
        bus, extended, fd = self.bus, self._extended, self._is_fd
        return [
            OutFrame(i, payload[start : start + length], bus, extended, fd)
            for i, start, length in self._rows
        ]
