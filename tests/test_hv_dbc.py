"""The HV-side contracts: the IVT-S and master DBC files.

The IVT-S file is checked against the independent foxBMS 2 DBC files of the same sensor:
for random payloads both must decode the same value, counter, status bits and result ID.
"""

from __future__ import annotations

import struct
from pathlib import Path

import cantools
import pytest
from hypothesis import given
from hypothesis import strategies as st

import dbc

RESULTS = ("I", "U1", "U2", "U3", "T", "W", "As", "Wh")
IVT_IDS = dict(zip(RESULTS, range(0x521, 0x529), strict=True))


@pytest.fixture(scope="module")
def ivt() -> cantools.database.can.Database:
    return cantools.database.load_file(dbc.path("ivt_s.dbc"), strict=True)


@pytest.fixture(scope="module")
def master() -> cantools.database.can.Database:
    return cantools.database.load_file(dbc.path("canbms_master.dbc"), strict=True)


@pytest.fixture(scope="module")
def corpus_ivt(corpus_dir):
    return cantools.database.load_file(
        corpus_dir / "foxbms_third-party_IVT-S_12082020.dbc", strict=False
    )


@pytest.fixture(scope="module")
def corpus_foxbms(corpus_dir):
    return cantools.database.load_file(corpus_dir / "foxbms.dbc", strict=False)


def _pairs(q: str) -> list[tuple[str, str]]:
    """(our signal, foxBMS signal) for result ``q``."""
    return [
        (f"IVT_{q}_Value", f"IVT_Result_{q}"),
        (f"IVT_{q}_Counter", f"IVT_MsgCount_Result_{q}"),
        (f"IVT_{q}_Id", f"IVT_ID_Result_{q}"),
        (f"IVT_{q}_OCS", f"IVT_Result_{q}_OCS"),
        (f"IVT_{q}_ChannelError", f"IVT_Result_{q}_Channel_Error"),
        (f"IVT_{q}_MeasurementError", f"IVT_Result_{q}_Measurement_Error"),
        (f"IVT_{q}_SystemError", f"IVT_Result_{q}_System_Error"),
    ]


def test_result_frames_use_the_factory_ids(ivt):
    for q, frame_id in IVT_IDS.items():
        message = ivt.get_message_by_frame_id(frame_id)
        assert message.name == f"IVT_Result_{q}"
        assert message.length == 6
    assert ivt.get_message_by_name("IVT_Command").frame_id == 0x411
    assert ivt.get_message_by_name("IVT_Response").frame_id == 0x511


@given(q=st.sampled_from(RESULTS), payload=st.binary(min_size=6, max_size=6))
def test_results_decode_like_the_foxbms_sensor_dbc(ivt, corpus_ivt, corpus_foxbms, q, payload):
    ours = ivt.decode_message(IVT_IDS[q], payload, decode_choices=False)
    for other in (corpus_ivt, corpus_foxbms):
        theirs = other.decode_message(IVT_IDS[q], payload, decode_choices=False)
        for mine, name in _pairs(q):
            assert ours[mine] == pytest.approx(theirs[name], abs=1e-6), (q, mine, payload.hex())


def _theirs_q(q: str) -> str:
    return "WH" if q == "Wh" else q


