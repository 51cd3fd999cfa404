"""Battery node live values: scaling, rounding direction, saturation and fail-safe encodings."""

from __future__ import annotations

import math
import struct

from adapter_support import snapshot
from hypothesis import given
from hypothesis import strategies as st

from controller.adapters.base import Level
from controller.canopen_node import BatteryNodeConfig, RequestParams, StatusBit, build_dictionary
from controller.canopen_node import dictionary as d
from controller.canopen_node.values import live_values

OD = build_dictionary(BatteryNodeConfig())
FORMATS = {0x5: "<B", 0x6: "<H", 0x7: "<I", 0x3: "<h"}  # CiA 301 data type -> struct

floats = st.floats(allow_nan=True, allow_infinity=True, width=64)


def raw_request(ccl: float, scale: int = 100, cap_raw: int = 0xFFFF, **kw) -> int:
    return live_values(snapshot(ccl=ccl, **kw), RequestParams(scale, cap_raw))[
        d.CHARGE_CURRENT_REQUEST
    ]


def test_profile_objects_use_the_documented_units():
    s = snapshot(pack_voltage=51.2, max_temperature=24.5, soc=60.4, ccl=50.0, capacity_ah=280.0)
    v = live_values(s, RequestParams())
    assert v[d.VOLTAGE] == round(51.2 * 1024)
    assert v[d.TEMPERATURE] == 196  # 24.5 degC in 1/8 degC
    assert v[d.CHARGE_CURRENT_REQUEST] == 800  # 50 A in 1/16 A
    assert v[d.SOC] == 60
    assert v[d.CAPACITY] == 280 and v[d.CELL_COUNT] == 16
    assert v[d.MIN_CELL_VOLTAGE] == 3190 and v[d.MAX_CELL_VOLTAGE] == 3230
    assert v[d.MIN_TEMPERATURE] == 180 and v[d.MEAN_TEMPERATURE] == 213
    assert v[d.CCL] == 500 and v[d.DCL] == 800 and v[d.CVL] == 540 and v[d.DVL] == 440
    assert v[d.PACK_CURRENT] == 100


def test_negative_temperature_is_twos_complement():
    v = live_values(snapshot(max_temperature=-12.25), RequestParams())
    assert v[d.TEMPERATURE] == -98


@given(
    ccl=st.floats(0, 5000),
    scale=st.integers(0, 100),
    cap=st.integers(0, 0xFFFF),
)
def test_request_never_exceeds_ccl_scale_or_cap_and_misses_by_under_one_step(ccl, scale, cap):
    raw = raw_request(ccl, scale, cap)
    allowed = min(ccl * scale / 100, cap / 16, 0xFFFF / 16)
    assert raw / 16 <= allowed + 1e-6
    assert allowed - raw / 16 < 1 / 16 + 1e-6


@given(
    charge_allowed=st.booleans(),
    data_valid=st.booleans(),
    level=st.sampled_from(list(Level)),
    ccl=floats,
)
def test_request_is_zero_unless_charging_is_allowed_with_valid_data_and_no_fault(
    charge_allowed, data_valid, level, ccl
):
    raw = raw_request(ccl, charge_allowed=charge_allowed, data_valid=data_valid, fault_level=level)
    may = charge_allowed and data_valid and level < Level.FAULT and math.isfinite(ccl) and ccl > 0
    if not may:
        assert raw == 0
    else:
        assert raw == min(math.floor(min(ccl, 0x10000) * 16), 0xFFFF)


@given(
    voltage=floats,
    current=floats,
    temperature=floats,
    cell=floats,
    soc=floats,
    limit=floats,
)
def test_every_value_fits_its_object_type(voltage, current, temperature, cell, soc, limit):
    s = snapshot(
        pack_voltage=voltage,
        pack_current=current,
        min_temperature=temperature,
        max_temperature=temperature,
        mean_temperature=temperature,
        min_cell_voltage=cell,
        max_cell_voltage=cell,
        soc=soc,
        ccl=limit,
        dcl=limit,
        cvl=limit,
        dvl=limit,
    )
    for (index, subindex), raw in live_values(s, RequestParams()).items():
        var = OD.get_variable(index, subindex)
        assert struct.unpack(FORMATS[var.data_type], var.encode_raw(raw))[0] == raw


