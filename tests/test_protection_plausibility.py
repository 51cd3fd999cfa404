"""Plausibility checks driven directly: the SOC check, the pack voltage against the
sensors' accuracy, and per-cell checks over a large pack (whole arrays, one element found)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from protection_support import Driver, config, healthy

from controller.adapters.base import Level
from controller.protection import Check, Protection, ProtectionInputs

CFG = config("nmc")


def _levels(driver: Driver, check: Check) -> list[tuple[Level, str, float]]:
    return [(e.level, e.kind, e.time) for e in driver.events if e.diagnosis == check.value]


def test_soc_disagreement_is_judged_when_a_rest_gives_a_new_ocv_reading() -> None:
    d = Driver(Protection(CFG))
    counted = replace(healthy(-30.0), soc=60.0)
    d.run(counted, 1.0)
    d.run(replace(healthy(), soc=60.0), 1.0)  # at rest, before the rest time: still counted
    assert _levels(d, Check.SOC_OCV_DISAGREEMENT) == []
    d.run(replace(healthy(), soc=47.0, soc_rested=True), 1.0)  # the OCV says 47 %
    levels = CFG.checks[Check.SOC_OCV_DISAGREEMENT].levels
    expected = [lv for lv, cfg in levels.items() if cfg.threshold < 13.0]
    assert [(lv, kind) for lv, kind, _ in _levels(d, Check.SOC_OCV_DISAGREEMENT)] == [
        (lv, "set") for lv in expected
    ]
    times = {round(t, 6) for *_, t in _levels(d, Check.SOC_OCV_DISAGREEMENT)}
    assert times == {2.01}  # at the first rested reading: set_delay_ms = 0


def test_the_first_ocv_reading_and_an_agreeing_one_raise_nothing() -> None:
    d = Driver(Protection(CFG))
    d.run(replace(healthy(), soc=50.0, soc_rested=True), 1.0)  # power-up: nothing counted
    d.run(replace(healthy(-30.0), soc=49.0), 1.0)
    d.run(replace(healthy(), soc=47.0, soc_rested=True), 1.0)  # 2 %: within the warning
    assert _levels(d, Check.SOC_OCV_DISAGREEMENT) == []


def _pack(n: int, modules: int, current: float = 0.0) -> ProtectionInputs:
    v = np.full(n, 3.7) + 0.002 * np.sin(np.arange(n))  # a healthy scatter of 2 mV
    base = healthy(current)
    return replace(
        base,
        cell_voltage=v,
        cell_voltage_valid=np.ones(n, bool),
        cell_temperature=np.full(modules * 2, 25.0),
        cell_temperature_valid=np.ones(modules * 2, bool),
        pack_voltage=float(v.sum()),
        cell_voltage_sum=float(v.sum()),
        module_age=np.full(modules, 0.05),
    )


def test_pack_voltage_against_the_sum_sets_at_the_accuracy_multiples() -> None:
    inputs = _pack(96, 8)
    model = CFG.plausibility
    accuracy = (
        96 * model.cell_voltage_accuracy_v
        + model.pack_voltage_accuracy_v
        + model.pack_voltage_accuracy_fraction * inputs.cell_voltage_sum
    )
    for off, worst in ((0.9, None), (1.5, Level.WARNING), (2.5, Level.FAULT)):
        d = Driver(Protection(CFG))
        d.run(replace(inputs, pack_voltage=inputs.cell_voltage_sum + off * accuracy), 2.0)
        assert d.state.levels[Check.PACK_VOLTAGE_PLAUSIBILITY] is (worst or Level.OK)


def test_one_offset_cell_in_ten_thousand_is_found_at_rest_and_only_it() -> None:
    n, modules, cell = 10_000, 625, 4_321
    d = Driver(Protection(CFG))
    inputs = _pack(n, modules)
    v = inputs.cell_voltage.copy()
    v[cell] -= 0.08
    bad = replace(inputs, cell_voltage=v, cell_voltage_sum=float(v.sum()))
    settle, delay = CFG.plausibility.rest_settle_s, 5.0
    d.run(bad, settle + delay + 0.5)
    events = [e for e in d.events if e.diagnosis == Check.CELL_VOLTAGE_DEVIATION.value]
    assert {e.level for e in events} == {Level.WARNING, Level.ALARM}
    assert all(e.elements.tolist() == [cell] for e in events)
    assert all(settle + delay <= e.time <= settle + delay + 0.12 for e in events)
