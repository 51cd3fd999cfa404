"""IVT-S model: values, counters, periods, commands and injected faults, decoded by cantools."""

from __future__ import annotations

import can
import cantools
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import dbc
from slaves.current_sensor import (
    COMMAND_ID,
    RESPONSE_ID,
    CurrentSensor,
    CurrentSensorConfig,
    IvtResult,
    SensorFault,
)
from slaves.hv_circuit import ContactorId, HvCircuit

IVT = cantools.database.load_file(dbc.path("ivt_s.dbc"), strict=True)


def _closed_circuit(load: float, v_pack: float = 380.0) -> HvCircuit:
    circuit = HvCircuit(pack_voltage=v_pack)
    for contactor in ContactorId:
        circuit.set_coil(contactor, True, 0.0)
    circuit.load_current = load
    for n in range(1, 31):
        circuit.step(n * 0.01, 0.01)
    return circuit


def _run(sensor: CurrentSensor, t0: float, t1: float, dt: float) -> list[can.Message]:
    """Step circuit then sensor at the step ends ``t0 + dt, t0 + 2 dt, ...`` up to ``t1``."""
    frames = []
    for n in range(1, round((t1 - t0) / dt) + 1):
        t = t0 + n * dt
        sensor.circuit.step(t, dt)
        frames += sensor.step(t, dt)
    return frames


def _decoded(frames, result: IvtResult, db=IVT) -> list[dict]:
    return [
        db.decode_message(f.arbitration_id, bytes(f.data), decode_choices=False)
        for f in frames
        if f.arbitration_id == result.frame_id
    ]


@given(load=st.floats(-500.0, 500.0), u3=st.floats(-1000.0, 1000.0), temp=st.floats(-40, 120))
def test_frames_decode_to_true_values_within_resolution(load, u3, temp):
    circuit = _closed_circuit(load)
    sensor = CurrentSensor(circuit)
    sensor.u3_voltage = u3
    sensor.temperature_c = temp
    frames = _run(sensor, 0.0, 1.0, 0.01)
    first = {r: _decoded(frames, r)[0] for r in IvtResult}
    assert first[IvtResult.I]["IVT_I_Value"] == pytest.approx(circuit.pack_current * 1e3, abs=0.5)
    assert first[IvtResult.U1]["IVT_U1_Value"] == pytest.approx(
        circuit.pack_terminal_voltage * 1e3, abs=0.5
    )
    assert first[IvtResult.U2]["IVT_U2_Value"] == pytest.approx(circuit.link_voltage * 1e3, abs=0.5)
    assert first[IvtResult.U3]["IVT_U3_Value"] == pytest.approx(u3 * 1e3, abs=0.5)
    assert first[IvtResult.T]["IVT_T_Value"] == pytest.approx(temp, abs=0.05 + 1e-9)
    power = circuit.pack_terminal_voltage * circuit.pack_current
    assert first[IvtResult.W]["IVT_W_Value"] == pytest.approx(power, abs=0.5)
    for r, values in first.items():
        assert values[f"IVT_{r.name}_Id"] == r.value
        assert values[f"IVT_{r.name}_MeasurementError"] == 0


def test_the_foxbms_sensor_dbc_reads_the_same_current(corpus_dir):
    other = cantools.database.load_file(
        corpus_dir / "foxbms_third-party_IVT-S_12082020.dbc", strict=False
    )
    circuit = _closed_circuit(-123.456)  # charging at 123.456 A
    frames = _run(CurrentSensor(circuit), 0.0, 0.2, 0.01)
    values = _decoded(frames, IvtResult.I, other)
    assert values[0]["IVT_Result_I"] == round(circuit.pack_current * 1e3)
    assert values[0]["IVT_Result_I"] == pytest.approx(123456, abs=150)  # minus link bleed
    assert [v["IVT_MsgCount_Result_I"] for v in values] == [k % 16 for k in range(len(values))]