@given(
    index=st.integers(0, 7),
    mode=st.integers(0, 2),
    cycle=st.integers(0, 0xFFFF),
    bits=st.lists(st.booleans(), min_size=8, max_size=8),
    run=st.integers(0, 1),
    startup=st.integers(0, 1),
)
def test_command_subset_matches_the_sensor_dbc(
    ivt, corpus_ivt, index, mode, cycle, bits, run, startup
):
    q = RESULTS[index]
    t = _theirs_q(q)
    config = ivt.encode_message(
        "IVT_Command",
        {
            "IVT_Cmd_Id": 0x20 + index,
            f"IVT_Cmd_TriggerMode_{q}": mode,
            f"IVT_Cmd_CycleTime_{q}": cycle,
        },
    )
    theirs = corpus_ivt.decode_message(0x411, config, decode_choices=False)
    assert theirs["IVT_ID_Cmd"] == 0x20 + index
    assert theirs[f"_2{index}_Conf_TriggerMode_{t}"] == mode
    assert theirs[f"_2{index}_Conf_CycleTime_{t}"] == cycle

    trigger = ivt.encode_message(
        "IVT_Command",
        {"IVT_Cmd_Id": 0x31}
        | {f"IVT_Cmd_Trigger_{r}": int(b) for r, b in zip(RESULTS, bits, strict=True)},
    )
    theirs = corpus_ivt.decode_message(0x411, trigger, decode_choices=False)
    assert theirs["_31_00_Trigger_I"] == int(bits[0])
    for i in range(1, 8):
        assert theirs[f"_31_0{i}_Trigger_{_theirs_q(RESULTS[i])}"] == int(bits[i])

    mode_cmd = ivt.encode_message(
        "IVT_Command", {"IVT_Cmd_Id": 0x34, "IVT_Cmd_RunMode": run, "IVT_Cmd_StartupMode": startup}
    )
    theirs = corpus_ivt.decode_message(0x411, mode_cmd, decode_choices=False)
    assert (theirs["_34_Actual_Mode"], theirs["_34_Startup_Mode"]) == (run, startup)

    response = ivt.encode_message(
        "IVT_Response",
        {
            "IVT_Resp_Id": 0xA0 + index,
            f"IVT_Resp_TriggerMode_{q}": mode,
            f"IVT_Resp_CycleTime_{q}": cycle,
        },
    )
    theirs = corpus_ivt.decode_message(0x511, response, decode_choices=False)
    assert theirs[f"_A{index}_Resp_TriggerMode_{t}"] == mode
    assert theirs[f"_A{index}_Resp_CycleTime_{t}"] == cycle
    response = ivt.encode_message(
        "IVT_Response", {"IVT_Resp_Id": 0xB4, "IVT_Resp_RunMode": run, "IVT_Resp_StartupMode": 0}
    )
    theirs = corpus_ivt.decode_message(0x511, response, decode_choices=False)
    assert theirs["_B4_Resp_Actual_Mode"] == run


# --- master DBC ------------------------------------------------------------------------


def test_master_messages_ids_periods_and_buses(master):
    expected = {
        "EMS_StateRequest": (0x0E0, 100, "vehicle", "EMS"),
        "EMS_StateRequestAuth": (0x0E1, 100, "vehicle", "EMS"),
        "BMS_Status": (0x0F0, 100, "vehicle", "BMS"),
        "BMS_Limits": (0x0F1, 100, "vehicle", "BMS"),
        "BMS_CellStats": (0x0F2, 100, "vehicle", "BMS"),
        "BMS_TempStats": (0x0F3, 100, "vehicle", "BMS"),
        "BMS_PackValues": (0x0F4, 100, "vehicle", "BMS"),
        "ContactorCommand": (0x0E8, 20, "internal", "BMS"),
        "ContactorFeedback": (0x0E9, 20, "internal", "ContactorDriver"),
        "BMS_RuntimeHealth": (0x0FC, 1000, "vehicle", "BMS"),
    }
    assert {m.name for m in master.messages} == set(expected)
    for name, (frame_id, period, bus, sender) in expected.items():
        message = master.get_message_by_name(name)
        assert (message.frame_id, message.cycle_time, message.senders) == (
            frame_id,
            period,
            [sender],
        )
        assert message.dbc.attributes["BusRole"].value == bus
        assert not message.is_extended_frame
        assert all(s.byte_order == "little_endian" for s in message.signals)


def test_every_master_signal_is_documented(master):
    text = (Path(__file__).parents[1] / "docs" / "master-protocol.md").read_text()
    for message in master.messages:
        assert message.comment, message.name
        for signal in message.signals:
            assert signal.name in text, signal.name


