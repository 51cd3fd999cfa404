"""Life counters: throughput integrals on random profiles, contactor wear in a closed loop,
and the counters carried through the persisted record across a restart."""

from __future__ import annotations

import json
import math
from dataclasses import fields, replace

import pytest
from core_support import Rig
from hypothesis import given
from hypothesis import strategies as st

from controller.config.loader import ControllerConfig, default_config
from controller.contactors import ContactorState, Request
from controller.core import Controller
from controller.life import LifeConfig, LifeCounters, LifeInputs, LifeState, step_life
from controller.persisted import Persisted
from controller.protection import Check

OPEN = (False, False, False)


def steady_plant_config() -> ControllerConfig:
    """The default configuration without the current-against-voltage-response check: the
    test plant's cells hold their voltage under load, which that check rightly faults."""
    config = default_config()
    name = Check.CURRENT_VOLTAGE_CONSISTENCY.value
    check = replace(getattr(config.protection, name), enabled=False)
    return replace(config, protection=replace(config.protection, **{name: check}))


samples = st.lists(
    st.tuples(
        st.floats(0.0, 0.5),  # dt to this sample, s
        st.floats(0.0, 1000.0),  # V
        st.floats(-500.0, 500.0),  # A
        st.booleans(),  # voltage valid
        st.booleans(),  # current valid
    ),
    min_size=1,
    max_size=60,
)


@given(samples)
def test_throughput_is_the_zero_order_hold_integral_of_valid_v_times_i(profile) -> None:
    """Each interval counts with the sample at its start, only where V and I were both valid;
    every counter only grows."""
    state, t = LifeState(), 0.0
    expected = {"charged_kwh": 0.0, "discharged_kwh": 0.0, "charged_ah": 0.0, "discharged_ah": 0.0}
    previous: tuple[float, float, bool] | None = None
    for dt, v, i, v_ok, i_ok in profile:
        t += dt
        if previous is not None:
            pv, pi, ok = previous
            if ok and pi != 0:
                side = "charged" if pi > 0 else "discharged"
                expected[f"{side}_kwh"] += abs(pv * pi) * dt / 3.6e6
                expected[f"{side}_ah"] += abs(pi) * dt / 3600
        before = state.counters
        state = step_life(LifeConfig(), state, LifeInputs(v, v_ok, i, i_ok, OPEN, OPEN), t)
        for name in expected:
            assert getattr(state.counters, name) >= getattr(before, name)
        previous = (v, i, v_ok and i_ok)
    for name, value in expected.items():
        assert getattr(state.counters, name) == pytest.approx(value, rel=1e-9, abs=1e-12)


@given(st.lists(st.tuples(st.booleans(), st.booleans(), st.booleans(), st.floats(-900, 900))))
def test_every_command_change_is_one_operation_and_counters_never_fall(steps) -> None:
    config = LifeConfig(load_current_a=5.0)
    state, commands, t = LifeState(), OPEN, 0.0
    closings = [0, 0, 0]
    for *after, current in steps:
        t += 0.01
        after = tuple(after)
        for k in range(3):
            closings[k] += after[k] and not commands[k]
        before_counters = state.counters
        state = step_life(config, state, LifeInputs(400.0, True, current, True, commands, after), t)
        for f in fields(LifeCounters):
            old, new = getattr(before_counters, f.name), getattr(state.counters, f.name)
            pairs = zip(old, new, strict=True) if isinstance(old, tuple) else ((old, new),)
            assert all(b >= a for a, b in pairs), f.name
        commands = after
    assert list(state.counters.contactor_closings) == closings
    c = state.counters
    for k in range(3):
        assert c.contactor_openings_under_load[k] <= c.contactor_openings[k]
        assert c.contactor_broken_a_max[k] <= 900.0
        assert c.contactor_broken_a_sum[k] >= c.contactor_broken_a_max[k]


def test_a_closed_loop_session_counts_cycles_and_contactor_wear() -> None:
    """Precharge and close, discharge 100 A for 36 s (1 Ah), then a fault opens under load."""
    rig = Rig(steady_plant_config())
    rig.run(0.5)
    rig.close(Request.DISCHARGE)
    c = rig.state.life.counters
    assert c.contactor_closings == (1, 1, 1)
    assert c.contactor_openings == (0, 1, 0)  # the precharge contactor, bridged by plus
    assert c.contactor_openings_under_load == (0, 0, 0)
    rig.plant.demand = -100.0
    rig.run(36.0)
    c = rig.state.life.counters
    pack = rig.plant.pack_voltage
    assert c.discharged_ah == pytest.approx(1.0, abs=0.01)
    assert c.discharged_kwh == pytest.approx(pack * 1.0 / 1000, rel=0.01)
    assert c.equivalent_full_cycles(rig.config.pack.capacity_ah) == pytest.approx(
        1.0 / rig.config.pack.capacity_ah, rel=0.01
    )
    assert c.charged_ah == pytest.approx(0.0, abs=1e-3)  # the precharge pulse only
    rig.plant.cell_v[7] = 5.0  # far above any over-voltage fault threshold
    rig.plant.force("cells", "status", "ivt")
    rig.run_until(lambda r: r.state.contactors.state is ContactorState.FAULT, 5.0)
    rig.run_until(lambda r: not any(r.state.contactors.commands), 5.0)
    c = rig.state.life.counters
    assert c.contactor_openings == (1, 1, 1)
    assert c.contactor_openings_under_load == (1, 0, 1)
    assert c.contactor_broken_a_max[0] == pytest.approx(100.0, abs=0.1)
    assert c.contactor_broken_a_sum == c.contactor_broken_a_max
    assert c.faults_latched >= 1
    assert rig.level(Check.CELL_OVERVOLTAGE) >= 3


def test_counters_survive_a_restart_through_the_store_record() -> None:
    rig = Rig(steady_plant_config())
    rig.run(0.5)
    rig.close(Request.DISCHARGE)
    rig.plant.demand = 50.0
    rig.run(10.0)
    saved = rig.controller.persisted(rig.state)
    record = json.loads(json.dumps(saved.to_record()))
    restored = Persisted.from_record(record)
    assert LifeCounters.of(restored) == rig.state.life.counters
    controller = Controller(default_config())
    state = controller.initial_state(100.0, restored)
    assert state.life.counters == rig.state.life.counters
    assert controller.persisted(state).charged_ah == saved.charged_ah > 0.1


def test_a_record_without_life_counters_starts_them_at_zero() -> None:
    old = {"latched": ["cell_overvoltage"], "soc_min": 40.0, "soc_max": 41.0, "soc_mean": 40.5}
    restored = Persisted.from_record(old)
    assert LifeCounters.of(restored) == LifeCounters()
    assert math.isnan(LifeCounters().equivalent_full_cycles(0.0))
    assert replace(LifeCounters(), discharged_ah=250.0).equivalent_full_cycles(100.0) == 2.5
