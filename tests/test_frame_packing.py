"""The controller's frame packer against cantools: the same bytes, the same refusals.

`RawPacker` learns each message's layout from cantools once and then packs with integer
shifts; whatever it packs must be byte for byte what ``Message.encode`` (strict, raw values)
gives, and whatever cantools refuses it must refuse too, for every message of the project's
DBCs and of a corpus of real-world DBCs (Intel and Motorola signals, signed fields, 64-bit
fields, CAN FD lengths).
"""

from __future__ import annotations

from pathlib import Path

import cantools
import pytest
from hypothesis import given
from hypothesis import strategies as st

import dbc
from controller.adapters.framing import RawPacker

PROJECT = sorted(Path(dbc.path("canbms_master.dbc")).parent.glob("*.dbc"))


def _messages(paths: list[Path]) -> list[cantools.database.can.Message]:
    found = []
    for path in paths:
        try:
            db = cantools.database.load_file(str(path), strict=False)
        except Exception:  # noqa: BLE001 - a corpus file cantools cannot read is not ours to judge
            continue
        found.extend(db.messages)
    return found


def _cantools(message: cantools.database.can.Message, raw: dict[str, int]) -> bytes | None:
    try:
        return bytes(message.encode(raw, scaling=False, padding=False, strict=True))
    except (cantools.database.EncodeError, ValueError, OverflowError):
        return None


def _ours(packer: RawPacker, raw: dict[str, int]) -> bytes | None:
    try:
        return packer.pack(raw)
    except (cantools.database.EncodeError, ValueError, OverflowError):
        return None


def _raw_values(message: cantools.database.can.Message) -> st.SearchStrategy[dict[str, int]]:
    """Any value of each field, one past its ends included (cantools must refuse those)."""
    fields = {}
    for s in message.signals:
        half = 1 << (s.length - 1)
        low, high = (-half, half - 1) if s.is_signed else (0, (1 << s.length) - 1)
        fields[s.name] = st.integers(low - 1, high + 1)
    return st.fixed_dictionaries(fields)


@pytest.mark.parametrize("message", _messages(PROJECT), ids=lambda m: m.name)
def test_project_frames_are_compiled_and_pack_as_cantools_does(message) -> None:
    packer = RawPacker(message)
    assert packer.compiled or message.is_multiplexed()

    @given(_raw_values(message))
    def packs_alike(raw: dict[str, int]) -> None:
        assert _ours(packer, raw) == _cantools(message, raw)

    packs_alike()


def test_corpus_frames_pack_as_cantools_does_at_every_field_limit(corpus_dir) -> None:
    messages = _messages(sorted(corpus_dir.rglob("*.dbc")))
    compiled = 0
    for message in messages:
        packer = RawPacker(message)
        if not packer.compiled:  # multiplexed, floats, or a layout cantools cannot encode
            raw = dict.fromkeys((s.name for s in message.signals), 0)
            assert _ours(packer, raw) == _cantools(message, raw), message.name
            continue
        compiled += 1
        zero = {name: min(max(0, f[3]), f[4]) for name, f in packer.fields.items()}
        for name, (_, _, mask, low, high) in packer.fields.items():
            for value in {low - 1, low, high, high + 1, mask, -1}:
                raw = {**zero, name: value}
                assert _ours(packer, raw) == _cantools(message, raw), (message.name, name, value)
    assert compiled > len(messages) // 2


def test_values_outside_the_dbc_range_are_refused_as_cantools_refuses_them() -> None:
    master = cantools.database.load_file(dbc.path("canbms_master.dbc"))
    message = master.get_message_by_name("BMS_Status")
    packer = RawPacker(message)
    raw = dict.fromkeys((s.name for s in message.signals), 0)
    with pytest.raises(cantools.database.EncodeError):
        packer.pack({**raw, "BMS_State": 15})  # the DBC allows 0..6 (4 bits)
    with pytest.raises(cantools.database.EncodeError):
        packer.pack({**raw, "NotASignal": 0})
