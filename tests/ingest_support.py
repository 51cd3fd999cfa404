"""Frames of the slave protocol built with cantools (an encoder independent of the ingest)."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import cantools
import numpy as np
from cantools.database import Database

from controller.config.ingest import MODULE_ARRAYS as MODULE_TARGETS
from controller.config.ingest import (
    IngestBuild,
    load_databases,
)
from controller.config.loader import load_config
from controller.config.pack import PackConfig
from controller.core import Controller
from controller.frames import MAX_PAYLOAD, FrameBatch
from controller.ingest import BatchDecoder, compile_decoder, load_mapping
from controller.ingest.layout import compile_message
from dbc import e2e
from dbc.slave_protocol import build_database
from dbc.topology import Topology


def slave_targets(topology: Topology) -> dict[str, int]:
    sizes = {"cell_voltage": topology.n_cells, "cell_temperature": topology.n_sensors}
    sizes.update({name: topology.modules for name in MODULE_TARGETS})
    return sizes


def slave_decoder(topology: Topology) -> tuple[cantools.database.Database, BatchDecoder]:
    db = build_database(topology)
    params = {k: v for k, v in asdict(topology).items() if isinstance(v, int)}
    mapping = load_mapping("canbms_slaves", params)
    return db, compile_decoder(db, mapping, slave_targets(topology))


def encode(message, values: dict[str, float], counter: int) -> bytes:
    """Encode with cantools, then add the E2E counter and CRC as a slave would."""
    signals = {s.name: 0 for s in message.signals}
    signals.update(values)
    payload = message.encode(signals, scaling=True, strict=False)
    return e2e.protect(message.frame_id, payload, counter)


def batch(frames: list[tuple[int, bytes, float]]) -> FrameBatch:
    """(id, payload, timestamp) triples as a batch."""
    n = len(frames)
    data = np.zeros((n, MAX_PAYLOAD), np.uint8)
    for i, (_, payload, _) in enumerate(frames):
        data[i, : len(payload)] = np.frombuffer(payload, np.uint8)
    return FrameBatch(
        ids=np.array([f[0] for f in frames], np.uint32),
        dlc=np.array([len(f[1]) for f in frames], np.uint8),
        data=data,
        timestamps=np.array([f[2] for f in frames], np.float64),
    )


def cell_voltage_frames(
    db, topology: Topology, volts: np.ndarray, invalid: np.ndarray, counters: dict, t: float
) -> list[tuple[int, bytes, float]]:
    """One CellVoltages frame per module and group; ``counters`` is advanced per ID."""
    frames = []
    per_frame = topology.cells_per_frame
    for m in range(topology.modules):
        message = db.get_message_by_name(f"CellVoltages_M{m:02}")
        for g in range(topology.voltage_groups):
            values: dict[str, float] = {f"CellVoltages_M{m:02}_Mux": g}
            for c in range(g * per_frame, min((g + 1) * per_frame, topology.cells_per_module)):
                k = m * topology.cells_per_module + c
                values[f"M{m:02}_Cell{c:02}_Voltage"] = float(volts[k])
                values[f"M{m:02}_Cell{c:02}_Invalid"] = int(invalid[k])
            count = counters.get(message.frame_id, 0)
            counters[message.frame_id] = count + 1
            frames.append((message.frame_id, encode(message, values, count), t))
    return frames


def build_from_config(path: Path) -> tuple[IngestBuild, PackConfig, dict[str, Database]]:
    """Decoders of a TOML configuration, as the assembly `Controller` builds them from it."""
    config = load_config(path)
    controller = Controller(config)
    dbs, _ = load_databases(config.dbc)
    return IngestBuild(dict(controller.decoders), controller.notices), config.pack, dbs


def with_mux(message, payload: bytearray, value: int) -> bytearray:
    """``payload`` with the multiplexer of ``message`` set to ``value``."""
    layout = compile_message(message)
    if layout.mux is not None:
        for byte, rshift, mask, lshift in layout.mux.segments:
            payload[byte] &= ~(mask << rshift) & 0xFF
            payload[byte] |= ((value >> lshift) & mask) << rshift
    return payload
