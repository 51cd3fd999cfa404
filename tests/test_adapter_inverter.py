"""CAN-BMS inverter adapter: frame contents, periods, fault reaction, keep-alive, CVL floor."""

from __future__ import annotations

import functools
import math

import cantools
import pytest
from adapter_support import (
    batch,
    by_id,
    decode_35a,
    decode_35c_pylontech,
    decode_35f,
    decode_351,
    decode_355,
    decode_356,
    decode_359,
    decode_373,
    snapshot,
)
from hypothesis import given
from hypothesis import strategies as st

from controller.adapters.base import Level
from controller.adapters.canbms_inverter import CanBmsInverter, InverterConfig
from controller.errors import ConfigError
from controller.frames import FrameBatch
from controller.stage import StageInputs
from dbc import path as dbc_path

VARIANTS = ("victron", "pylontech", "sma")
EXPECTED_IDS = {
    "victron": {0x351, 0x355, 0x356, 0x35A, 0x35E, 0x35F, 0x373, 0x379},
    "pylontech": {0x351, 0x355, 0x356, 0x359, 0x35C, 0x35E},
    "sma": {0x351, 0x355, 0x356, 0x35A, 0x35C, 0x35E, 0x35F},
}
EMPTY = FrameBatch.empty()
HALF_STEP = 0.05 + 1e-6  # half of a 0.1 field step, plus float noise at exact halves


@functools.cache
def variant_database(variant: str) -> cantools.database.can.Database:
    return cantools.database.load_file(str(dbc_path(f"canbms_inverter_{variant}.dbc")))


def make(variant: str, **options: object) -> CanBmsInverter:
    return CanBmsInverter.from_config({"variant": variant, **options}, "adapters[0]")


def first_frames(adapter: CanBmsInverter, snap, now: float = 0.0):
    _, out = adapter.step(adapter.initial_state(), StageInputs(snap, EMPTY), now)
    return by_id(out.frames)


healthy_snapshots = st.builds(
    snapshot,
    ccl=st.floats(0, 3000),
    dcl=st.floats(0, 3000),
    cvl=st.floats(1, 6000),
    dvl=st.floats(0, 1),
    soc=st.floats(0, 100),
    soh=st.floats(0, 100),
    pack_voltage=st.floats(-300, 327),
    pack_current=st.floats(-3000, 3000),
    mean_temperature=st.floats(-40, 120),
    min_cell_voltage=st.floats(0, 5),
    max_cell_voltage=st.floats(0, 5),
    min_temperature=st.floats(-40, 120),
    max_temperature=st.floats(-40, 120),
    capacity_ah=st.floats(0, 60000),
)


@pytest.mark.parametrize("variant", VARIANTS)
@given(snap=healthy_snapshots)
def test_every_frame_matches_snapshot_by_independent_decoder_and_dbc(variant, snap):
    adapter = make(variant, model_id=7, hardware_version=2, software_version=0x0103)
    frames = first_frames(adapter, snap)
    assert set(frames) == EXPECTED_IDS[variant]
    db = variant_database(variant)
    for frame in frames.values():
        message = db.get_message_by_frame_id(frame.arbitration_id)
        assert len(frame.data) == message.length
        db.decode_message(frame.arbitration_id, frame.data)  # every frame decodes
    limits = decode_351(frames[0x351].data)
    by_dbc = db.decode_message(0x351, frames[0x351].data)
    assert limits["cvl"] == pytest.approx(snap.cvl, abs=HALF_STEP)
    # current limits are rounded down: never more than the BMS allows, at most one step less
    assert snap.ccl - 0.1 - 1e-6 <= limits["ccl"] <= snap.ccl + 1e-6
    assert snap.dcl - 0.1 - 1e-6 <= limits["dcl"] <= snap.dcl + 1e-6
    assert limits["dvl"] == pytest.approx(snap.dvl, abs=HALF_STEP)
    assert by_dbc["ChargeVoltageLimit"] == pytest.approx(limits["cvl"])
    assert by_dbc["ChargeCurrentLimit"] == pytest.approx(limits["ccl"])
    soc = decode_355(frames[0x355].data)
    assert soc["soc"] == pytest.approx(snap.soc, abs=0.5 + 1e-6)
    assert soc["soh"] == pytest.approx(snap.soh, abs=0.5 + 1e-6)
    if variant == "sma":
        assert soc["soc_hires"] == pytest.approx(snap.soc, abs=0.005 + 1e-6)
        assert db.decode_message(0x355, frames[0x355].data)["StateOfChargeHiRes"] == (
            pytest.approx(soc["soc_hires"])
        )
    meas = decode_356(frames[0x356].data)
    assert meas["voltage"] == pytest.approx(snap.pack_voltage, abs=0.005 + 1e-6)
    assert meas["current"] == pytest.approx(snap.pack_current, abs=HALF_STEP)
    assert meas["temperature"] == pytest.approx(snap.mean_temperature, abs=HALF_STEP)
    assert bytes(frames[0x35E].data) == b"canbms  "
    if variant in ("victron", "sma"):
        info = decode_35f(frames[0x35F].data)
        assert info == {
            "model": 7,
            "hardware": 2,
            "capacity": round(snap.capacity_ah),
            "software": 0x0103,
        }
    if variant == "victron":
        ext = decode_373(frames[0x373].data)
        assert ext["vmin_mv"] == round(snap.min_cell_voltage * 1000)
        assert ext["vmax_mv"] == round(snap.max_cell_voltage * 1000)
        assert ext["tmin_k"] == pytest.approx(snap.min_temperature + 273.15, abs=0.5 + 1e-6)
        assert ext["tmax_k"] == pytest.approx(snap.max_temperature + 273.15, abs=0.5 + 1e-6)
        by_dbc = db.decode_message(0x373, frames[0x373].data)
        assert by_dbc["MinTemperature"] == pytest.approx(snap.min_temperature, abs=0.5 + 1e-6)
        assert int.from_bytes(frames[0x379].data[:2], "little") == round(snap.capacity_ah)


