"""The E2E profile (AUTOSAR Profile 11) against an independent bitwise CRC written here."""

from __future__ import annotations

import cantools
import numpy as np
import pytest
from e2e_reference import crc8_profile11, frame_crc
from hypothesis import given
from hypothesis import strategies as st

import dbc
from dbc.e2e import (
    COUNTER_MODULO,
    counters,
    crc8,
    crc8_batch,
    crc8_bytes,
    data_id_of,
    protect,
    protect_batch,
    verify_batch,
)

data_ids = st.integers(0, 0xFFFF)
payloads = st.binary(min_size=1, max_size=64)


def test_check_value_of_the_profile_crc():
    # CRC-8 SAE J1850 polynomial with start value 0x00 and no final XOR
    assert crc8_bytes(b"123456789") == 0x37
    assert crc8_profile11(b"123456789") == 0x37


def test_example_of_the_autosar_protocol_specification():
    # Profile 11, data ID mode BOTH, data ID 0x123, 8 bytes of zeros: counters 0 and 1
    assert protect(0x123, bytes(8), 0).hex() == "cc00000000000000"
    assert protect(0x123, bytes(8), 1).hex() == "9101000000000000"


def test_worked_example_of_the_protocol_document():
    # CellVoltages_M03, counter 5, group 1, cells 3.7 V / 3.6502 V (invalid) / 4.2 V
    message = cantools.database.load_file(dbc.path("canbms_slaves.dbc")).get_message_by_name(
        "CellVoltages_M03"
    )
    values = {"CellVoltages_M03_CRC": 0, "CellVoltages_M03_Counter": 0, "CellVoltages_M03_Mux": 1}
    values |= {"M03_Cell03_Voltage": 3.7, "M03_Cell04_Voltage": 3.6502, "M03_Cell05_Voltage": 4.2}
    values |= {"M03_Cell03_Invalid": 0, "M03_Cell04_Invalid": 1, "M03_Cell05_Invalid": 0}
    unprotected = message.encode(values)
    assert unprotected.hex() == "001044484bc70852"
    frame = protect(data_id_of(message.frame_id), unprotected, 5)
    assert frame.hex() == "071544484bc70852"
    assert frame_crc(0x203, frame) == 0x07


def test_the_counter_counts_0_to_14_and_15_never_verifies():
    assert COUNTER_MODULO == 15
    assert protect(0x200, bytes(8), 15)[1] & 0x0F == 0
    data = np.zeros((1, 64), np.uint8)
    data[0, 1] = 0x0F
    data[0, 0] = crc8(0x200, bytes(data[0, :8]))  # right CRC, impossible counter
    assert not verify_batch(np.array([0x200]), data, np.array([8])).any()


@given(data_ids, payloads)
def test_scalar_crc_matches_the_bitwise_reference(data_id, payload):
    assert crc8(data_id, payload) == frame_crc(data_id, payload)


@given(st.lists(st.tuples(data_ids, payloads), min_size=1, max_size=40))
def test_batch_crc_matches_the_reference_for_mixed_lengths(frames):
    n = len(frames)
    data = np.zeros((n, 64), np.uint8)
    for row, (_, payload) in enumerate(frames):
        data[row, : len(payload)] = list(payload)
    # garbage beyond the DLC must not leak into the CRC
    dlc = np.array([len(p) for _, p in frames])
    data[np.arange(64)[None, :] >= dlc[:, None]] = 0xA5
    got = crc8_batch(np.array([i for i, _ in frames]), data, dlc)
    assert got.dtype == np.uint8
    assert got.tolist() == [frame_crc(i, p) for i, p in frames]


def test_batch_crc_of_every_length_1_to_64():
    rng = np.random.default_rng(7)
    data = rng.integers(0, 256, (64, 64), dtype=np.uint8)
    ids = rng.integers(0, 0x10000, 64)
    dlc = np.arange(1, 65)
    expected = [frame_crc(int(i), bytes(d[:n])) for i, d, n in zip(ids, data, dlc, strict=True)]
    assert crc8_batch(ids, data, dlc).tolist() == expected


def test_empty_batch():
    out = crc8_batch(np.zeros(0, np.uint32), np.zeros((0, 64), np.uint8), np.zeros(0, np.uint8))
    assert out.shape == (0,)


def test_the_data_id_of_a_29_bit_frame_is_its_low_16_bits():
    assert data_id_of(0x1C002005) == 0x2005
    assert crc8(data_id_of(0x1C002005), bytes(8)) == frame_crc(0x2005, bytes(8))


@given(data_ids, st.binary(min_size=2, max_size=64), st.integers(0, 1000))
def test_protect_writes_counter_then_crc_and_keeps_the_rest(data_id, payload, counter):
    frame = protect(data_id, payload, counter)
    assert len(frame) == len(payload)
    assert frame[1] & 0x0F == counter % COUNTER_MODULO
    assert frame[1] & 0xF0 == payload[1] & 0xF0  # the mux nibble survives
    assert frame[2:] == payload[2:]
    assert frame[0] == frame_crc(data_id, frame)


def test_protect_refuses_frames_without_room_for_the_header():
    with pytest.raises(ValueError, match="0x200"):
        protect(0x200, b"\x00", 0)


@given(
    st.lists(
        st.tuples(data_ids, st.binary(min_size=2, max_size=64), st.integers(0, 14)), max_size=20
    )
)
def test_protect_batch_equals_protect_row_by_row(frames):
    n = len(frames)
    data = np.zeros((n, 64), np.uint8)
    for row, (_, payload, _) in enumerate(frames):
        data[row, : len(payload)] = list(payload)
    ids = np.array([i for i, _, _ in frames], np.uint32)
    dlc = np.array([len(p) for _, p, _ in frames], np.uint8)
    out = protect_batch(ids, data, dlc, np.array([c for _, _, c in frames]))
    for row, (i, payload, c) in enumerate(frames):
        assert bytes(out[row, : len(payload)]) == protect(i, payload, c)
    assert verify_batch(ids, out, dlc).all()
    assert counters(out).tolist() == [c for _, _, c in frames]


@given(data_ids, st.binary(min_size=2, max_size=64), st.data())
def test_any_single_bit_error_in_frame_or_data_id_is_detected(data_id, payload, data):
    frame = np.zeros((1, 64), np.uint8)
    frame[0, : len(payload)] = list(protect(data_id, payload, 3))
    dlc = np.array([len(payload)])
    assert verify_batch(np.array([data_id]), frame, dlc).all()
    bit = data.draw(st.integers(0, 8 * len(payload) + 16 - 1))
    wrong_id = data_id
    if bit < 8 * len(payload):
        frame[0, bit // 8] ^= 1 << (bit % 8)
    else:
        wrong_id ^= 1 << (bit - 8 * len(payload))
    assert not verify_batch(np.array([wrong_id]), frame, dlc).any()


def test_frames_too_short_for_a_crc_never_verify():
    data = np.zeros((2, 64), np.uint8)
    data[:, 0] = crc8(0x300, b"\x00")
    assert verify_batch(np.array([0x300, 0x300]), data, np.array([0, 1])).tolist() == [False, False]
