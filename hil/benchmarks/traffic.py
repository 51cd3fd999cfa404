"""Bus traffic of a healthy pack at rest, 10 ms at a time, for packs of any size.

The slave frames are packed with array operations from the slot geometry of
``dbc.layout`` (no cantools call per frame), so a 100,000-cell pack's traffic is ready in
a second. Modules are spread evenly over the 100 ms voltage period (module ``m`` sends in
step ``m % 10``) and the 1 s temperature period, as free-running slaves end up on a real
bus. The few frames of the current sensor, the contactor driver and the EMS are encoded
with cantools at their DBC periods. Alive counters advance per ID and every frame is
CRC-protected, so the controller does its full work on every frame.
"""

from __future__ import annotations

import math

import cantools
import numpy as np

import dbc
from controller.frames import MAX_PAYLOAD, FrameBatch
from dbc import e2e, master_e2e
from dbc.layout import (
    SlotLayout,
    cell_layout,
    cell_voltages_id,
    module_status_id,
    sensor_layout,
    temperatures_id,
)
from dbc.topology import Topology

STEP_S = 0.01
VOLTAGE_STEPS = 10  # 100 ms period of CellVoltages and ModuleStatus
TEMPERATURE_STEPS = 100  # 1 s period of Temperatures
CELL_VOLTS = (3.60, 3.70)
CELL_DEGC = (24.0, 27.0)
BOARD_DEGC = 30
PACK_CURRENT_A = 0.0
# (message, steps between frames, index into BUSES); all other signals are sent as 0
BUSES = ("internal", "vehicle")
DEVICE_FRAMES = (
    ("IVT_Result_I", 2, 0),
    ("IVT_Result_U1", 10, 0),
    ("IVT_Result_U2", 10, 0),
    ("IVT_Result_U3", 10, 0),
    ("IVT_Result_W", 10, 0),
    ("IVT_Result_As", 10, 0),
    ("IVT_Result_Wh", 10, 0),
    ("IVT_Result_T", 100, 0),
    ("ContactorFeedback", 2, 0),
    ("EMS_StateRequest", 10, 1),
)
COUNTERS = {
    "IVT_Result_I": "IVT_I_Counter",
    "IVT_Result_U1": "IVT_U1_Counter",
    "IVT_Result_U2": "IVT_U2_Counter",
    "IVT_Result_U3": "IVT_U3_Counter",
    "IVT_Result_W": "IVT_W_Counter",
    "IVT_Result_As": "IVT_As_Counter",
    "IVT_Result_Wh": "IVT_Wh_Counter",
    "IVT_Result_T": "IVT_T_Counter",
    "ContactorFeedback": "ContactorFbk_Counter",
    "EMS_StateRequest": "EMS_AliveCounter",
}
IVT_VOLTAGE_MAX_V = (2**31 - 1) / 1000  # U1 is a signed 32-bit mV value


def _pack_slots(values: np.ndarray, layout: SlotLayout, count: int) -> np.ndarray:
    """(modules, groups * 64) payload bytes of ``count`` slot values per module."""
    modules = values.shape[0]
    groups = math.ceil(count / layout.per_frame)
    raw = np.zeros((modules, groups * layout.per_frame), np.int64)
    raw[:, :count] = np.round(values / layout.scale).astype(np.int64)
    raw &= (1 << layout.value_bits) - 1  # two's complement for signed slots; invalid bit 0
    bits = (raw[..., None] >> np.arange(layout.slot_bits)) & 1
    frame_bits = np.zeros((modules * groups, MAX_PAYLOAD * 8), np.uint8)
    width = layout.per_frame * layout.slot_bits
    frame_bits[:, layout.first_bit : layout.first_bit + width] = bits.reshape(
        modules * groups, width
    )
    data = np.packbits(frame_bits, axis=1, bitorder="little")
    data[:, 1] = np.tile(np.arange(groups, dtype=np.uint8) << 4, modules)  # mux nibble
    return data


