"""Elcon/TC charger adapter: command layout, stop reactions, termination, status, current split."""

from __future__ import annotations

import cantools
import pytest
from adapter_support import batch, decode_elcon_command, elcon_status, snapshot
from hypothesis import given
from hypothesis import strategies as st

from controller.adapters.base import Level
from controller.adapters.elcon import ElconCharger, ElconConfig
from controller.errors import ConfigError
from controller.frames import FrameBatch
from controller.stage import StageInputs
from dbc import path as dbc_path

EMPTY = FrameBatch.empty()
HW_FAULT, OVER_TEMP, COMM_TIMEOUT = 0x01, 0x02, 0x10


def make(**options: object) -> ElconCharger:
    return ElconCharger.from_config({"max_current": 20.0, **options}, "adapters[1]")


def status(*chargers: tuple[int, int], t: float) -> FrameBatch:
    """Status frames from ``(address, flags)`` pairs."""
    return batch([(0x18FF5000 | a, elcon_status(52.0, 10.0, flags), t) for a, flags in chargers])


def commands(out) -> dict[int, dict[str, float]]:
    """address -> decoded command, checking the 29-bit ID pattern 0x1806xxF4."""
    found = {}
    for frame in out.frames:
        assert frame.is_extended_id and frame.arbitration_id & 0xFFFF00FF == 0x180600F4
        found[frame.arbitration_id >> 8 & 0xFF] = decode_elcon_command(frame.data)
    return found


class Bench:
    """Chargers answering every 1 s; the adapter stepped every 0.1 s in virtual time."""

    def __init__(self, adapter: ElconCharger, addresses=(0xE5,)) -> None:
        self.adapter = adapter
        self.state = adapter.initial_state()
        self.flags = dict.fromkeys(addresses, 0)
        self.silent: set[int] = set()
        self.now = 0.0
        self.k = 0

    def step(self, snap=None, **changes):
        snap = snap if snap is not None else snapshot(**changes)
        answering = [(a, f) for a, f in self.flags.items() if a not in self.silent]
        rx = status(*answering, t=self.now) if self.k % 10 == 0 else EMPTY
        self.state, out = self.adapter.step(self.state, StageInputs(snap, rx), self.now)
        self.k += 1
        self.now = round(self.k * 0.1, 6)
        return out

    def run(self, seconds: float, **changes):
        return [self.step(**changes) for _ in range(round(seconds * 10))]


def test_command_layout_matches_the_published_example():
    adapter = make(max_current=16.0)
    state = adapter.initial_state()
    snap = snapshot(cvl=98.0, ccl=100.0)
    state, _ = adapter.step(state, StageInputs(snap, status((0xE5, 0), t=0.0)), 0.0)
    state, out = adapter.step(state, StageInputs(snap, EMPTY), 1.0)
    (frame,) = out.frames
    assert frame.arbitration_id == 0x1806E5F4 and frame.is_extended_id
    assert frame.data == bytes.fromhex("03D400A000000000")
    db = cantools.database.load_file(str(dbc_path("elcon_charger.dbc")))
    decoded = db.decode_message(0x1806E5F4, frame.data)
    assert decoded["CmdE5_MaxChargeVoltage"] == pytest.approx(98.0)
    assert decoded["CmdE5_MaxChargeCurrent"] == pytest.approx(16.0)


def test_status_frame_decodes_like_the_dbc():
    from controller.adapters.elcon import decode_status

    payload = elcon_status(97.3, 12.4, OVER_TEMP | COMM_TIMEOUT)
    decoded = decode_status(batch([(0x18FF50E7, payload, 3.0)]), (0xE5, 0xE7))[0xE7]
    db = cantools.database.load_file(str(dbc_path("elcon_charger.dbc")))
    ref = db.decode_message(0x18FF50E7, payload)
    assert decoded.voltage == pytest.approx(ref["StE7_OutputVoltage"])
    assert decoded.current == pytest.approx(ref["StE7_OutputCurrent"])
    assert decoded.flags == OVER_TEMP | COMM_TIMEOUT
    assert ref["StE7_OverTemperature"] == 1 and ref["StE7_CommunicationTimeout"] == 1


def test_commands_every_second():
    bench = Bench(make())
    sent = [(bench.now, commands(bench.step())) for _ in range(100)]
    times = [t for t, c in sent if c]
    assert times == pytest.approx([float(s) for s in range(10)])
    running = [c[0xE5] for t, c in sent if c][1:]  # the first goes out before any status
    assert all(c["stop"] == 0 and c["current"] == pytest.approx(20.0) for c in running)
    assert all(c["voltage"] == pytest.approx(54.0) for c in running)