def test_pack_voltage_beyond_field_saturates_instead_of_wrapping():
    frames = first_frames(make("victron"), snapshot(pack_voltage=400.0, pack_current=-5000.0))
    meas = decode_356(frames[0x356].data)
    assert meas["voltage"] == pytest.approx(327.67)
    assert meas["current"] == pytest.approx(-3276.8)


@pytest.mark.parametrize(
    ("check", "flag35a", "flag359"),
    [
        ("cell_overvoltage", "high_voltage", "over_voltage"),
        ("cell_undervoltage", "low_voltage", "under_voltage"),
        ("overtemperature_charge", "high_temp_charge", "over_temperature"),
        ("undertemperature_discharge", "low_temperature", "under_temperature"),
        ("overcurrent_discharge", "high_discharge_current", "discharge_over_current"),
        ("overcurrent_charge", "high_charge_current", "charge_over_current"),
        ("slave_timeout", "bms_internal", "system_error"),
        ("contactor", "contactor", "system_error"),
        ("cell_voltage_spread", "cell_imbalance", None),
    ],
)
def test_check_levels_map_to_alarm_and_warning_flags(check, flag35a, flag359):
    victron, pylontech = make("victron"), make("pylontech")
    seen = {}
    for level in Level:
        snap = snapshot(checks={check: level})
        seen[level] = (
            decode_35a(first_frames(victron, snap)[0x35A].data),
            decode_359(first_frames(pylontech, snap)[0x359].data),
        )
    active, ok = 1, 2
    expect = {Level.OK: (ok, ok), Level.WARNING: (ok, active)}
    expect |= {Level.ALARM: (active, active), Level.FAULT: (active, active)}
    for level, (flags, bits) in seen.items():
        assert flags[flag35a] == expect[level]
        assert flags["general"] == expect[level]
        assert flags["short_circuit"] == (0, 0)  # no such check reported: not supported
        if flag359 is not None:
            assert bits[flag359] == (int(level >= Level.ALARM), int(level >= Level.WARNING))
        assert bits["modules"] == 1 and bits["tag"] == "PN"


def test_invalid_data_is_reported_as_general_alarm_and_system_error():
    snap = snapshot(data_valid=False)
    assert decode_35a(first_frames(make("sma"), snap)[0x35A].data)["general"] == (1, 1)
    assert decode_359(first_frames(make("pylontech"), snap)[0x359].data)["system_error"] == (1, 1)


@pytest.mark.parametrize(("fast", "slow"), [(1.0, 10.0), (0.5, 7.5)])
@pytest.mark.parametrize("variant", VARIANTS)
def test_periods_in_virtual_time(variant, fast, slow):
    adapter = make(variant, period=fast, info_period=slow)
    state = adapter.initial_state()
    times: dict[int, list[float]] = {}
    for k in range(3000):  # 30 s at 10 ms
        now = k * 0.01
        state, out = adapter.step(
            state, StageInputs(snapshot(), batch([(0x305, bytes(8), now)])), now
        )
        for frame in out.frames:
            times.setdefault(frame.arbitration_id, []).append(now)
    assert set(times) == EXPECTED_IDS[variant]
    for frame_id, stamps in times.items():
        period = slow if frame_id in (0x35E, 0x35F, 0x379) else fast
        assert len(stamps) == round(30 / period), hex(frame_id)
        gaps = [b - a for a, b in zip(stamps, stamps[1:], strict=False)]
        assert all(g == pytest.approx(period, abs=0.011) for g in gaps), hex(frame_id)


