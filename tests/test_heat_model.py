"""Every temperature sensor of the pack stuck: the neighbours predict nothing, the cells' own
heat does. Closed loop in virtual time with the fast thermal plant of
`hil.scenarios.plausibility` and the heat model configured to it."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from controller.adapters.base import Level
from controller.core import Controller
from hil.scenarios.plausibility import THERMAL_FACTOR, PlausibilityRun, demand, request
from hil.scenarios.session import Action, demo_config
from slaves.chemistry import NMC
from slaves.ems import EmsRequest
from slaves.faults import SensorStuck
from slaves.thermal import ThermalParams

MODULES, CELLS, SENSORS = 8, 12, 4
INJECT, STEP = 2.0, 12.0
# the plant's module: its cells and housing over the fast plant's factor, and its conductance
PLANT_C = (CELLS * NMC.heat_capacity_j_per_k + ThermalParams().extra_heat_capacity_j_per_k) / (
    THERMAL_FACTOR
)
PLANT_TAU = PLANT_C / ThermalParams().conductance_w_per_k


def _controller() -> Controller:
    """The heat model set on the safe side: capacity 20 % above, time constant 20 % below."""
    config = demo_config()
    model = replace(
        config.protection.plausibility,
        module_heat_capacity_j_per_k=1.2 * PLANT_C,
        module_time_constant_s=0.8 * PLANT_TAU,
        thermal_rest_s=0.5,  # the plant starts at its coolant's temperature
    )
    return Controller(replace(config, protection=replace(config.protection, plausibility=model)))


def _run(stuck: bool) -> PlausibilityRun:
    actions = [
        Action(0.0, "standby with reset", request(EmsRequest.STANDBY, True)),
        Action(1.0, "discharge", request(EmsRequest.DISCHARGE)),
        Action(3.0, "50 A", demand(50.0)),
        Action(STEP, "150 A", demand(150.0)),
    ]
    if stuck:
        actions += [
            Action(INJECT, f"module {m} sensors stuck", _stick(m), True) for m in range(MODULES)
        ]
    with PlausibilityRun(actions, 60.0, controller=_controller()) as run:
        run.run()
    return run


def _stick(module: int):
    def apply(system, _) -> None:
        system.faults.inject(SensorStuck(module))

    return apply


@pytest.mark.parametrize("stuck", [True, False], ids=["all-stuck", "healthy"])
def test_every_sensor_stuck_is_found_by_the_heat_model_and_a_healthy_pack_is_not(stuck) -> None:
    run = _run(stuck)
    detected = run.set_at("temperature_stuck", Level.FAULT)
    if not stuck:
        assert run.set_at("temperature_stuck", Level.WARNING) is None
        return
    assert detected is not None and detected > STEP
    assert run.elements["temperature_stuck"] == set(range(MODULES * SENSORS))
    t = np.asarray(run.times)
    temp = np.asarray(run.module_temperature)
    rise = temp[t.searchsorted(detected)] - temp[t.searchsorted(INJECT)]
    threshold = demo_config().protection.checks["temperature_stuck"].levels[Level.FAULT].threshold
    assert rise.min() >= threshold  # the model stays below the true rise ...
    assert rise.max() < 2.5 * threshold  # ... and finds it before the modules ran far away
