"""CAN-BMS inverter model: limits, CVL/DVL, 0x351 loss, alarms, enable flags, keep-alive."""

from __future__ import annotations

import can
import cantools
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from loads_support import RcBattery, every, run

import dbc
from slaves.inverter import (
    Inverter,
    InverterConfig,
    InverterState,
    ProfileKind,
)
from slaves.profiles import Scripted

DBS = {
    v: cantools.database.load_file(dbc.path(f"canbms_inverter_{v}.dbc"), strict=True)
    for v in ("victron", "pylontech", "sma")
}


def frame(variant: str, frame_id: int, t: float, **signals) -> can.Message:
    """A frame of ``variant`` encoded by cantools; unnamed signals are 0."""
    message = DBS[variant].get_message_by_frame_id(frame_id)
    values = dict.fromkeys((s.name for s in message.signals), 0) | signals
    return can.Message(
        arbitration_id=frame_id,
        data=message.encode(values),
        timestamp=t,
        is_extended_id=False,
    )


def limits(variant, t, cvl=56.0, ccl=100.0, dcl=100.0, dvl=44.0) -> can.Message:
    return frame(
        variant,
        0x351,
        t,
        ChargeVoltageLimit=cvl,
        ChargeCurrentLimit=ccl,
        DischargeCurrentLimit=dcl,
        DischargeVoltageLimit=dvl,
    )


def enable(variant: str, t: float, charge: bool = True, discharge: bool = True) -> can.Message:
    if variant == "pylontech":
        return frame(variant, 0x35C, t, ChargeEnable=int(charge), DischargeEnable=int(discharge))
    return frame(variant, 0x35C, t, StartStop=1 if charge or discharge else 2)


def bms(variant: str, first: float, end: float, **kw) -> list[can.Message]:
    """0x351 every second and, where the variant has one, 0x35C enabling both directions."""
    out = [limits(variant, t, **kw) for t in every(1.0, first, end)]
    if variant != "victron":
        out += [enable(variant, t) for t in every(1.0, first, end)]
    return out


def battery_48v(**kw) -> RcBattery:
    """A 48 V storage battery: 16 LFP cells, 5 mOhm, voltage flat over a test run."""
    return RcBattery(**({"ocv": 51.2, "volts_per_as": 0.0, "r0": 0.005, "r1": 0.0} | kw))


@pytest.mark.parametrize("variant", ["victron", "pylontech", "sma"])
@given(
    demand=st.floats(-300.0, 300.0),
    ccl=st.integers(0, 2000).map(lambda raw: raw / 10),
    dcl=st.integers(0, 2000).map(lambda raw: raw / 10),
)
def test_current_follows_the_profile_clamped_to_ccl_and_dcl(variant, demand, ccl, dcl):
    battery = battery_48v(r1=1e-9)
    inverter = Inverter(battery, demand, config=InverterConfig(variant=variant))
    run(battery, inverter, 0.0, 2.5, 0.01, bms(variant, 0.0, 2.5, ccl=ccl, dcl=dcl))
    assert inverter.state is InverterState.RUNNING
    assert inverter.current == pytest.approx(min(max(demand, -dcl), ccl), abs=1e-6)
    assert battery.load_current == pytest.approx(-inverter.current)
    assert inverter.limits.ccl == pytest.approx(ccl) and inverter.limits.dcl == pytest.approx(dcl)


def test_a_lowered_ccl_cuts_the_current_at_the_next_step():
    battery = battery_48v()
    inverter = Inverter(battery, 80.0)
    inbox = [limits("victron", t, ccl=100.0) for t in every(1.0, 0.0, 3.0)]
    inbox += [limits("victron", t, ccl=20.0) for t in every(1.0, 3.0, 5.0)]
    trace = run(battery, inverter, 0.0, 5.0, 0.01, inbox)
    t, i = np.array(trace.t), np.array(trace.current)
    assert i[(t > 1.0) & (t < 3.0)] == pytest.approx(80.0)
    assert i[t >= 3.0 + 60.0 / 1000.0 + 0.01] == pytest.approx(20.0)  # down at 1000 A/s


@pytest.mark.parametrize("variant", ["victron", "pylontech", "sma"])
@pytest.mark.parametrize("demand", [-60.0, 60.0])
def test_stops_three_seconds_after_the_last_limits_frame_and_not_before(variant, demand):
    battery = battery_48v()
    inverter = Inverter(battery, demand, config=InverterConfig(variant=variant))
    inbox = [limits(variant, t) for t in every(1.0, 0.0, 4.5)]  # last at 4.0
    if variant != "victron":
        inbox += [enable(variant, t) for t in every(1.0, 0.0, 20.0)]  # enable keeps coming
    trace = run(battery, inverter, 0.0, 10.0, 0.01, inbox)
    t, i = np.array(trace.t), np.array(trace.current)
    assert i[(t > 1.0) & (t <= 4.0 + 3.0)] == pytest.approx(demand)
    assert np.all(i[t >= 7.0 + 60.0 / 1000.0 + 0.01] == 0.0)
    assert inverter.state is InverterState.LIMITS_LOST
    run(battery, inverter, 10.0, 12.0, 0.01, [limits(variant, 10.0)])  # limits return
    assert inverter.current == pytest.approx(demand)


