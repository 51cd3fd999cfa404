"""Elcon charger model: CC/CV against a battery, command time-out, stop bit, status frame."""

from __future__ import annotations

import can
import cantools
import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from loads_support import RcBattery, every, run

import dbc
from slaves.elcon_charger import (
    ChargerConfig,
    ElconCharger,
    StatusBit,
    command_id,
    status_id,
)
from slaves.hv_circuit import ContactorId, HvCircuit
from slaves.power_stage import PowerStageConfig

ELCON = cantools.database.load_file(dbc.path("elcon_charger.dbc"), strict=True)
STATUS_NAMES = {
    StatusBit.HARDWARE_FAULT: "HardwareFault",
    StatusBit.OVER_TEMPERATURE: "OverTemperature",
    StatusBit.INPUT_VOLTAGE: "InputVoltageFault",
    StatusBit.BATTERY_NOT_DETECTED: "BatteryNotDetected",
    StatusBit.COMMUNICATION_TIMEOUT: "CommunicationTimeout",
}


def command(
    t: float, volts: float, amps: float, stop: bool = False, address: int = 0xE5
) -> can.Message:
    a = f"{address:02X}"
    data = ELCON.encode_message(
        command_id(address),
        {
            f"Cmd{a}_MaxChargeVoltage": volts,
            f"Cmd{a}_MaxChargeCurrent": amps,
            f"Cmd{a}_Control": int(stop),
        },
    )
    return can.Message(arbitration_id=command_id(address), data=data, timestamp=t)


def commands(first: float, end: float, volts: float, amps: float, **kw) -> list[can.Message]:
    """One command a second from ``first`` until before ``end``."""
    return [command(t, volts, amps, **kw) for t in every(1.0, first, end)]


def statuses(frames, address: int = 0xE5) -> list[tuple[float, dict]]:
    a = f"{address:02X}"
    out = []
    for f in frames:
        if f.arbitration_id == status_id(address):
            assert f.is_extended_id and f.dlc == 8
            raw = ELCON.decode_message(f.arbitration_id, bytes(f.data), decode_choices=False)
            out.append((f.timestamp, {k.removeprefix(f"St{a}_"): v for k, v in raw.items()}))
    return out


def test_constant_current_ramps_in_then_constant_voltage_holds_the_maximum():
    battery = RcBattery(ocv=95.0, volts_per_as=0.01)
    charger = ElconCharger(battery, ChargerConfig(rated_current=30.0))
    trace = run(battery, charger, 0.0, 90.0, 0.01, commands(0.0, 90.0, 100.0, 16.0))
    t, i, v = (np.array(x) for x in (trace.t, trace.current, trace.voltage))
    # soft start at 20 A/s from the first command (applied at the first step)
    assert i[t <= 0.81] == pytest.approx(np.minimum(20.0 * (t[t <= 0.81] - 0.0), 16.0), abs=0.21)
    cc = (t > 1.0) & (v < 99.9)
    assert cc.sum() > 1000 and np.all(np.abs(i[cc] - 16.0) < 1e-9)
    assert v.max() <= 100.0 + 0.05  # the commanded maximum, held within 50 mV
    end = t > 80.0
    assert np.all(np.abs(v[end] - 100.0) < 0.02)
    assert 0.0 < i[-1] < 1.0 and np.all(np.diff(i[end]) <= 1e-9)  # tapering
    # what remains is the current the battery's own resistance lets through at 100 V
    ohmic = (100.0 - battery.ocv - battery.v_rc) / battery.r0
    assert i[-1] == pytest.approx(ohmic, abs=0.02)


@given(
    r0=st.floats(0.02, 0.3),
    polarisation=st.floats(0.0, 1.0),  # RC-pair resistance relative to the series one
    rise=st.floats(0.05, 0.2),  # V/s the open-circuit voltage gains at the commanded current
    headroom=st.floats(0.0, 0.3),  # V below the maximum at full current when charging starts
    dt=st.sampled_from([0.005, 0.01, 0.02, 0.05]),
    amps=st.integers(10, 200).map(lambda raw: raw / 10),  # what the 0.1 A field carries
)
def test_terminal_voltage_never_exceeds_the_commanded_maximum_by_more_than_a_tolerance(
    r0, polarisation, rise, headroom, dt, amps
):
    r1 = polarisation * r0
    gain = PowerStageConfig().voltage_gain
    assume(gain * (r0 + r1) * dt <= 1.0)  # the loop's non-oscillating range (documented)
    ocv = 100.0 - amps * (r0 + r1) - headroom
    battery = RcBattery(ocv=ocv, volts_per_as=rise / amps, r0=r0, r1=r1 + 1e-9, c1=5.0)
    charger = ElconCharger(battery)
    trace = run(battery, charger, 0.0, 10.0, dt, commands(0.0, 10.0, 100.0, amps))
    assert max(trace.voltage) > 99.95  # constant voltage was reached
    assert max(trace.voltage) <= 100.0 + 0.1  # within the 0.1 V the command can express
    assert max(trace.current) <= amps + 1e-9