@pytest.mark.parametrize("variant", VARIANTS)
def test_fault_sends_lowered_limits_and_stop_in_the_same_cycle(variant):
    adapter = make(variant)
    state, _ = adapter.step(adapter.initial_state(), StageInputs(snapshot(), EMPTY), 0.0)
    state, out = adapter.step(state, StageInputs(snapshot(), EMPTY), 0.3)
    assert out.frames == ()  # nothing due mid-period
    faulted = snapshot(fault_level=Level.FAULT, pack_voltage=52.3, checks={"cell_overvoltage": 3})
    state, out = adapter.step(state, StageInputs(faulted, EMPTY), 0.31)
    frames = by_id(out.frames)
    limits = decode_351(frames[0x351].data)
    assert limits["cvl"] == pytest.approx(52.3, abs=0.05)  # lowered to the pack, not 0
    assert limits["ccl"] == 0.0 and limits["dcl"] == 0.0
    if variant == "pylontech":
        assert decode_35c_pylontech(frames[0x35C].data) == {
            "charge_enable": 0,
            "discharge_enable": 0,
        }
        assert decode_359(frames[0x359].data)["over_voltage"] == (1, 1)
    else:
        assert decode_35a(frames[0x35A].data)["high_voltage"] == (1, 1)
    if variant == "sma":
        assert frames[0x35C].data[0] == 2  # stop
    healthy = first_frames(make(variant), snapshot())
    if variant == "sma":
        assert healthy[0x35C].data[0] == 1  # start
    if variant == "pylontech":
        assert decode_35c_pylontech(healthy[0x35C].data)["charge_enable"] == 1


def test_charge_not_allowed_lowers_cvl_and_zeroes_ccl_only():
    frames = first_frames(make("pylontech"), snapshot(charge_allowed=False, pack_voltage=53.0))
    limits = decode_351(frames[0x351].data)
    assert limits["cvl"] == pytest.approx(53.0) and limits["ccl"] == 0.0
    assert limits["dcl"] == pytest.approx(80.0)
    assert decode_35c_pylontech(frames[0x35C].data) == {"charge_enable": 0, "discharge_enable": 1}


def test_open_contactors_zero_both_limits():
    limits = decode_351(
        first_frames(make("victron"), snapshot(contactors_closed=False))[0x351].data
    )
    assert limits["ccl"] == 0.0 and limits["dcl"] == 0.0


any_float = st.floats(allow_nan=True, allow_infinity=True) | st.floats(-1, 100)
any_snapshots = st.builds(
    snapshot,
    cvl=any_float,
    dvl=any_float,
    ccl=any_float,
    dcl=any_float,
    pack_voltage=any_float,
    fault_level=st.sampled_from(Level),
    data_valid=st.booleans(),
    contactors_closed=st.booleans(),
    charge_allowed=st.booleans(),
)


@given(snaps=st.lists(any_snapshots, min_size=1, max_size=8), floor=st.sampled_from([0.0, 40.0]))
def test_victron_never_receives_cvl_zero(snaps, floor):
    adapter = make("victron", cvl_floor=floor)
    state = adapter.initial_state()
    for k, snap in enumerate(snaps):
        state, out = adapter.step(state, StageInputs(snap, EMPTY), k * 1.0)
        for frame in out.frames:
            if frame.arbitration_id == 0x351:
                limits = decode_351(frame.data)
                assert limits["cvl"] >= 0.1
                assert limits["cvl"] >= floor
                assert limits["ccl"] >= 0.0 and limits["dcl"] >= 0.0


def test_without_any_usable_cvl_the_limits_frame_is_withheld_and_logged():
    adapter = make("victron")
    broken = snapshot(cvl=math.nan, dvl=0.0, pack_voltage=math.nan)
    state, out = adapter.step(adapter.initial_state(), StageInputs(broken, EMPTY), 0.0)
    assert 0x351 not in by_id(out.frames) and 0x356 in by_id(out.frames)
    assert any("0x351 withheld" in str(e) for e in out.events)
    state, out = adapter.step(state, StageInputs(broken, EMPTY), 1.0)
    assert 0x351 not in by_id(out.frames) and out.events == ()  # logged once
    state, out = adapter.step(state, StageInputs(snapshot(cvl=54.0), EMPTY), 2.0)
    assert decode_351(by_id(out.frames)[0x351].data)["cvl"] == pytest.approx(54.0)
    # once a CVL was sent, a broken snapshot holds it rather than dropping to 0
    state, out = adapter.step(state, StageInputs(broken, EMPTY), 3.0)
    assert decode_351(by_id(out.frames)[0x351].data)["cvl"] == pytest.approx(54.0)