def test_fault_while_charging_stops_in_the_same_cycle():
    bench = Bench(make())
    bench.run(2.35)
    out = bench.step(fault_level=Level.FAULT)
    assert commands(out)[0xE5] == {"voltage": pytest.approx(54.0), "current": 0.0, "stop": 1}
    assert any("stopped: fault level FAULT" in str(e) for e in out.events)
    later = [commands(o) for o in bench.run(3.0, fault_level=Level.FAULT)]
    assert all(c[0xE5]["stop"] == 1 and c[0xE5]["current"] == 0.0 for c in later if c)


def test_stop_level_alarm_is_configurable():
    default = Bench(make())
    default.run(2.35)
    assert commands(default.step(fault_level=Level.ALARM)) == {}  # no change, nothing sent
    strict = Bench(make(stop_level="alarm"))
    strict.run(2.35)
    assert commands(strict.step(fault_level=Level.ALARM))[0xE5]["stop"] == 1


@pytest.mark.parametrize(
    "changes",
    [{"contactors_closed": False}, {"charge_allowed": False}, {"data_valid": False}, {"ccl": 0.0}],
)
def test_pack_not_ready_for_charge_stops_at_once(changes):
    bench = Bench(make())
    bench.run(2.35)
    cmd = commands(bench.step(**changes))[0xE5]
    assert cmd["stop"] == 1 and cmd["current"] == 0.0


def test_termination_at_cvl_is_latched_until_soc_drops():
    bench = Bench(make(termination_current=2.0, termination_delay=5.0, restart_soc=95.0))
    bench.run(3.0, soc=90.0)
    full = {"pack_voltage": 53.8, "cvl": 54.0, "pack_current": 1.5, "soc": 100.0}
    outs = bench.run(4.9, **full)
    assert all(c[0xE5]["stop"] == 0 for c in map(commands, outs) if c)
    out = bench.run(0.2, **full)
    assert any("charge complete" in str(e) for o in out for e in o.events)
    assert any(commands(o).get(0xE5, {}).get("stop") == 1 for o in out)
    # latched: the voltage relaxes and the current is zero, charging does not resume
    relaxed = {"pack_voltage": 52.0, "pack_current": 0.0}
    outs = bench.run(20.0, soc=96.0, **relaxed)
    assert all(c[0xE5]["stop"] == 1 for c in map(commands, outs) if c)
    outs = bench.run(2.0, soc=94.0, **relaxed)
    assert any(commands(o).get(0xE5, {}).get("stop") == 0 for o in outs)
    assert any("charging on" in str(e) for o in outs for e in o.events)


def test_termination_needs_the_current_low_for_the_whole_delay():
    bench = Bench(make(termination_current=2.0, termination_delay=5.0))
    for _ in range(10):
        bench.run(3.0, pack_voltage=54.0, pack_current=1.0)
        bench.run(0.1, pack_voltage=54.0, pack_current=8.0)
    assert bench.state.running == {0xE5}


def test_terminated_charge_restarts_on_a_new_charge_request():
    bench = Bench(make(termination_delay=1.0))
    bench.run(5.0, pack_voltage=54.0, pack_current=0.0, soc=99.0)
    assert bench.state.terminated and not bench.state.running
    bench.run(1.0, contactors_closed=False, soc=99.0)
    bench.run(1.5, soc=99.0)
    assert bench.state.running == {0xE5} and not bench.state.terminated


def test_termination_below_restart_soc_does_not_oscillate():
    bench = Bench(make(termination_delay=1.0, restart_soc=95.0))
    bench.run(5.0, pack_voltage=54.0, pack_current=0.0, soc=93.0)
    assert bench.state.terminated
    bench.run(5.0, soc=92.0)
    assert bench.state.terminated  # less than 5 % below where it ended
    bench.run(1.5, soc=87.5)
    assert bench.state.running == {0xE5}