def test_cv_on_the_hv_circuit_settles_at_the_ohmic_current():
    circuit = HvCircuit(pack_voltage=380.0)
    for contactor in (ContactorId.MINUS, ContactorId.PLUS):
        circuit.set_coil(contactor, True, 0.0)
    charger = ElconCharger(circuit)
    trace = run(circuit, charger, 0.0, 10.0, 0.01, commands(0.0, 10.0, 380.5, 20.0))
    c = circuit.config
    expected = 0.5 / (c.pack_resistance_ohm + c.path_resistance_ohm)  # about 9.6 A
    assert charger.current == pytest.approx(expected, rel=0.01)
    assert circuit.pack_current == pytest.approx(charger.current, rel=0.01)
    assert max(trace.voltage) <= 380.5 + 0.01


def test_stops_five_seconds_after_the_last_command_and_flags_the_timeout():
    battery = RcBattery(volts_per_as=0.0)
    charger = ElconCharger(battery)
    trace = run(battery, charger, 0.0, 20.0, 0.01, commands(0.0, 8.5, 100.0, 10.0))
    t, i = np.array(trace.t), np.array(trace.current)
    last = 8.0  # the last command, applied at the step ending then
    assert np.all(i[(t > 1.0) & (t <= last + 5.0)] == pytest.approx(10.0))
    assert np.all(i[t >= last + 5.0 + 0.12] == 0.0)  # 10 A at 100 A/s, one step late
    for stamp, status in statuses(trace.frames):
        assert status["CommunicationTimeout"] == (stamp > last + 5.0)
    # commands return: the bit clears and charging resumes
    trace = run(battery, charger, 20.0, 23.0, 0.01, commands(20.0, 23.0, 100.0, 10.0))
    assert charger.status == StatusBit(0) and charger.current == pytest.approx(10.0)


def test_without_any_command_it_never_charges_and_times_out_after_power_on():
    battery = RcBattery()
    charger = ElconCharger(battery)
    trace = run(battery, charger, 0.0, 7.0, 0.01)
    assert max(trace.current) == 0.0
    flags = [(stamp, s["CommunicationTimeout"]) for stamp, s in statuses(trace.frames)]
    # power-on at 0, status from the first step on, every second
    assert flags == [(pytest.approx(n + 0.01), int(n + 0.01 > 5.0)) for n in range(7)]


def test_stop_bit_brings_the_current_to_zero_and_start_resumes():
    battery = RcBattery(volts_per_as=0.0)
    charger = ElconCharger(battery, ChargerConfig(stage=PowerStageConfig(ramp_down=50.0)))
    inbox = (
        commands(0.0, 5.0, 100.0, 12.0)
        + commands(5.0, 8.0, 100.0, 12.0, stop=True)
        + commands(8.0, 10.0, 100.0, 12.0)
    )
    trace = run(battery, charger, 0.0, 10.0, 0.01, inbox)
    t, i = np.array(trace.t), np.array(trace.current)
    assert i[(t > 4.0) & (t < 5.0)] == pytest.approx(12.0)
    stopped = (t >= 5.0 + 12.0 / 50.0 + 0.01) & (t < 8.0)
    assert i[stopped].max() == 0.0
    assert charger.status == StatusBit(0)  # a stop command is still a command
    assert i[t > 8.0 + 12.0 / 20.0 + 0.01] == pytest.approx(12.0)  # soft start again


