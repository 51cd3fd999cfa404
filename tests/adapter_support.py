"""Shared by the adapter tests: snapshots, a stepping loop, and independent frame decoders.

The decoders are written from the byte layouts in the protocol facts (struct and bit
operations), not from the project's DBC files, so an error in a DBC cannot hide itself.
"""

from __future__ import annotations

import struct
from dataclasses import replace
from typing import Any

import numpy as np

from controller.adapters.base import BmsSnapshot, Level
from controller.frames import MAX_PAYLOAD, FrameBatch, OutFrame

HEALTHY = BmsSnapshot(
    time=0.0,
    bms_state="normal",
    contactors_closed=True,
    charge_allowed=True,
    discharge_allowed=True,
    ccl=50.0,
    dcl=80.0,
    cvl=54.0,
    dvl=44.0,
    soc=60.0,
    soh=97.0,
    pack_voltage=51.2,
    pack_current=10.0,
    min_cell_voltage=3.19,
    max_cell_voltage=3.23,
    min_cell_position=3,
    max_cell_position=11,
    min_temperature=18.0,
    max_temperature=24.5,
    mean_temperature=21.3,
    fault_level=Level.OK,
    checks={},
    cells_in_series=16,
    modules=1,
    capacity_ah=280.0,
)


def snapshot(**changes: Any) -> BmsSnapshot:
    return replace(HEALTHY, **changes)


def batch(frames: list[tuple[int, bytes, float]]) -> FrameBatch:
    """A received batch from ``(id, payload, timestamp)`` tuples."""
    if not frames:
        return FrameBatch.empty()
    data = np.zeros((len(frames), MAX_PAYLOAD), np.uint8)
    for row, (_, payload, _) in enumerate(frames):
        data[row, : len(payload)] = np.frombuffer(payload, np.uint8)
    return FrameBatch(
        ids=np.array([f[0] for f in frames], np.uint32),
        dlc=np.array([len(f[1]) for f in frames], np.uint8),
        data=data,
        timestamps=np.array([f[2] for f in frames], np.float64),
    )


def by_id(frames: tuple[OutFrame, ...]) -> dict[int, OutFrame]:
    out = {f.arbitration_id: f for f in frames}
    assert len(out) == len(frames), "one frame per ID per step"
    return out


# --- CAN-BMS (11-bit, little-endian) ---------------------------------------------------------


def decode_351(data: bytes) -> dict[str, float]:
    cvl, ccl, dcl, dvl = struct.unpack_from("<HhhH", data)
    return {"cvl": cvl * 0.1, "ccl": ccl * 0.1, "dcl": dcl * 0.1, "dvl": dvl * 0.1}


def decode_355(data: bytes) -> dict[str, float]:
    soc, soh = struct.unpack_from("<HH", data)
    out = {"soc": float(soc), "soh": float(soh)}
    if len(data) >= 6:
        out["soc_hires"] = struct.unpack_from("<H", data, 4)[0] * 0.01
    return out


def decode_356(data: bytes) -> dict[str, float]:
    volts, amps, temp = struct.unpack_from("<hhh", data)
    return {"voltage": volts * 0.01, "current": amps * 0.1, "temperature": temp * 0.1}


FLAGS_35A = (
    "general", "high_voltage", "low_voltage", "high_temperature",
    "low_temperature", "high_temp_charge", "low_temp_charge", "high_discharge_current",
    "high_charge_current", "contactor", "short_circuit", "bms_internal",
    "cell_imbalance",
)  # fmt: skip


def decode_35a(data: bytes) -> dict[str, tuple[int, int]]:
    """flag -> (alarm, warning), each 2 bits: 1 active, 2 OK, 0 not supported."""
    out = {}
    for i, name in enumerate(FLAGS_35A):
        shift = 2 * (i % 4)
        out[name] = ((data[i // 4] >> shift) & 3, (data[4 + i // 4] >> shift) & 3)
    return out


BITS_359 = {
    "over_voltage": (0, 1),
    "under_voltage": (0, 2),
    "over_temperature": (0, 3),
    "under_temperature": (0, 4),
    "discharge_over_current": (0, 7),
    "charge_over_current": (1, 0),
    "system_error": (1, 3),
}


def decode_359(data: bytes) -> dict[str, Any]:
    """flag -> (protection, warning) bits; plus module count and the ASCII tag."""
    out: dict[str, Any] = {
        name: ((data[byte] >> bit) & 1, (data[2 + byte] >> bit) & 1)
        for name, (byte, bit) in BITS_359.items()
    }
    out["modules"] = data[4]
    out["tag"] = bytes(data[5:7]).decode("ascii")
    return out


def decode_35c_pylontech(data: bytes) -> dict[str, int]:
    return {"charge_enable": data[0] >> 7 & 1, "discharge_enable": data[0] >> 6 & 1}


def decode_35f(data: bytes) -> dict[str, int]:
    model, hw, capacity, sw = struct.unpack_from("<HHHH", data)
    return {"model": model, "hardware": hw, "capacity": capacity, "software": sw}


def decode_373(data: bytes) -> dict[str, float]:
    vmin, vmax, tmin, tmax = struct.unpack_from("<HHHH", data)
    return {"vmin_mv": vmin, "vmax_mv": vmax, "tmin_k": tmin, "tmax_k": tmax}


# --- Elcon (29-bit, big-endian) ----------------------------------------------------------


def decode_elcon_command(data: bytes) -> dict[str, float]:
    volts, amps, control = struct.unpack_from(">HHB", data)
    return {"voltage": volts * 0.1, "current": amps * 0.1, "stop": control}


def elcon_status(volts: float, amps: float, flags: int = 0) -> bytes:
    return struct.pack(">HHB3x", round(volts * 10), round(amps * 10), flags)