class Traffic:
    """Consecutive 10 ms batches of everything the buses carry to the controller."""

    def __init__(self, topology: Topology, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        t = topology
        volts = rng.uniform(*CELL_VOLTS, (t.modules, t.cells_per_module))
        degc = rng.uniform(*CELL_DEGC, (t.modules, t.sensors_per_module))
        self.pack_voltage = float(volts.sum())
        dlc = 64 if t.fd else 8
        modules = np.arange(t.modules)
        cells = _pack_slots(volts, cell_layout(t), t.cells_per_module)
        temps = _pack_slots(degc, sensor_layout(t), t.sensors_per_module)
        status = np.zeros((t.modules, MAX_PAYLOAD), np.uint8)
        module_volts = np.round(volts.sum(axis=1) / 0.01).astype(np.int64) & 0xFFFF
        status[:, 2] = module_volts & 0xFF
        status[:, 3] = module_volts >> 8
        status[:, 4] = BOARD_DEGC
        ext = t.extended_ids
        ids = [
            np.repeat([cell_voltages_id(int(m), ext) for m in modules], t.voltage_groups),
            np.repeat([temperatures_id(int(m), ext) for m in modules], t.temperature_groups),
            np.array([module_status_id(int(m), ext) for m in modules]),
        ]
        steps = [
            np.repeat(modules % VOLTAGE_STEPS, t.voltage_groups),
            np.repeat(modules % TEMPERATURE_STEPS, t.temperature_groups),
            modules % VOLTAGE_STEPS,
        ]
        periods = [VOLTAGE_STEPS, TEMPERATURE_STEPS, VOLTAGE_STEPS]
        self._ids = np.concatenate(ids).astype(np.uint32)
        self._data = np.concatenate([cells, temps, status])
        self._dlc = np.concatenate(
            [np.full(len(cells), dlc), np.full(len(temps), dlc), np.full(len(status), 8)]
        ).astype(np.uint8)
        # template rows sent in each step of the 1 s cycle (rows of one ID stay adjacent)
        phase = np.concatenate([s % p for s, p in zip(steps, periods, strict=True)])
        period = np.concatenate([np.full(len(s), p) for s, p in zip(steps, periods, strict=True)])
        self._rows = [np.flatnonzero(step % period == phase) for step in range(TEMPERATURE_STEPS)]
        unique, self._id_index = np.unique(self._ids, return_inverse=True)
        self._sent = np.zeros(unique.shape[0], np.int64)
        self._devices = _Devices(self.pack_voltage)
        self.step_index = 0

    def next_batch(self) -> FrameBatch:
        """The frames of the next 10 ms, stamped inside it; ``now`` is its end."""
        k = self.step_index
        rows = self._rows[k % TEMPERATURE_STEPS]
        index = self._id_index[rows]
        first = np.flatnonzero(np.r_[True, index[1:] != index[:-1]])
        rank = np.arange(rows.shape[0]) - np.repeat(first, np.diff(np.r_[first, rows.shape[0]]))
        counters = self._sent[index] + rank
        np.add.at(self._sent, index, 1)
        data = e2e.protect_batch(self._ids[rows], self._data[rows], self._dlc[rows], counters)
        slaves = FrameBatch(
            self._ids[rows], self._dlc[rows], data, np.zeros(rows.shape[0]), bus_names=BUSES
        )
        batch = FrameBatch.concatenate([slaves, self._devices.frames(k)])
        stamps = np.linspace(k * STEP_S, (k + 1) * STEP_S, len(batch), endpoint=False)
        self.step_index += 1
        return batch.restamped(stamps)

    @property
    def now(self) -> float:
        """End of the last batch handed out: the time to step the controller at."""
        return self.step_index * STEP_S


class _Devices:
    """Current sensor, contactor driver (all open) and EMS (standby), encoded by cantools."""

    def __init__(self, pack_voltage: float) -> None:
        sensor = cantools.database.load_file(str(dbc.path("ivt_s.dbc")))
        master = cantools.database.load_file(str(dbc.path("canbms_master.dbc")))
        self._messages = []
        for name, every, bus in DEVICE_FRAMES:
            db = sensor if name.startswith("IVT_") else master
            self._messages.append((db.get_message_by_name(name), every, bus))
        self._values = {
            "IVT_I_Value": PACK_CURRENT_A * 1000,
            "IVT_U1_Value": round(min(pack_voltage, IVT_VOLTAGE_MAX_V) * 1000),
        }
        self._counts = dict.fromkeys(COUNTERS, 0)

    def frames(self, step: int) -> FrameBatch:
        return device_frames(self._messages, self._counts, self._values, step)


def device_frames(
    messages: list[tuple[cantools.database.Message, int, int]],
    counts: dict[str, int],
    values: dict[str, float],
    step: int,
) -> FrameBatch:
    """The device frames due at ``step`` (each every ``every`` steps on its bus position),
    encoded by cantools from ``values`` with their alive counters (``counts`` advances) and,
    for the master frames with E2E, sealed."""
    ids, dlc, buses, payloads = [], [], [], []
    for message, every, bus in messages:
        if step % every:
            continue
        signals = {s.name: values.get(s.name, 0) for s in message.signals}
        count = counts[message.name]
        counts[message.name] += 1
        if message.name in master_e2e.PROTECTED:
            encoded = message.encode(signals, strict=False)
            payload = master_e2e.seal(message.frame_id, encoded, count)
        else:
            signals[COUNTERS[message.name]] = count % 16
            payload = message.encode(signals, strict=False)
        ids.append(message.frame_id)
        dlc.append(len(payload))
        buses.append(bus)
        payloads.append(payload.ljust(MAX_PAYLOAD, b"\0"))
    if not ids:
        return FrameBatch.empty()
    return FrameBatch(
        ids=np.array(ids, np.uint32),
        dlc=np.array(dlc, np.uint8),
        data=np.frombuffer(b"".join(payloads), np.uint8).reshape(len(ids), MAX_PAYLOAD),
        timestamps=np.zeros(len(ids)),
        bus=np.array(buses, np.uint8),
        bus_names=BUSES,
    )
