"""E2E Profile 11 on the master safety frames: layout, worked example, random acceptance."""

from __future__ import annotations

import cantools
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import dbc
from controller.contactors import Commands
from controller.status_frames import StatusFrames
from dbc import e2e, master_e2e

MASTER = cantools.database.load_file(dbc.path("canbms_master.dbc"), strict=True)
RANDOM_FRAMES = 1_000_000
ACCEPT = (1 / 256) * (15 / 16)  # CRC byte matches, counter not 15


@pytest.mark.parametrize("name", master_e2e.PROTECTED)
def test_every_safety_frame_has_the_profile_11_header(name):
    message = MASTER.get_message_by_name(name)
    crc, counter = message.signals[0], message.signals[1]
    assert (crc.start, crc.length, crc.name.endswith("CRC")) == (0, 8, True)
    assert (counter.start, counter.length, counter.maximum) == (8, 4, 14)
    assert crc.name in message.comment or crc.comment.startswith("AUTOSAR E2E Profile 11")
    assert f"0x{message.frame_id:04X}" in crc.comment  # the data ID is documented


def test_worked_example_of_the_protocol_page():
    request = MASTER.get_message_by_name("EMS_StateRequest")
    plain = {"EMS_CRC": 0, "EMS_AliveCounter": 0, "EMS_RequestedState": 1, "EMS_FaultReset": 0}
    assert master_e2e.seal(request.frame_id, request.encode(plain), 3) == bytes.fromhex("8B1300")
    command = MASTER.get_message_by_name("ContactorCommand")
    closing = {
        "ContactorCmd_CRC": 0,
        "ContactorCmd_Counter": 0,
        "ContactorCmd_MinusClose": 1,
        "ContactorCmd_PrechargeClose": 0,
        "ContactorCmd_PlusClose": 1,
    }
    sealed = master_e2e.seal(command.frame_id, command.encode(closing), 7)
    assert sealed == bytes.fromhex("1157")


@given(
    counter=st.integers(0, 14), bit=st.integers(0, 15), name=st.sampled_from(master_e2e.PROTECTED)
)
def test_any_single_bit_flip_fails(counter, bit, name):
    message = MASTER.get_message_by_name(name)
    values = {s.name: 0 for s in message.signals}
    sealed = master_e2e.seal(message.frame_id, message.encode(values), counter)
    assert master_e2e.intact(message.frame_id, sealed)
    flipped = bytearray(sealed)
    flipped[bit // 8] ^= 1 << (bit % 8)
    assert not master_e2e.intact(message.frame_id, flipped)


def test_the_controller_sends_intact_frames_with_consecutive_counters():
    frames = StatusFrames(MASTER)
    counters: dict[str, int] = {}
    sent = [frames.contactor_command(Commands(True, True, False), counters) for _ in range(20)]
    sent += [frames.limits(12.3, 45.6, 58.4, 40.1, counters) for _ in range(3)]
    for frame in sent:
        assert master_e2e.intact(frame.arbitration_id, frame.data)
    assert [master_e2e.counter_of(f.data) for f in sent[:20]] == [k % 15 for k in range(20)]
    limits = MASTER.decode_message(sent[-1].arbitration_id, sent[-1].data)
    assert limits["BMS_ChargeCurrentLimit"] == 12.0  # rounded down: never more than allowed
    assert limits["BMS_DischargeCurrentLimit"] == 45.5
    assert limits["BMS_ChargeVoltageLimit"] == 58.25
    assert limits["BMS_DischargeVoltageLimit"] == 40.25  # rounded up: never a wider window


@pytest.mark.parametrize("name", master_e2e.PROTECTED)
def test_random_payloads_pass_no_more_often_than_the_profile_says(name):
    """10**6 random payloads of the frame's DLC: the share passing is 1/256 * 15/16."""
    message = MASTER.get_message_by_name(name)
    rng = np.random.default_rng(message.frame_id)
    data = rng.integers(0, 256, (RANDOM_FRAMES, message.length), np.uint8)
    ids = np.full(RANDOM_FRAMES, master_e2e.data_id(message.frame_id))
    dlc = np.full(RANDOM_FRAMES, message.length)
    passed = int(e2e.verify_batch(ids, data, dlc).sum())
    sigma = np.sqrt(RANDOM_FRAMES * ACCEPT * (1 - ACCEPT))
    assert abs(passed - RANDOM_FRAMES * ACCEPT) < 5 * sigma, passed
    sample = data[e2e.verify_batch(ids, data, dlc)][:50]
    assert all(master_e2e.intact(message.frame_id, bytes(row)) for row in sample)
