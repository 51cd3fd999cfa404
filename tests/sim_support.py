"""Independent checks for simulated slave frames: a bitwise CRC-8 and cantools decoding."""

from __future__ import annotations

from collections import defaultdict

import can
from e2e_reference import frame_crc

from dbc.e2e import COUNTER_MODULO
from slaves.simulator import PackSimulator


def crc_ok(msg: can.Message) -> bool:
    data = bytes(msg.data)
    return len(data) >= 2 and frame_crc(msg.arbitration_id, data) == data[0]


def counter(msg: can.Message) -> int:
    return msg.data[1] & 0x0F


def decode(sim: PackSimulator, msg: can.Message) -> dict:
    return sim.db.decode_message(msg.arbitration_id, bytes(msg.data), decode_choices=False)


def by_id(messages: list[can.Message]) -> dict[int, list[can.Message]]:
    out: dict[int, list[can.Message]] = defaultdict(list)
    for msg in messages:
        out[msg.arbitration_id].append(msg)
    return out


def balancing_command(sim: PackSimulator, module: int, cells: list[int], ctr: int) -> can.Message:
    """A BalancingCommand encoded by cantools, protected with the test's own CRC."""
    msg = sim.db.get_message_by_name(f"BalancingCommand_M{module:02}")
    mask = sum(1 << c for c in cells)
    signals = {s.name: 0 for s in msg.signals}
    signals[f"M{module:02}_BalanceMask"] = mask
    signals[f"{msg.name}_Counter"] = ctr % COUNTER_MODULO
    data = bytearray(msg.encode(signals))
    data[0] = frame_crc(msg.frame_id, bytes(data))
    return can.Message(
        arbitration_id=msg.frame_id, data=bytes(data), is_extended_id=False, is_fd=msg.is_fd
    )