def test_unknown_measurements_never_read_as_plausible_values():
    nan = float("nan")
    s = snapshot(
        max_temperature=nan,
        min_temperature=nan,
        mean_temperature=nan,
        min_cell_voltage=nan,
        max_cell_voltage=nan,
        pack_current=nan,
        min_cell_position=-1,
        ccl=nan,
    )
    v = live_values(s, RequestParams())
    assert v[d.TEMPERATURE] == 0x7FFF  # reads as the hottest value: a charger holds off
    assert v[d.MIN_TEMPERATURE] == v[d.MAX_TEMPERATURE] == v[d.MEAN_TEMPERATURE] == 0x7FFF
    assert v[d.MIN_CELL_VOLTAGE] == v[d.MAX_CELL_VOLTAGE] == 0xFFFF
    assert v[d.PACK_CURRENT] == 0x7FFF and v[d.MIN_CELL_POSITION] == 0xFFFF
    assert v[d.CHARGE_CURRENT_REQUEST] == 0 and v[d.CCL] == 0
    # a real 6553.5 V cell or 3276.7 degC sensor saturates one step below the marker
    v = live_values(snapshot(max_cell_voltage=1e6, max_temperature=1e6), RequestParams())
    assert v[d.MAX_CELL_VOLTAGE] == 0xFFFE and v[d.MAX_TEMPERATURE] == 0x7FFE


def test_status_bits():
    v = live_values(snapshot(), RequestParams())
    ok = StatusBit.CHARGE_ALLOWED | StatusBit.DISCHARGE_ALLOWED | StatusBit.CONTACTORS_CLOSED
    assert v[d.BATTERY_STATUS] == ok
    v = live_values(snapshot(fault_level=Level.ALARM), RequestParams())
    assert v[d.BATTERY_STATUS] == ok | StatusBit.WARNING | StatusBit.ALARM
    v = live_values(snapshot(fault_level=Level.FAULT, contactors_closed=False), RequestParams())
    assert v[d.BATTERY_STATUS] == StatusBit.WARNING | StatusBit.ALARM | StatusBit.FAULT
    v = live_values(snapshot(data_valid=False), RequestParams())
    assert v[d.BATTERY_STATUS] == StatusBit.CONTACTORS_CLOSED | StatusBit.DATA_INVALID


def test_fault_bits_follow_the_master_protocol_table_and_flag_unknown_checks():
    checks = {
        "cell_overvoltage": Level.ALARM,
        "overtemperature_discharge": Level.WARNING,
        "contactor": Level.FAULT,
        "cell_voltage_spread": Level.OK,
        "something_new": Level.WARNING,
    }
    v = live_values(snapshot(checks=checks), RequestParams())
    assert v[d.ACTIVE_FAULTS] == (1 << 0) | (1 << 4) | (1 << 15) | (1 << 31)


def test_error_register_categories_from_alarm_upwards():
    checks = {
        "overcurrent_charge": Level.ALARM,
        "overtemperature_charge": Level.WARNING,  # below ALARM: not an error yet
        "ems_timeout": Level.FAULT,
        "contactor": Level.FAULT,
    }
    v = live_values(snapshot(checks=checks), RequestParams())
    assert v[d.ERROR_REGISTER] == 0b1001_0011  # generic, current, communication, manufacturer
    assert live_values(snapshot(), RequestParams())[d.ERROR_REGISTER] == 0


def test_bms_state_codes_follow_bms_state_and_unknown_names_are_flagged():
    v = live_values(snapshot(bms_state="Charge"), RequestParams())
    assert v[d.BMS_STATE] == 4
    assert live_values(snapshot(bms_state="???"), RequestParams())[d.BMS_STATE] == 0xFF
