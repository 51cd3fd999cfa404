"""An 11-bit and a 29-bit frame with the same number are different messages."""

from __future__ import annotations

import can
import pytest
from cantools.database.can import Database, Message, Signal

from controller.frames import FrameBatch
from controller.ingest import compile_decoder


def _message(name: str, extended: bool) -> Message:
    return Message(
        frame_id=0x100,
        name=name,
        length=2,
        signals=[Signal(f"{name}_Value", start=0, length=16)],
        is_extended_frame=extended,
    )


BOTH = Database(messages=[_message("Short", False), _message("Long", True)])


def _batch(*frames: tuple[bool, int]) -> FrameBatch:
    return FrameBatch.from_messages(
        [
            can.Message(arbitration_id=0x100, data=value.to_bytes(2, "little"), is_extended_id=ext)
            for ext, value in frames
        ],
        bus="internal",
    )


def test_from_messages_keeps_the_identifier_format() -> None:
    batch = _batch((False, 1), (True, 2))
    assert batch.extended.tolist() == [False, True]
    assert batch.keys[0] == 0x100 and batch.keys[1] != 0x100


def test_each_format_decodes_as_its_own_message() -> None:
    decoded = compile_decoder(BOTH).decode_all(_batch((False, 7), (True, 9)))
    assert decoded["Short"].values["Short_Value"].tolist() == [7]
    assert decoded["Long"].values["Long_Value"].tolist() == [9]


def test_a_29_bit_frame_is_unknown_to_an_11_bit_database() -> None:
    decoder = compile_decoder(Database(messages=[_message("Short", False)]))
    report = decoder.decode(_batch((True, 5), (False, 6)), decoder.new_state())
    assert report.unknown == 1


def test_without_a_flag_ids_above_11_bits_count_as_extended() -> None:
    batch = FrameBatch.from_messages([], bus="internal")
    assert len(batch) == 0
    raw = _batch((True, 1))
    plain = FrameBatch(raw.ids | 0x1000, raw.dlc, raw.data, raw.timestamps)
    assert plain.extended.tolist() == [True]


@pytest.mark.parametrize("extended", [False, True])
def test_cantools_agrees_on_the_value(extended: bool) -> None:
    name = "Long" if extended else "Short"
    data = (1234).to_bytes(2, "little")
    expected = BOTH.get_message_by_name(name).decode(data)[f"{name}_Value"]
    decoded = compile_decoder(BOTH).decode_all(_batch((extended, 1234)))
    assert decoded[name].values[f"{name}_Value"].tolist() == [expected]