def _values(message):
    """Physical values on each signal's resolution grid within its declared range."""
    fields = {}
    for s in message.signals:
        lo = round((s.minimum - s.offset) / s.scale)
        hi = round((s.maximum - s.offset) / s.scale)
        fields[s.name] = st.integers(lo, hi).map(lambda raw, s=s: raw * s.scale + s.offset)
    return st.fixed_dictionaries(fields)


@given(data=st.data())
def test_master_messages_round_trip(master, data):
    message = data.draw(st.sampled_from(master.messages))
    values = data.draw(_values(message))
    decoded = master.decode_message(
        message.frame_id, message.encode(values, strict=True), decode_choices=False
    )
    for s in message.signals:
        assert decoded[s.name] == pytest.approx(values[s.name], abs=s.scale / 2)


@given(
    a=st.integers(0, 0xFFFF),
    b=st.integers(0, 0xFFFF),
    c=st.integers(0, 0xFFFF),
    d=st.integers(0, 0xFFFF),
    t1=st.integers(-3000, 3000),
    t2=st.integers(-3000, 3000),
    counter=st.integers(0, 14),
)
def test_master_layouts_match_plain_little_endian_packing(master, a, b, c, d, t1, t2, counter):
    a12, b12, c12, d12 = (v & 0xFFF for v in (a, b, c, d))
    limits = master.encode_message(
        "BMS_Limits",
        {
            "BMS_LimitsCRC": 0xA5,
            "BMS_LimitsCounter": counter,
            "BMS_ChargeCurrentLimit": a12 / 2,
            "BMS_DischargeCurrentLimit": b12 / 2,
            "BMS_ChargeVoltageLimit": c12 / 4,
            "BMS_DischargeVoltageLimit": d12 / 4,
        },
    )
    packed = a12 | b12 << 12 | c12 << 24 | d12 << 36
    assert limits == bytes([0xA5, counter]) + packed.to_bytes(6, "little")
    cells = master.encode_message(
        "BMS_CellStats",
        {
            "BMS_MinCellVoltage": a / 1000,
            "BMS_MaxCellVoltage": b / 1000,
            "BMS_MinCellVoltageIndex": c,
            "BMS_MaxCellVoltageIndex": d,
        },
    )
    assert cells == struct.pack("<HHHH", a, b, c, d)
    temps = master.encode_message(
        "BMS_TempStats",
        {
            "BMS_MinTemperature": t1 / 10,
            "BMS_MaxTemperature": t2 / 10,
            "BMS_MinTemperatureIndex": c,
            "BMS_MaxTemperatureIndex": d,
        },
    )
    assert temps == struct.pack("<hhHH", t1, t2, c, d)


@given(
    volts=st.integers(0, 0xFFFFFF),
    amps=st.integers(-0x8000, 0x7FFF),
    soc=st.integers(0, 1000),
    soh=st.integers(0, 1000),
)
def test_pack_values_layout(master, volts, amps, soc, soh):
    data = master.encode_message(
        "BMS_PackValues",
        {
            "BMS_PackVoltage": volts / 100,
            "BMS_PackCurrent": amps / 10,
            "BMS_SOC": soc / 10,
            "BMS_SOH": soh / 10,
        },
    )
    raw = volts | (amps & 0xFFFF) << 24 | soc << 40 | soh << 52
    assert data == raw.to_bytes(8, "little")


def test_contactor_command_bits(master):
    data = master.encode_message(
        "ContactorCommand",
        {
            "ContactorCmd_MinusClose": 1,
            "ContactorCmd_PrechargeClose": 0,
            "ContactorCmd_PlusClose": 1,
            "ContactorCmd_Counter": 9,
            "ContactorCmd_CRC": 0x3C,
        },
    )
    assert data == bytes([0x3C, 0b101 << 4 | 9])