def test_missing_status_gives_the_charger_nothing_and_the_others_take_over():
    bench = Bench(make(addresses=[0xE5, 0xE7], max_current=30.0), addresses=(0xE5, 0xE7))
    bench.run(2.5, ccl=40.0)
    assert bench.state.running == {0xE5, 0xE7}
    bench.silent.add(0xE7)
    outs = bench.run(6.0, ccl=40.0)  # last E7 status at 2.0 s, timeout 5 s -> at 7.1 s
    missing = [o for o in outs if any("E7 status missing" in str(e) for e in o.events)]
    assert len(missing) == 1
    cmd = commands(missing[0])
    assert cmd[0xE7] == {"voltage": pytest.approx(54.0), "current": 0.0, "stop": 1}
    last = [commands(o) for o in outs if 0xE5 in commands(o)][-1]
    assert last[0xE5]["current"] == pytest.approx(30.0)  # 40 A, capped at the rating
    assert bench.now == pytest.approx(8.5)
    bench.silent.clear()
    outs = bench.run(2.0, ccl=40.0)
    assert any("E7 status received" in str(e) for o in outs for e in o.events)
    assert bench.state.running == {0xE5, 0xE7}


def test_no_status_at_all_stops_charging():
    bench = Bench(make())
    bench.silent.add(0xE5)
    outs = bench.run(10.0)
    assert all(c[0xE5]["stop"] == 1 for c in map(commands, outs) if c)
    assert any("no charger with a valid status" in str(e) for o in outs for e in o.events)


@pytest.mark.parametrize(("bit", "stops"), [(HW_FAULT, True), (COMM_TIMEOUT, True), (0x02, False),
                                            (0x04, False), (0x08, False)])  # fmt: skip
def test_charger_status_bits_are_events_and_faults_stop_that_charger(bit, stops):
    bench = Bench(make(addresses=[0xE5, 0xE8]), addresses=(0xE5, 0xE8))
    bench.run(2.5)
    bench.flags[0xE8] = bit
    outs = bench.run(1.0)
    events = [e for o in outs for e in o.events]
    kind = "fault" if stops else "warning"
    assert sum(f"charger E8 {kind}" in str(e) and str(e).endswith("active") for e in events) == 1
    assert (0xE8 in bench.state.running) is not stops
    sent = [c for c in map(commands, outs) if 0xE8 in c]
    assert sent[-1][0xE8]["stop"] == int(stops)
    bench.flags[0xE8] = 0
    events = [e for o in bench.run(1.5) for e in o.events]
    assert any(str(e).endswith("cleared") for e in events) and 0xE8 in bench.state.running


@given(
    ccl=st.floats(0, 500),
    rating=st.floats(0.1, 200),
    chargers=st.lists(st.sampled_from([0xE5, 0xE7, 0xE8, 0xE9]), min_size=1, max_size=4,
                      unique=True),
    faulty=st.sets(st.sampled_from([0xE5, 0xE7, 0xE8, 0xE9])),
)  # fmt: skip
def test_current_split_never_exceeds_ccl_or_rating(ccl, rating, chargers, faulty):
    adapter = make(addresses=chargers, max_current=rating)
    rx = status(*[(a, HW_FAULT if a in faulty else 0) for a in chargers], t=0.0)
    state, _ = adapter.step(adapter.initial_state(), StageInputs(snapshot(ccl=ccl), rx), 0.0)
    state, out = adapter.step(state, StageInputs(snapshot(ccl=ccl), EMPTY), 1.0)
    cmds = commands(out)
    assert set(cmds) == set(chargers)
    assert sum(c["current"] for c in cmds.values()) <= ccl + 1e-9
    healthy = [a for a in chargers if a not in faulty]
    for a, c in cmds.items():
        assert c["current"] <= rating + 1e-9
        if a in faulty:
            assert c == {"voltage": pytest.approx(54.0), "current": 0.0, "stop": 1}
        elif min(ccl / len(healthy), rating) >= 0.1:
            assert c["current"] >= min(ccl / len(healthy), rating) - 0.1 - 1e-9


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ({}, "adapters[1].max_current"),
        ({"max_current": 10, "addresses": [0xE6]}, "adapters[1].addresses[0]"),
        ({"max_current": 10, "addresses": [0xE5, 0xE5]}, "adapters[1].addresses"),
        ({"max_current": 10, "addresses": []}, "adapters[1].addresses"),
        ({"max_current": 10, "stop_level": "warning"}, "adapters[1].stop_level"),
        ({"max_current": 10, "status_timeout": 0.5}, "adapters[1].status_timeout"),
        ({"max_current": 10, "restart_soc": 101}, "adapters[1].restart_soc"),
    ],
)
def test_config_errors_name_the_key(options, key):
    with pytest.raises(ConfigError) as info:
        ElconConfig.from_table(options, "adapters[1]")
    assert info.value.key == key
