"""The assembly built from one configuration: buses, stages and their load-time checks.

A combination that cannot work (a stage on a bus that is not configured, two senders of one
identifier on one bus) must fail when the configuration is loaded, naming the key; a stage
that raises in a cycle must end in the safe state without stopping the others; the CiA 418
node configured by ``[canopen]`` must run inside the assembly, as every other stage does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cantools
import numpy as np
import pytest
from core_support import Rig

from controller.adapters.base import Level
from controller.config.loader import parse_config
from controller.contactors import ContactorState, Request
from controller.core import Controller
from controller.errors import ConfigError
from controller.frames import FrameBatch, frame_key
from controller.protection import Check
from controller.stage import StageInputs, StageOutput, Traffic
from controller.traffic import check_traffic
from dbc import path as dbc_path

MASTER = cantools.database.load_file(str(dbc_path("canbms_master.dbc")))
ELCON_COMMAND_E5 = 0x1806E5F4


@dataclass
class FakeStage:
    """A stage that only declares its traffic."""

    name: str
    bus: str
    produces: frozenset[int] = frozenset()
    consumes: frozenset[int] = frozenset()

    @property
    def traffic(self) -> Traffic:
        return Traffic(consumes=self.consumes, produces=self.produces)

    def initial_state(self) -> Any:
        return None

    def step(self, state: Any, inputs: StageInputs, now: float) -> tuple[Any, StageOutput]:
        return state, StageOutput()


def test_an_adapter_on_a_bus_that_is_not_configured_is_refused_at_load() -> None:
    with pytest.raises(ConfigError, match=r"^adapters\[0\]\.bus: 'charger' is not a configured"):
        Controller(parse_config({"adapters": [{"type": "elcon", "max_current": 10}]}))


def test_a_named_bus_carries_its_stage() -> None:
    config = parse_config(
        {
            "buses": {"internal": {}, "vehicle": {}, "charger": {"channel": "charger-0"}},
            "adapters": [{"type": "elcon", "max_current": 10}],
        }
    )
    controller = Controller(config)
    result = controller.step(controller.initial_state(0.0), FrameBatch.empty(), 1.0)
    commands = [f for f in result.frames if f.arbitration_id == ELCON_COMMAND_E5]
    assert [f.bus for f in commands] == ["charger"]


def test_two_senders_of_one_identifier_on_one_bus_are_refused() -> None:
    first = FakeStage("first", "vehicle", produces=frozenset({0x351}))
    second = FakeStage("second", "vehicle", produces=frozenset({0x351}))
    elsewhere = FakeStage("third", "inverter", produces=frozenset({0x351}))
    check_traffic(("vehicle", "inverter"), {}, [("a[0]", first), ("a[2]", elsewhere)])
    with pytest.raises(ConfigError, match=r"^a\[1\]\.bus: 'second' and 'first' would both send"):
        check_traffic(("vehicle",), {}, [("a[0]", first), ("a[1]", second)])


def test_a_stage_may_not_send_or_read_what_the_core_sends() -> None:
    status = frame_key(MASTER.get_message_by_name("BMS_Status").frame_id, False)
    core = {"vehicle": frozenset({status})}
    sender = FakeStage("sender", "vehicle", produces=frozenset({status}))
    reader = FakeStage("reader", "vehicle", consumes=frozenset({status}))
    with pytest.raises(ConfigError, match="'sender' and 'the BMS core' would both send"):
        check_traffic(("vehicle",), core, [("canopen", sender)])
    with pytest.raises(ConfigError, match=r"^canopen\.bus: 'reader' reads 0x"):
        check_traffic(("vehicle",), core, [("canopen", reader)])


def test_a_stage_that_raises_latches_the_safe_state_until_a_reset() -> None:
    config = parse_config(
        {"adapters": [{"type": "canbms_inverter", "bus": "vehicle", "variant": "victron"}]}
    )
    rig = Rig(config)
    rig.close(Request.DISCHARGE)
    stage = rig.controller.stages[0]
    healthy_step = stage.step

    def broken(*_: object) -> Any:
        raise ZeroDivisionError("defect")

    stage.step = broken  # type: ignore[method-assign]
    failed = rig.step()
    assert failed.state.published.ccl == 0.0 and failed.state.published.dcl == 0.0
    assert any("stage 'canbms_inverter' failed: ZeroDivisionError" in str(e) for e in failed.events)
    assert not any(f.arbitration_id == 0x351 for f in failed.frames)
    limits = MASTER.get_message_by_name("BMS_Limits")
    sent: list[dict[str, float]] = []
    for _ in range(20):  # 0.2 s: the core's own frames go on while the stage keeps failing
        result = rig.step()
        sent += [
            limits.decode(f.data) for f in result.frames if f.arbitration_id == limits.frame_id
        ]
    assert sent and all(m["BMS_ChargeCurrentLimit"] == 0 for m in sent)
    assert all(m["BMS_DischargeCurrentLimit"] == 0 for m in sent)
    assert not any(rig.state.contactors.commands), "contactors commanded open"

    stage.step = healthy_step  # type: ignore[method-assign]
    rig.run_until(lambda r: not any(r.state.contactors.commands), 1.0)
    rig.run(1.0)
    assert rig.state.failed_stages == {"canbms_inverter"}, "latched while the stage works again"
    assert rig.state.published.dcl == 0.0

    rig.plant.request, rig.plant.reset = Request.STANDBY, True
    rig.run_until(lambda r: not r.state.failed_stages, 1.0)
    rig.run_until(lambda r: r.state.contactors.state is ContactorState.STANDBY, 1.0)


def test_the_canopen_node_boots_and_beats_inside_the_assembly() -> None:
    config = parse_config({"canopen": {"node_id": 5, "heartbeat_ms": 200}})
    controller = Controller(config)
    assert [stage.name for stage in controller.stages] == ["canopen"]
    state = controller.initial_state(0.0)
    sent: list[tuple[float, int, bytes, str]] = []
    for k in range(1, 101):  # one second of 10 ms steps, no frames received
        now = k * config.cycle_s
        result = controller.step(state, FrameBatch.empty(), now)
        state = result.state
        sent += [(now, f.arbitration_id, f.data, f.bus) for f in result.frames]
    node = [(t, data) for t, i, data, bus in sent if i == 0x705 and bus == "vehicle"]
    assert node[0] == (0.01, b"\x00"), "boot-up first"
    beats = [t for t, data in node[1:] if data == b"\x05"]  # OPERATIONAL (self start)
    assert beats and beats[0] <= 0.01 + 0.2 + 1e-9
    assert np.allclose(np.diff(beats), 0.2)
    assert any(i == 0x185 for _, i, _, _ in sent), "TPDO1 on its default COB-ID"


def test_an_sdo_request_on_the_vehicle_bus_is_answered_in_the_same_step() -> None:
    controller = Controller(parse_config({"canopen": {"node_id": 1}}))
    state = controller.initial_state(0.0)
    state = controller.step(state, FrameBatch.empty(), 0.01).state
    upload_1017 = bytes([0x40, 0x17, 0x10, 0x00, 0, 0, 0, 0])  # read the heartbeat time
    request = FrameBatch(
        ids=np.array([0x601], np.uint32),
        dlc=np.array([8], np.uint8),
        data=np.pad(np.frombuffer(upload_1017, np.uint8), (0, 56))[None, :],
        timestamps=np.array([0.02]),
        bus_names=("vehicle",),
    )
    result = controller.step(state, request, 0.02)
    (answer,) = [f for f in result.frames if f.arbitration_id == 0x581]
    assert answer.bus == "vehicle"
    assert answer.data[0] == 0x4B and int.from_bytes(answer.data[4:6], "little") == 500
    on_internal = FrameBatch(**{**request.__dict__, "bus_names": ("internal",)})
    elsewhere = controller.step(result.state, on_internal.restamped(np.array([0.03])), 0.03)
    assert not any(f.arbitration_id == 0x581 for f in elsewhere.frames), "not the node's bus"


def test_frames_keep_their_bus_name_through_concatenation() -> None:
    def one(bus: str, frame_id: int) -> FrameBatch:
        return FrameBatch(
            ids=np.array([frame_id], np.uint32),
            dlc=np.array([1], np.uint8),
            data=np.zeros((1, 64), np.uint8),
            timestamps=np.zeros(1),
            bus_names=(bus,),
        )

    batch = FrameBatch.concatenate([one("vehicle", 1), one("internal", 2), one("vehicle", 3)])
    assert batch.on("vehicle").ids.tolist() == [1, 3]
    assert batch.on("internal").ids.tolist() == [2]
    assert batch.on("charger").ids.tolist() == []


def _slaves_without_balancing_command() -> cantools.database.can.Database:
    full = cantools.database.load_file(str(dbc_path("canbms_slaves.dbc")))
    kept = [m for m in full.messages if not m.name.startswith("BalancingCommand")]
    return cantools.database.can.Database(messages=kept, strict=False)


def test_a_slave_dbc_without_a_balancing_command_needs_balancing_disabled() -> None:
    slaves = _slaves_without_balancing_command()
    with pytest.raises(ConfigError, match=r"^balancing\.enabled: the slave DBC has no Balancing"):
        Controller(parse_config({}), slaves_db=slaves)
    controller = Controller(parse_config({"balancing": {"enabled": False}}), slaves_db=slaves)
    state = controller.initial_state(0.0)
    for k in range(1, 101):
        result = controller.step(state, FrameBatch.empty(), k * 0.01)
        state = result.state
        assert not any(0x140 <= f.arbitration_id < 0x180 for f in result.frames)


@pytest.mark.parametrize("set_delay_ms", [None, 500])
def test_a_silent_source_is_diagnosed_after_its_catalogue_delay(set_delay_ms) -> None:  # noqa: ANN001
    overrides = {} if set_delay_ms is None else {"source_silent": {"set_delay_ms": set_delay_ms}}
    config = parse_config({"diagnosis": overrides})
    delay = config.diagnosis["source_silent"].set_delay_ms / 1000
    rig = Rig(config)
    rig.run(2.0)
    rig.plant.silent.add("M03")
    silent_from = rig.now  # the last frames of M03 went out in the step before
    found = []
    while not found:
        found = [e for e in rig.step().events if e.diagnosis == "source_silent"]
        assert rig.now < silent_from + 5.0, "never diagnosed"
    (event,) = found
    assert event.kind == "set" and event.element_kind == "source"
    assert "M03" in str(event)
    assert silent_from + delay - 0.2 <= rig.now <= silent_from + delay + 0.05


def test_a_protection_check_is_not_switched_off_through_the_catalogue() -> None:
    with pytest.raises(ConfigError, match=r"^diagnosis\.cell_overvoltage\.enabled: this is set in"):
        parse_config({"diagnosis": {"cell_overvoltage": {"enabled": False}}})


def _late_request_warnings(rig: Rig) -> int:
    """Warnings set over 12 s of EMS requests each 20 ms late."""
    rig.run(4.0)  # past the startup
    rig.plant.force("ems")
    rig.step()  # the gaps below are counted from this request
    warnings = 0
    for _ in range(100):
        late_by = 2  # cycles of 10 ms
        for step in range(10 + late_by):
            if step == 0:
                rig.plant.silent.add("ems")
            if step == 9 + late_by:
                rig.plant.silent.discard("ems")
                rig.plant.force("ems")
            events = rig.step().events
            warnings += sum(e.diagnosis == "ems_timeout" and e.kind == "set" for e in events)
    return warnings


def test_ems_requests_a_little_late_raise_no_warning_storm() -> None:
    rig = Rig()
    assert _late_request_warnings(rig) == 0
    rig.plant.silent.add("ems")  # gone for real: warned at once, then the fault
    rig.run_until(lambda r: r.state.protection.levels[Check.EMS_TIMEOUT] >= Level.WARNING, 0.2)
    twitchy = {"threshold": 0.105, "clear_delay_ms": 0, "hysteresis": 0.0}
    config = parse_config({"protection": {"ems_timeout": {"warning": twitchy}}})
    assert _late_request_warnings(Rig(config)) >= 90, "without hysteresis: a line per request"