def test_charge_and_energy_counters_integrate_current():
    circuit = _closed_circuit(-100.0)  # charging at about 100 A
    sensor = CurrentSensor(circuit)
    frames = _run(sensor, 0.0, 60.05, 0.05)
    charge = _decoded(frames, IvtResult.As)[-1]["IVT_As_Value"]  # sent at t = 60 s
    energy = _decoded(frames, IvtResult.Wh)[-1]["IVT_Wh_Value"]
    assert charge == pytest.approx(circuit.pack_current * 60.0, abs=1.0)
    power = circuit.pack_current * circuit.pack_terminal_voltage
    assert energy == pytest.approx(power * 60.0 / 3600.0, abs=1.0)


@given(dt=st.sampled_from([0.001, 0.003, 0.007, 0.01, 0.025]))
def test_periods_and_counters_as_configured(dt):
    sensor = CurrentSensor(_closed_circuit(0.0))
    frames = _run(sensor, 0.0, 1.2, dt)
    expected = {IvtResult.I: 0.02, IvtResult.U1: 0.1, IvtResult.U2: 0.1, IvtResult.Wh: 0.1}
    for result, period in expected.items():
        frames_1s = [f for f in frames if f.timestamp < frames[0].timestamp + 1.0 - 1e-9]
        stamps = [f.timestamp for f in frames_1s if f.arbitration_id == result.frame_id]
        assert len(stamps) == round(1.0 / period)
        assert np.allclose(np.diff(stamps), period)
        counters = [v[f"IVT_{result.name}_Counter"] for v in _decoded(frames_1s, result)]
        assert counters == [k % 16 for k in range(len(counters))]
    assert len([f for f in frames_1s if f.arbitration_id == IvtResult.T.frame_id]) == 1


def test_noise_and_offset_are_seeded():
    config = CurrentSensorConfig(current_offset_a=0.5, current_noise_a=0.2, seed=7)
    circuit = _closed_circuit(0.0)
    currents = [
        v["IVT_I_Value"] / 1e3
        for v in _decoded(_run(CurrentSensor(circuit, config), 0.0, 10.0, 0.02), IvtResult.I)
    ]
    true = circuit.pack_current
    assert np.mean(currents) - true == pytest.approx(0.5, abs=0.03)
    assert np.std(currents) == pytest.approx(0.2, rel=0.1)
    again = _run(CurrentSensor(_closed_circuit(0.0), config), 0.0, 10.0, 0.02)
    assert [v["IVT_I_Value"] / 1e3 for v in _decoded(again, IvtResult.I)] == currents


def test_injected_faults_are_visible():
    circuit = _closed_circuit(-20.0)
    sensor = CurrentSensor(circuit)
    _run(sensor, 0.0, 0.1, 0.01)
    sensor.inject(SensorFault.SILENT, [IvtResult.U2])
    sensor.inject(SensorFault.COUNTER_FROZEN, [IvtResult.I])
    sensor.inject(SensorFault.ERROR_BIT, [IvtResult.U1])
    sensor.inject(SensorFault.STUCK_VALUE, [IvtResult.I])
    circuit.load_current = 50.0
    frames = _run(sensor, 0.1, 0.5, 0.01)
    assert not [f for f in frames if f.arbitration_id == IvtResult.U2.frame_id]
    current = _decoded(frames, IvtResult.I)
    assert len({v["IVT_I_Counter"] for v in current}) == 1
    stuck = {v["IVT_I_Value"] for v in current}
    assert len(stuck) == 1 and stuck.pop() == pytest.approx(20000, abs=150)
    assert all(v["IVT_U1_MeasurementError"] == 1 for v in _decoded(frames, IvtResult.U1))
    assert all(v["IVT_U3_MeasurementError"] == 0 for v in _decoded(frames, IvtResult.U3))
    sensor.clear(SensorFault.STUCK_VALUE)
    sensor.clear(SensorFault.SILENT)
    frames = _run(sensor, 0.5, 0.7, 0.01)
    assert _decoded(frames, IvtResult.I)[-1]["IVT_I_Value"] == pytest.approx(-50000, abs=150)
    assert _decoded(frames, IvtResult.U2)


