"""End-to-end checks of received frames: Profile 11 CRC and alive counter, per batch.

A message with a CRC follows AUTOSAR E2E Profile 11 (``dbc.e2e``): the CRC is byte 0 over
the message's data ID (configured, or the low 16 bits of its frame ID) and bytes 1..DLC-1,
and its counter, when it has one, is bits 8-11 counting 0..14. A message with a counter
but no CRC has a plain alive counter that wraps at 2**bits. Counters are judged by
``dbc.e2e_counter`` against the last accepted counter of the same message, with the
message's largest accepted step: repeated and out-of-order frames are dropped without
disturbing the frames that follow.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from controller.errors import MappingError
from controller.ingest.layout import MessageLayout, SignalLayout, SlotTable
from controller.ingest.mapping import E2ERule
from dbc import e2e as profile
from dbc.e2e_counter import CounterState, CounterVerdict
from dbc.e2e_counter import check_counters as judge_counters

CRC_SEGMENTS = ((profile.CRC_BYTE, 0, 0xFF, 0),)  # the profile's CRC: all of byte 0
COUNTER_SEGMENTS = ((1, 0, 0x0F, 0),)  # the profile's counter: bits 8-11


@dataclass(frozen=True)
class E2ETable:
    """E2E settings per message index (messages sorted as in the decoder)."""

    has_crc: np.ndarray  # (M,) bool
    has_counter: np.ndarray  # (M,) bool
    counter: SlotTable  # row m: the counter signal of message m
    modulo: np.ndarray  # (M,) int64: 15 for a Profile 11 counter, else 2**counter bits
    max_jump: np.ndarray  # (M,) int64: largest accepted counter step
    data_id: np.ndarray  # (M,) int64: the Profile 11 data ID


def _root_signal(layout: MessageLayout, name: str, key: str) -> SignalLayout:
    """A signal present in every slot of the message (not multiplexed)."""
    found = [next((s for s in slot.signals if s.name == name), None) for slot in layout.slots]
    if not found or any(s is None for s in found):
        raise MappingError(f"{key}: {layout.name} has no unmultiplexed signal {name!r}")
    return found[0]


def build_e2e(layouts: Sequence[MessageLayout], rules: Sequence[E2ERule]) -> E2ETable:
    """Resolve which messages carry a CRC and/or counter; the first matching rule applies."""
    m = len(layouts)
    has_crc = np.zeros(m, bool)
    has_counter = np.zeros(m, bool)
    modulo = np.ones(m, np.int64)
    max_jump = np.zeros(m, np.int64)
    data_id = np.array([int(profile.data_id_of(layout.frame_id)) for layout in layouts], np.int64)
    counters: list[list[SignalLayout]] = [[] for _ in layouts]
    for i, layout in enumerate(layouts):
        match, rule = next(
            ((mt, r) for r in rules if (mt := r.message.fullmatch(layout.name))), (None, None)
        )
        if rule is None or match is None:
            continue
        names = {"message": layout.name, **match.groupdict()}
        if rule.crc is not None:
            crc = _root_signal(layout, rule.crc.format(**names), f"{rule.key}.crc")
            if crc.segments != CRC_SEGMENTS or crc.signed:
                raise MappingError(f"{rule.key}.crc: {crc.name} must be the unsigned byte 0")
            has_crc[i] = True
            if rule.data_id is not None:
                data_id[i] = rule.data_id
        if rule.counter is not None:
            counter = _root_signal(layout, rule.counter.format(**names), f"{rule.key}.counter")
            if counter.signed or counter.scale != 1 or counter.offset != 0:
                raise MappingError(f"{rule.key}.counter: {counter.name} must be raw unsigned")
            if has_crc[i] and counter.segments != COUNTER_SEGMENTS:
                raise MappingError(
                    f"{rule.key}.counter: {counter.name} must be bits 8-11, the Profile 11 "
                    "counter of a message with a CRC"
                )
            modulo[i] = profile.COUNTER_MODULO if has_crc[i] else 2**counter.length
            if rule.max_jump > (modulo[i] - 1) // 2:
                raise MappingError(
                    f"{rule.key}.max_jump: {rule.max_jump} is above {(modulo[i] - 1) // 2}, "
                    f"half the counter range of {layout.name} (modulo {modulo[i]})"
                )
            has_counter[i] = True
            counters[i] = [counter]
            max_jump[i] = rule.max_jump
    return E2ETable(has_crc, has_counter, SlotTable(counters), modulo, max_jump, data_id)


def crc_ok(table: E2ETable, msg: np.ndarray, data: np.ndarray, dlc: np.ndarray) -> np.ndarray:
    """True where byte 0 holds the Profile 11 CRC of the frame (message index ``msg``)."""
    return profile.crc8_batch(table.data_id[msg], data, dlc) == data[:, profile.CRC_BYTE]


def check_counters(
    table: E2ETable,
    msg: np.ndarray,
    counter: np.ndarray,
    timestamps: np.ndarray,
    state: CounterState,
) -> np.ndarray:
    """``CounterVerdict`` of each frame (message index ``msg``); advances ``state``."""
    return judge_counters(state, msg, counter, timestamps, table.modulo, table.max_jump)


__all__ = ["CounterState", "CounterVerdict", "E2ETable", "build_e2e", "check_counters", "crc_ok"]