def run_keepalive(adapter, alive_until: float, back_at: float | None, end: float, gap=()):
    """Step every 0.1 s; the inverter sends 0x305 every 1 s except in the given windows."""
    state = adapter.initial_state()
    log = []
    for k in range(round(end * 10) + 1):
        now = k / 10
        alive = now < alive_until or (back_at is not None and now >= back_at)
        alive = alive and not any(a <= now < b for a, b in gap)
        rx = batch([(0x305, bytes(8), now)]) if alive and k % 10 == 0 else EMPTY
        state, out = adapter.step(state, StageInputs(snapshot(ccl=100.0, dcl=120.0), rx), now)
        log.append((now, out))
    return log


def test_single_missed_keepalive_changes_nothing():
    adapter = make("victron")
    log = run_keepalive(adapter, alive_until=1e9, back_at=None, end=30.0, gap=[(9.5, 11.5)])
    events = [e for _, out in log for e in out.events]
    assert [(e.diagnosis, e.detail) for e in events] == [
        ("device_present", "canbms_inverter: keep-alive present")
    ]
    assert all(out.limits.max_ccl is None for _, out in log)


def test_keepalive_loss_logged_then_limits_reduced_after_timeout_then_restored():
    adapter = make("sma", keepalive_loss_after=10.0, keepalive_timeout=120.0)
    log = run_keepalive(adapter, alive_until=5.0, back_at=200.0, end=210.0)
    lost = [t for t, out in log if any("keep-alive lost" in str(e) for e in out.events)]
    assert lost == [pytest.approx(14.0)]  # last frame at 4.0 s, +10 s
    reduced = [t for t, out in log if out.limits.max_ccl is not None]
    assert reduced[0] == pytest.approx(124.0) and reduced[-1] == pytest.approx(199.9)
    _, out = log[round(150.0 * 10)]
    assert out.limits.max_ccl == 0.0 and out.limits.max_dcl == 0.0
    frames_while_reduced = [
        decode_351(f.data) for t, o in log if 124.0 <= t < 200 for f in o.frames
        if f.arbitration_id == 0x351
    ]  # fmt: skip
    assert frames_while_reduced and all(
        f["ccl"] == 0 and f["dcl"] == 0 for f in frames_while_reduced
    )
    back = [e for t, out in log for e in out.events if "back" in e.detail]
    assert [(e.diagnosis, e.kind) for e in back] == [
        ("inverter_keepalive_lost", "cleared"),
        ("inverter_limits_capped", "cleared"),
    ]
    assert back[0].time == back[1].time == pytest.approx(200.0, abs=0.11)
    assert all(out.limits.max_ccl is None for t, out in log if t >= 200.0)


def test_keepalive_timeout_keeps_a_configured_fraction():
    adapter = make("victron", keepalive_loss_after=5.0, keepalive_timeout=20.35,
                   keepalive_limit_fraction=0.25)  # fmt: skip
    log = run_keepalive(adapter, alive_until=0.5, back_at=None, end=30.0)
    _, out = log[-1]
    assert out.limits.max_ccl == pytest.approx(25.0) and out.limits.max_dcl == pytest.approx(30.0)
    sent = [(t, decode_351(f.data)) for t, o in log for f in o.frames if f.arbitration_id == 0x351]
    assert [t for t, _ in sent if t > 20.0][0] == pytest.approx(20.4)  # at once, mid-period
    after = [limits for t, limits in sent if t >= 20.4]
    assert len(after) == 10
    assert all(f["ccl"] == pytest.approx(25.0) and f["dcl"] == pytest.approx(30.0) for f in after)
    assert all(f["ccl"] == pytest.approx(100.0) for t, f in sent if t < 20.4)


def test_keepalive_monitoring_can_be_disabled():
    adapter = make("pylontech", keepalive=False, keepalive_timeout=20.0, keepalive_loss_after=5.0)
    log = run_keepalive(adapter, alive_until=0.0, back_at=None, end=30.0)
    assert all(out.events == () and out.limits.max_ccl is None for _, out in log)


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ({"variant": "growatt"}, "adapters[0].variant"),
        ({"variant": "victron", "period": 0}, "adapters[0].period"),
        ({"variant": "victron", "manufacturer": "much too long"}, "adapters[0].manufacturer"),
        ({"variant": "victron", "keepalive_timeout": 5.0}, "adapters[0].keepalive_timeout"),
        ({"variant": "victron", "alarm_level": "warning"}, "adapters[0].alarm_level"),
        ({"variant": "victron", "perod": 1.0}, "adapters[0].perod"),
        ({}, "adapters[0].variant"),
    ],
)
def test_config_errors_name_the_key(options, key):
    with pytest.raises(ConfigError) as info:
        InverterConfig.from_table(options, "adapters[0]")
    assert info.value.key == key
