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

from controller.config import fields
from controller.errors import MappingError
from controller.frames import MAX_PAYLOAD, OutFrame, frame_key
from controller.measurements import ArrayStats
from dbc.e2e import COUNTER_MODULO, protect_batch


@dataclass(frozen=True)
class BalancingConfig:
    enabled: bool
    threshold: float  # V above the lowest valid cell
    min_cell_voltage: float  # V: never bleed a cell below this
    max_temperature: float  # degC: no balancing above
    max_rest_current: float  # A: discharge current above which balancing stops
    period_s: float


def parse_balancing(data: Mapping[str, Any], path: str = "balancing") -> BalancingConfig:
    fields.unknown_keys(
        data,
        {
            "enabled",
            "threshold_mv",
            "min_cell_voltage",
            "max_temperature",
            "max_rest_current_a",
            "period_ms",
        },
        path,
    )
    return BalancingConfig(
        enabled=fields.boolean(data, "enabled", path, True),
        threshold=fields.number(data, "threshold_mv", path, 10.0, 1.0, 500.0) / 1000.0,
        min_cell_voltage=fields.number(data, "min_cell_voltage", path, 3.5, 0.0, 5.0),
        max_temperature=fields.number(data, "max_temperature", path, 50.0, -40.0, 100.0),
        max_rest_current=fields.number(data, "max_rest_current_a", path, 2.0, 0.0, 1000.0),
        period_s=fields.number(data, "period_ms", path, 500.0, 50.0, 10_000.0) / 1000.0,
    )


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
        and pack_current > -config.max_rest_current
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
        data = protect_batch(self._ids, data, self._dlc, counters)
        return [
            OutFrame(
                int(i),
                data[row, :length].tobytes(),
                self.bus,
                is_extended_id=self._extended,
                is_fd=self._is_fd,
            )
            for row, (i, length) in enumerate(zip(self._ids, self._dlc, strict=True))
        ]
