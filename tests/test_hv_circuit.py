"""Precharge physics and contactor behaviour of the HV circuit model."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from slaves.hv_circuit import ContactorFault, ContactorId, HvCircuit, HvCircuitConfig

V_PACK = 400.0
CONFIG = HvCircuitConfig()
R_PRE = CONFIG.precharge_resistance_ohm + CONFIG.pack_resistance_ohm
TAU = R_PRE * CONFIG.capacitance_f
R_MAIN = CONFIG.path_resistance_ohm + CONFIG.pack_resistance_ohm


def _start_precharge(circuit: HvCircuit, t: float = 0.0) -> None:
    circuit.set_coil(ContactorId.MINUS, True, t)
    circuit.set_coil(ContactorId.PRECHARGE, True, t)


def _run(circuit: HvCircuit, t: float, until: float, dt: float) -> float:
    """Step from ``t`` to ``until``; each step is stamped with its end time."""
    while t < until - 1e-12:
        step = min(dt, until - t)
        t += step
        circuit.step(t, step)
    return t


@given(dt=st.floats(1e-4, 0.05), t_close=st.floats(0.0, 0.2))
def test_link_voltage_follows_rc_curve_for_any_step_size(dt, t_close):
    circuit = HvCircuit(pack_voltage=V_PACK)
    t = _run(circuit, 0.0, t_close, dt)
    _start_precharge(circuit, t)
    closed_at = t + CONFIG.close_delay_s
    for _ in range(int(0.4 / dt)):
        t += dt
        circuit.step(t, dt)
        elapsed = max(0.0, t - closed_at)
        expected = V_PACK * (1.0 - math.exp(-elapsed / TAU))
        # the bleed resistor lowers the final value by R_PRE / R_bleed (0.05 %)
        assert circuit.link_voltage == pytest.approx(expected, abs=0.3)


def test_inrush_current_through_the_precharge_resistor():
    circuit = HvCircuit(pack_voltage=V_PACK)
    _start_precharge(circuit)
    t = _run(circuit, 0.0, CONFIG.close_delay_s - 0.001, 0.001)
    assert circuit.pack_current == 0.0  # contacts not yet closed
    t = _run(circuit, t, CONFIG.close_delay_s + 1e-6, 1e-6)
    # discharging: negative; the peak is V / R through the precharge resistor
    assert circuit.pack_current == pytest.approx(-V_PACK / R_PRE, rel=1e-3)
    _run(circuit, t, CONFIG.close_delay_s + TAU, 1e-3)
    assert circuit.pack_current == pytest.approx(-V_PACK / R_PRE / math.e, rel=1e-3)


def test_closing_plus_after_precharge_gives_small_current():
    circuit = HvCircuit(pack_voltage=V_PACK)
    _start_precharge(circuit)
    t = _run(circuit, 0.0, CONFIG.close_delay_s + 10 * TAU, 0.005)
    dv = V_PACK - circuit.link_voltage
    assert dv < 1.0  # the usual "precharged" criterion
    circuit.set_coil(ContactorId.PLUS, True, t)
    t = _run(circuit, t, t + CONFIG.close_delay_s + 1e-7, 1e-4)
    assert circuit.contactors[ContactorId.PLUS].closed
    # the step into the main path is dV / R_main: a few amperes, not thousands
    assert abs(circuit.pack_current) <= dv / R_MAIN * 1.01
    assert abs(circuit.pack_current) < 10.0


def test_closing_plus_without_precharge_draws_huge_inrush():
    circuit = HvCircuit(pack_voltage=V_PACK)
    circuit.set_coil(ContactorId.MINUS, True, 0.0)
    circuit.set_coil(ContactorId.PLUS, True, 0.0)
    _run(circuit, 0.0, CONFIG.close_delay_s + 1e-9, 1e-3)
    assert circuit.pack_current == pytest.approx(-V_PACK / R_MAIN, rel=1e-3)


def test_load_current_flows_through_the_pack_once_closed():
    circuit = HvCircuit(pack_voltage=V_PACK)
    for contactor in ContactorId:
        circuit.set_coil(contactor, True, 0.0)
    circuit.load_current = 100.0
    _run(circuit, 0.0, 0.5, 0.01)
    assert circuit.pack_current == pytest.approx(-100.0, rel=1e-3)
    assert circuit.link_voltage == pytest.approx(V_PACK - 100.0 * R_MAIN, abs=0.01)
    assert circuit.pack_terminal_voltage == pytest.approx(
        V_PACK - 100.0 * CONFIG.pack_resistance_ohm, abs=0.01
    )
    circuit.load_current = -50.0  # a charger feeds the link
    _run(circuit, 0.5, 0.6, 0.01)
    assert circuit.pack_current == pytest.approx(50.0, rel=1e-3)


def test_open_circuit_carries_no_current_and_the_link_bleeds():
    circuit = HvCircuit(pack_voltage=V_PACK)
    for contactor in ContactorId:
        circuit.set_coil(contactor, True, 0.0)
    t = _run(circuit, 0.0, 0.2, 0.01)
    circuit.load_current = 30.0
    circuit.set_coil(ContactorId.PLUS, False, t)
    circuit.set_coil(ContactorId.PRECHARGE, False, t)
    t = _run(circuit, t, t + CONFIG.open_delay_s + 1e-6, 1e-3)
    assert circuit.pack_current == 0.0
    v_open = circuit.link_voltage
    _run(circuit, t, t + 10.0, 0.1)
    bleed_tau = CONFIG.bleed_resistance_ohm * CONFIG.capacitance_f
    assert circuit.link_voltage == pytest.approx(v_open * math.exp(-10.0 / bleed_tau), rel=1e-6)


def test_contacts_follow_the_coil_after_the_delays():
    circuit = HvCircuit(pack_voltage=V_PACK)
    contactor = circuit.contactors[ContactorId.MINUS]
    circuit.set_coil(ContactorId.MINUS, True, 0.0)
    _run(circuit, 0.0, CONFIG.close_delay_s - 1e-4, 1e-4)
    assert not contactor.closed and not contactor.aux_closed
    _run(circuit, CONFIG.close_delay_s - 1e-4, CONFIG.close_delay_s + 1e-4, 1e-4)
    assert contactor.closed and contactor.aux_closed
    circuit.set_coil(ContactorId.MINUS, False, 0.1)
    _run(circuit, 0.1, 0.1 + CONFIG.open_delay_s - 1e-4, 1e-4)
    assert contactor.closed
    _run(circuit, 0.1 + CONFIG.open_delay_s - 1e-4, 0.2, 1e-4)
    assert not contactor.closed


def test_a_coil_pulse_shorter_than_the_delay_does_not_close():
    circuit = HvCircuit(pack_voltage=V_PACK)
    circuit.set_coil(ContactorId.PLUS, True, 0.0)
    circuit.set_coil(ContactorId.PLUS, False, 0.01)
    _run(circuit, 0.0, 0.2, 1e-3)
    assert not circuit.contactors[ContactorId.PLUS].closed


def test_injected_contactor_faults():
    circuit = HvCircuit(pack_voltage=V_PACK)
    k = circuit.contactors
    k[ContactorId.PLUS].fault = ContactorFault.WELDED
    k[ContactorId.PRECHARGE].fault = ContactorFault.FAILS_TO_CLOSE
    k[ContactorId.MINUS].fault = ContactorFault.AUX_STUCK_OPEN
    for contactor in ContactorId:
        circuit.set_coil(contactor, True, 0.0)
    _run(circuit, 0.0, 0.1, 1e-3)
    assert k[ContactorId.PLUS].closed
    assert not k[ContactorId.PRECHARGE].closed and not k[ContactorId.PRECHARGE].aux_closed
    assert k[ContactorId.MINUS].closed and not k[ContactorId.MINUS].aux_closed
    for contactor in ContactorId:
        circuit.set_coil(contactor, False, 0.1)
    _run(circuit, 0.1, 0.3, 1e-3)
    assert k[ContactorId.PLUS].closed and k[ContactorId.PLUS].aux_closed  # welded
    assert not k[ContactorId.MINUS].closed
    k[ContactorId.MINUS].fault = ContactorFault.AUX_STUCK_CLOSED
    assert k[ContactorId.MINUS].aux_closed
    assert circuit.pack_current == 0.0  # minus open: no return path


def test_config_rejects_nonsense_naming_the_field():
    with pytest.raises(ValueError, match="precharge_resistance_ohm"):
        HvCircuitConfig(precharge_resistance_ohm=0.0)
    with pytest.raises(ValueError, match="capacitance_f"):
        HvCircuitConfig(capacitance_f=float("nan"))