@given(
    volts=st.floats(20.0, 6000.0),
    amps=st.floats(0.0, 20.0),
)
def test_status_frame_decodes_to_the_output_values(volts, amps):
    battery = RcBattery(ocv=volts, volts_per_as=0.0, r0=0.0, r1=1e-6)
    charger = ElconCharger(battery, ChargerConfig(rated_voltage=6553.5))
    trace = run(battery, charger, 0.0, 3.0, 0.01, commands(0.0, 3.0, 6553.0, amps))
    stamp, status = statuses(trace.frames)[-1]
    assert stamp == pytest.approx(2.01)
    assert status["OutputVoltage"] == pytest.approx(charger.voltage, abs=0.05 + 1e-6)
    assert status["OutputCurrent"] == pytest.approx(charger.current, abs=0.05 + 1e-6)
    assert charger.current == pytest.approx(amps, abs=0.05 + 1e-6)  # 0.1 A on the wire


@pytest.mark.parametrize("bit", list(StatusBit))
def test_injected_status_bit_appears_alone_and_stops_the_output(bit):
    battery = RcBattery(volts_per_as=0.0)
    charger = ElconCharger(battery)
    inbox = commands(0.0, 6.0, 100.0, 10.0)
    run(battery, charger, 0.0, 2.0, 0.01, inbox)
    assert charger.current == pytest.approx(10.0)
    charger.inject(bit)
    trace = run(battery, charger, 2.0, 4.0, 0.01, inbox)
    assert charger.current == 0.0
    for _, status in statuses(trace.frames):
        assert {b for b, name in STATUS_NAMES.items() if status[name]} == {bit}
    charger.clear(bit)
    run(battery, charger, 4.0, 6.0, 0.01, inbox)
    assert charger.current > 0.0


def test_no_battery_voltage_means_battery_not_detected_and_no_output():
    circuit = HvCircuit(pack_voltage=380.0)  # contactors open: the link is dead
    charger = ElconCharger(circuit)
    trace = run(circuit, charger, 0.0, 3.0, 0.01, commands(0.0, 3.0, 400.0, 10.0))
    assert max(trace.current) == 0.0 and circuit.load_current == 0.0
    assert all(s["BatteryNotDetected"] == 1 for _, s in statuses(trace.frames))


def test_silent_charger_sends_no_status_but_still_charges():
    battery = RcBattery(volts_per_as=0.0)
    charger = ElconCharger(battery)
    charger.silent = True
    trace = run(battery, charger, 0.0, 3.0, 0.01, commands(0.0, 3.0, 100.0, 10.0))
    assert trace.frames == [] and charger.current == pytest.approx(10.0)


def test_chargers_at_two_addresses_share_the_link_and_hear_only_their_commands():
    battery = RcBattery(volts_per_as=0.0)
    e5 = ElconCharger(battery, ChargerConfig(address=0xE5))
    e7 = ElconCharger(battery, ChargerConfig(address=0xE7))
    inbox = commands(0.0, 4.0, 100.0, 6.0) + [
        command(t, 100.0, 9.0, address=0xE7) for t in every(1.0, 0.0, 4.0)
    ]
    trace = run(battery, e5, 0.0, 4.0, 0.01, inbox, others=[e7])
    assert e5.current == pytest.approx(6.0) and e7.current == pytest.approx(9.0)
    assert battery.load_current == pytest.approx(-15.0)
    ids = {f.arbitration_id for f in trace.frames}
    assert ids == {status_id(0xE5), status_id(0xE7)}
    assert statuses(trace.frames, 0xE7)[-1][1]["OutputCurrent"] == pytest.approx(9.0)


def test_malformed_or_foreign_frames_are_not_commands():
    battery = RcBattery(volts_per_as=0.0)
    charger = ElconCharger(battery)
    good = command(0.0, 100.0, 10.0)
    inbox = [
        can.Message(arbitration_id=good.arbitration_id, data=good.data[:4], timestamp=0.0),
        can.Message(
            arbitration_id=good.arbitration_id & 0x7FF,
            data=good.data,
            timestamp=0.0,
            is_extended_id=False,
        ),
        command(0.0, 100.0, 10.0, address=0xE8),
    ]
    trace = run(battery, charger, 0.0, 6.0, 0.01, inbox)
    assert max(trace.current) == 0.0 and charger.command is None
    assert charger.status == StatusBit.COMMUNICATION_TIMEOUT


def test_config_rejects_an_address_the_dbc_does_not_define():
    with pytest.raises(ValueError, match="address"):
        ChargerConfig(address=0xE6)