def test_overcurrent_bit_above_threshold():
    sensor = CurrentSensor(_closed_circuit(300.0), CurrentSensorConfig(overcurrent_threshold_a=250))
    values = _decoded(_run(sensor, 0.0, 0.1, 0.01), IvtResult.I)
    assert all(v["IVT_I_OCS"] == 1 for v in values)


def _command(signals: dict) -> can.Message:
    return can.Message(
        arbitration_id=COMMAND_ID,
        data=IVT.encode_message(COMMAND_ID, signals),
        is_extended_id=False,
    )


def _responses(frames) -> list[dict]:
    return [
        IVT.decode_message(RESPONSE_ID, bytes(f.data), decode_choices=False)
        for f in frames
        if f.arbitration_id == RESPONSE_ID
    ]


def test_stop_configure_run_and_trigger():
    sensor = CurrentSensor(_closed_circuit(5.0))
    sensor.receive(
        _command({"IVT_Cmd_Id": 0x20, "IVT_Cmd_TriggerMode_I": 2, "IVT_Cmd_CycleTime_I": 5})
    )
    frames = _run(sensor, 0.0, 0.01, 0.01)
    assert _responses(frames)[0] == {"IVT_Resp_Id": 0xFF, "IVT_Resp_WrongCommand": 0x20}

    sensor.receive(_command({"IVT_Cmd_Id": 0x34, "IVT_Cmd_RunMode": 0, "IVT_Cmd_StartupMode": 0}))
    frames = _run(sensor, 0.01, 0.02, 0.01)
    assert _responses(frames)[0]["IVT_Resp_RunMode"] == 0
    assert not [f for f in _run(sensor, 0.02, 0.5, 0.01) if f.arbitration_id != RESPONSE_ID]

    sensor.receive(
        _command({"IVT_Cmd_Id": 0x20, "IVT_Cmd_TriggerMode_I": 2, "IVT_Cmd_CycleTime_I": 5})
    )
    sensor.receive(
        _command({"IVT_Cmd_Id": 0x21, "IVT_Cmd_TriggerMode_U1": 1, "IVT_Cmd_CycleTime_U1": 0})
    )
    frames = _run(sensor, 0.5, 0.51, 0.01)
    answers = _responses(frames)
    assert answers[0]["IVT_Resp_Id"] == 0xA0 and answers[0]["IVT_Resp_CycleTime_I"] == 5
    assert answers[1]["IVT_Resp_Id"] == 0xA1 and answers[1]["IVT_Resp_TriggerMode_U1"] == 1

    sensor.receive(_command({"IVT_Cmd_Id": 0x34, "IVT_Cmd_RunMode": 1, "IVT_Cmd_StartupMode": 0}))
    frames = _run(sensor, 1.0, 2.0, 0.01)
    stamps = [f.timestamp for f in frames if f.arbitration_id == IvtResult.I.frame_id]
    assert stamps[0] == pytest.approx(1.01)  # runs from the step that took the command
    assert np.allclose(np.diff(stamps), 0.005) and len(stamps) == 199
    assert not [f for f in frames if f.arbitration_id == IvtResult.U1.frame_id]  # triggered only

    trigger = {"IVT_Cmd_Id": 0x31} | {f"IVT_Cmd_Trigger_{r.name}": 0 for r in IvtResult}
    sensor.receive(_command(trigger | {"IVT_Cmd_Trigger_U1": 1}))
    frames = _run(sensor, 2.0, 2.01, 0.01)
    assert len([f for f in frames if f.arbitration_id == IvtResult.U1.frame_id]) == 1
    assert _responses(frames)[0]["IVT_Resp_Trigger_U1"] == 1


def test_unknown_command_is_rejected():
    sensor = CurrentSensor(_closed_circuit(0.0))
    sensor.receive(
        can.Message(arbitration_id=COMMAND_ID, data=bytes([0x77] + [0] * 7), is_extended_id=False)
    )
    assert _responses(_run(sensor, 0.0, 0.01, 0.01)) == [
        {"IVT_Resp_Id": 0xFF, "IVT_Resp_WrongCommand": 0x77}
    ]
