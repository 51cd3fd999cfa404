"""Events fold every element of one transition into one array, and read as one line."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from protection_support import Driver, config, healthy

from controller.adapters.base import Level
from controller.contactors import Cause, Contactor, ContactorEvent, ContactorState, Phase
from controller.diagnosis import Event, shipped
from controller.protection import Check, Protection

CELLS_PER_MODULE = 12


def _pack(modules: int) -> object:
    cells = modules * CELLS_PER_MODULE
    base = healthy()
    v = np.full(cells, 3.7)
    return replace(
        base,
        cell_voltage=v,
        cell_voltage_valid=np.ones(cells, bool),
        cell_voltage_sum=float(v.sum()),
        pack_voltage=float(v.sum()),
        module_age=np.full(modules, 0.05),
    )


def test_a_silent_module_is_one_event_listing_its_cells() -> None:
    inputs = _pack(4)
    d = Driver(Protection(config()))
    d.run(inputs, 0.1)
    valid = inputs.cell_voltage_valid.copy()
    valid[12:24] = False
    d.run(replace(inputs, cell_voltage_valid=valid, all_cells_valid=False), 3.0)
    sets = [e for e in d.events if e.diagnosis == Check.INVALID_MEASUREMENT and e.kind == "set"]
    assert [e.level for e in sets] == sorted(e.level for e in sets)  # warning before fault
    for event in sets:
        assert event.element_kind == "cell"
        assert event.elements.tolist() == list(range(12, 24))
    assert len({e.level for e in sets}) == len(sets), "one event per level, not per cell"


def test_set_and_clear_come_in_order_with_the_same_elements() -> None:
    inputs = _pack(2)
    d = Driver(Protection(config()))
    v = inputs.cell_voltage.copy()
    v[[0, 1, 2, 7]] = 4.25
    d.run(replace(inputs, cell_voltage=v), 3.0)
    d.run(inputs, 5.0, reset=True)
    ov = [e for e in d.events if e.diagnosis == Check.CELL_OVERVOLTAGE]
    kinds = [e.kind for e in ov]
    assert kinds.index("cleared") > kinds.index("set")
    assert {tuple(e.elements.tolist()) for e in ov} == {(0, 1, 2, 7)}
    assert all(e.value == 4.25 or e.kind == "cleared" for e in ov)


def test_event_line_names_element_ranges_and_count() -> None:
    elements = np.r_[0:12, 36:48]
    event = Event(1.0, "invalid_measurement", Level.FAULT, "set", 1.0, None, elements, "cell")
    assert str(event) == "invalid_measurement fault set cells 0-11, 36-47 (24): value 1"
    assert event.count == 24
    pack = Event(1.0, "ems_timeout", Level.WARNING, "cleared", 0.05, 0.105)
    assert str(pack) == "ems_timeout warning cleared: value 0.05 (threshold 0.105)"


def test_a_line_for_a_whole_pack_lost_stays_short() -> None:
    elements = np.arange(0, 200_000, 2)
    line = str(Event(0.0, "invalid_measurement", Level.WARNING, "set", 1.0, None, elements, "cell"))
    assert line.endswith("... (100000): value 1") and len(line) < 200


def test_contactor_transitions_become_catalogue_events() -> None:
    welded = ContactorEvent(
        2.0,
        ContactorState.CLOSED_CHARGE,
        ContactorState.FAULT,
        Phase.IDLE,
        Cause.WELDED,
        Contactor.PLUS,
    ).event()
    assert (welded.diagnosis, welded.level, welded.kind) == ("contactor_welded", Level.FAULT, "set")
    assert welded.elements.tolist() == [Contactor.PLUS] and welded.element_kind == "contactor"
    assert str(welded) == (
        "contactor_welded fault set contactor 2: CLOSED_CHARGE -> FAULT/idle: welded (plus)"
    )
    step = ContactorEvent(
        0.01, ContactorState.STANDBY, ContactorState.PRECHARGE, Phase.CONNECTING, Cause.REQUEST
    ).event()
    assert (step.diagnosis, step.level, step.elements) == ("contactor_sequence", Level.OK, None)
    assert str(step) == "contactor_sequence info set: STANDBY -> PRECHARGE/connecting: request"


def test_every_contactor_cause_maps_to_a_catalogue_entry() -> None:
    cat = shipped()
    for cause in Cause:
        event = ContactorEvent(
            0.0, ContactorState.STANDBY, ContactorState.FAULT, Phase.IDLE, cause
        ).event()
        assert event.diagnosis in cat
        assert event.level is cat[event.diagnosis].severity.level