def test_waits_for_the_first_limits_frame():
    battery = battery_48v()
    inverter = Inverter(battery, -50.0)
    trace = run(battery, inverter, 0.0, 5.0, 0.01)
    assert max(np.abs(trace.current)) == 0.0 and inverter.state is InverterState.WAITING


def test_charging_tapers_at_cvl_and_never_exceeds_it():
    # a battery filling up: 0.05 V/As is a small capacity, so CVL is reached in seconds
    battery = battery_48v(ocv=54.0, volts_per_as=0.002, r0=0.01, r1=0.005, c1=200.0)
    inverter = Inverter(battery, 100.0)
    trace = run(battery, inverter, 0.0, 60.0, 0.01, bms("victron", 0.0, 60.0, cvl=56.0))
    t, i, v = (np.array(x) for x in (trace.t, trace.current, trace.voltage))
    assert i[(t > 1.0) & (t < 2.0)] == pytest.approx(100.0)  # bulk at the CCL
    assert v.max() <= 56.0 + 0.05
    assert np.all(np.abs(v[t > 40.0] - 56.0) < 0.01)  # absorption at CVL
    assert 0.0 < i[-1] < 30.0 and np.all(np.diff(i[t > 20.0]) <= 1e-9)  # tapering


def test_cvl_below_the_battery_stops_charging_but_not_discharging():
    battery = battery_48v()
    charging = Inverter(battery, 50.0)
    run(battery, charging, 0.0, 3.0, 0.01, bms("victron", 0.0, 3.0, cvl=50.0))
    assert charging.current == 0.0 and charging.state is InverterState.RUNNING
    battery = battery_48v()
    discharging = Inverter(battery, -50.0)
    run(battery, discharging, 0.0, 3.0, 0.01, bms("victron", 0.0, 3.0, cvl=50.0))
    assert discharging.current == pytest.approx(-50.0)


def test_discharge_holds_at_dvl():
    battery = battery_48v(ocv=48.0, volts_per_as=0.002, r0=0.01)
    inverter = Inverter(battery, -100.0)
    trace = run(battery, inverter, 0.0, 40.0, 0.01, bms("victron", 0.0, 40.0, dvl=46.0))
    v = np.array(trace.voltage)
    assert v.min() >= 46.0 - 0.05
    assert -100.0 < inverter.current < 0.0  # still discharging, less
    assert abs(v[-1] - 46.0) < 0.01


def test_power_profile_divides_by_the_link_voltage():
    battery = battery_48v(ocv=50.0, r0=0.0, r1=1e-9)
    inverter = Inverter(battery, Scripted([(0.0, -2500.0), (3.0, 1000.0)]), ProfileKind.POWER)
    trace = run(battery, inverter, 0.0, 6.0, 0.01, bms("victron", 0.0, 6.0))
    t, i = np.array(trace.t), np.array(trace.current)
    assert i[(t > 2.0) & (t < 3.0)] == pytest.approx(-50.0)
    assert i[t > 5.0] == pytest.approx(20.0)


@pytest.mark.parametrize(
    ("variant", "frame_id", "signal"),
    [
        ("victron", 0x35A, "Alarm_HighVoltage"),
        ("victron", 0x35A, "Alarm_BmsInternal"),
        ("sma", 0x35A, "Alarm_LowTemperatureCharge"),
        ("pylontech", 0x359, "Protection_OverTemperature"),
        ("pylontech", 0x359, "Protection_SystemError"),
    ],
)
def test_an_active_alarm_stops_it_and_its_clearing_restarts_it(variant, frame_id, signal):
    battery = battery_48v()
    inverter = Inverter(battery, -40.0, config=InverterConfig(variant=variant))
    ok = 2 if frame_id == 0x35A else 0
    names = [s.name for s in DBS[variant].get_message_by_frame_id(frame_id).signals]
    healthy = {n: ok for n in names if n.startswith(("Alarm_", "Warning_", "Protection_"))}
    warned = healthy | {n: 1 for n in healthy if n.startswith("Warning_")}
    inbox = bms(variant, 0.0, 9.0)
    inbox += [frame(variant, frame_id, t, **warned) for t in every(1.0, 0.0, 3.0)]
    inbox += [frame(variant, frame_id, t, **(warned | {signal: 1})) for t in every(1.0, 3.0, 6.0)]
    inbox += [frame(variant, frame_id, t, **healthy) for t in every(1.0, 6.0, 9.0)]
    trace = run(battery, inverter, 0.0, 9.0, 0.01, inbox)
    t, i = np.array(trace.t), np.array(trace.current)
    assert i[(t > 1.0) & (t < 3.0)] == pytest.approx(-40.0)  # warnings alone do not stop it
    assert np.all(i[(t >= 3.0 + 0.05) & (t < 6.0)] == 0.0)
    assert i[t > 6.5] == pytest.approx(-40.0)


@pytest.mark.parametrize(("charge", "discharge"), [(True, False), (False, True), (False, False)])
def test_pylontech_enable_bits_gate_each_direction(charge, discharge):
    for demand, allowed in ((50.0, charge), (-50.0, discharge)):
        battery = battery_48v()
        inverter = Inverter(battery, demand, config=InverterConfig(variant="pylontech"))
        inbox = [limits("pylontech", t) for t in every(1.0, 0.0, 3.0)]
        inbox += [enable("pylontech", t, charge, discharge) for t in every(1.0, 0.0, 3.0)]
        run(battery, inverter, 0.0, 3.0, 0.01, inbox)
        assert inverter.current == (pytest.approx(demand) if allowed else 0.0)
    expected = InverterState.RUNNING if charge or discharge else InverterState.DISABLED
    assert inverter.state is expected


def test_sma_start_stop():
    battery = battery_48v()
    inverter = Inverter(battery, -50.0, config=InverterConfig(variant="sma"))
    inbox = [limits("sma", t) for t in every(1.0, 0.0, 9.0)]
    inbox += [frame("sma", 0x35C, t, StartStop=1) for t in every(1.0, 0.0, 3.0)]
    inbox += [frame("sma", 0x35C, t, StartStop=2) for t in every(1.0, 3.0, 6.0)]
    inbox += [frame("sma", 0x35C, t, StartStop=1) for t in every(1.0, 6.0, 9.0)]
    trace = run(battery, inverter, 0.0, 9.0, 0.01, inbox)
    t, i = np.array(trace.t), np.array(trace.current)
    assert i[(t > 1.0) & (t < 3.0)] == pytest.approx(-50.0)
    assert np.all(i[(t >= 3.1) & (t < 6.0)] == 0.0)
    assert i[t > 6.5] == pytest.approx(-50.0)


@pytest.mark.parametrize("variant", ["pylontech", "sma"])
def test_enable_variants_need_a_fresh_enable_frame(variant):
    battery = battery_48v()
    inverter = Inverter(battery, -50.0, config=InverterConfig(variant=variant))
    inbox = [limits(variant, t) for t in every(1.0, 0.0, 12.0)]
    inbox += [enable(variant, t) for t in every(1.0, 2.0, 5.0)]  # last at 4.0
    trace = run(battery, inverter, 0.0, 12.0, 0.01, inbox)
    t, i = np.array(trace.t), np.array(trace.current)
    assert np.all(i[t < 2.0] == 0.0)  # never enabled yet
    assert i[(t > 3.0) & (t <= 7.0)] == pytest.approx(-50.0)
    assert np.all(i[t > 7.1] == 0.0) and inverter.state is InverterState.DISABLED


def test_victron_ignores_0x35c():
    battery = battery_48v()
    inverter = Inverter(battery, -50.0)
    inbox = bms("victron", 0.0, 3.0) + [enable("pylontech", 0.5, False, False)]
    run(battery, inverter, 0.0, 3.0, 0.01, inbox)
    assert inverter.current == pytest.approx(-50.0)


@pytest.mark.parametrize("period", [0.5, 1.0, 2.0])
@pytest.mark.parametrize("keepalive_id", [0x305, 0x307])
def test_keepalive_every_period_and_silent_when_injected(period, keepalive_id):
    battery = battery_48v()
    config = InverterConfig(keepalive_period_s=period, keepalive_id=keepalive_id)
    inverter = Inverter(battery, 0.0, config=config)
    trace = run(battery, inverter, 0.0, 10.0, 0.01)
    assert {f.arbitration_id for f in trace.frames} == {keepalive_id}
    assert all(not f.is_extended_id and f.dlc == 8 for f in trace.frames)
    stamps = np.array([f.timestamp for f in trace.frames])
    assert np.diff(stamps) == pytest.approx(period)
    assert len(stamps) == round(10.0 / period)
    inverter.silent = True
    assert run(battery, inverter, 10.0, 15.0, 0.01).frames == []


def test_no_link_voltage_means_no_current():
    battery = battery_48v(ocv=0.0)
    inverter = Inverter(battery, -50.0)
    run(battery, inverter, 0.0, 3.0, 0.01, bms("victron", 0.0, 3.0))
    assert inverter.current == 0.0 and inverter.state is InverterState.LINK_DOWN


def test_malformed_limits_are_not_received():
    battery = battery_48v()
    inverter = Inverter(battery, -50.0)
    good = limits("victron", 0.0)
    short = can.Message(
        arbitration_id=0x351, data=good.data[:6], timestamp=0.0, is_extended_id=False
    )
    run(battery, inverter, 0.0, 2.0, 0.01, [short])
    assert inverter.limits is None and inverter.current == 0.0


def test_config_errors_name_the_field():
    with pytest.raises(ValueError, match="variant"):
        InverterConfig(variant="growatt")
    with pytest.raises(ValueError, match="keepalive_id"):
        InverterConfig(keepalive_id=0x306)
    with pytest.raises(ValueError, match="limits_timeout_s"):
        InverterConfig(limits_timeout_s=0.0)
