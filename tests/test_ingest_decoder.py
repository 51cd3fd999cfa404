"""Batch decoder: values land in the right elements, bad frames never change state."""

from __future__ import annotations

from pathlib import Path

import cantools
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from ingest_support import batch, cell_voltage_frames, encode, slave_decoder

from controller.errors import MappingError
from controller.ingest import RejectReason, compile_decoder, load_mapping
from dbc import e2e
from dbc.topology import Topology

TOPO = Topology()  # 8 modules x 12 cells x 4 sensors, classic CAN
FD_TOPO = Topology(modules=3, cells_per_module=40, sensors_per_module=35, fd=True)
DB, DECODER = slave_decoder(TOPO)


def _volts(rng: np.random.Generator, n: int, lsb: float = 0.0002) -> np.ndarray:
    return np.round(rng.uniform(2.5, 4.3, n) / lsb) * lsb


@pytest.mark.parametrize("topology", [TOPO, FD_TOPO], ids=["classic", "fd"])
def test_cell_voltages_land_at_module_times_cells_plus_cell(topology: Topology) -> None:
    db, decoder = slave_decoder(topology) if topology is not TOPO else (DB, DECODER)
    rng = np.random.default_rng(1)
    lsb = 0.0004 if topology.fd else 0.0002
    volts = _volts(rng, topology.n_cells, lsb)
    invalid = rng.random(topology.n_cells) < 0.2
    state = decoder.new_state()
    report = decoder.decode(
        batch(cell_voltage_frames(db, topology, volts, invalid, {}, 5.0)), state
    )
    cells = state.measurements["cell_voltage"]
    assert report.updated == topology.n_cells
    np.testing.assert_allclose(cells.value, volts, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(cells.reported_valid, ~invalid)  # value kept for diagnosis
    np.testing.assert_array_equal(cells.updated_at, 5.0)


def test_temperatures_and_module_status_land_per_module() -> None:
    rng = np.random.default_rng(2)
    temps = np.round(rng.uniform(-40, 90, TOPO.n_sensors), 1)
    frames, counters = [], {}
    for m in range(TOPO.modules):
        message = DB.get_message_by_name(f"Temperatures_M{m:02}")
        for g in range(TOPO.temperature_groups):
            values = {f"Temperatures_M{m:02}_Mux": g}
            for s in range(g * 3, min(g * 3 + 3, TOPO.sensors_per_module)):
                values[f"M{m:02}_Temp{s:02}"] = temps[m * TOPO.sensors_per_module + s]
            frames.append((message.frame_id, encode(message, values, g), 1.0))
        status = DB.get_message_by_name(f"ModuleStatus_M{m:02}")
        values = {
            f"M{m:02}_ModuleVoltage": 40.0 + m,
            f"M{m:02}_BoardTemperature": -5 - m,
            f"M{m:02}_AdcFault": m % 2,
        }
        frames.append((status.frame_id, encode(status, values, counters.get(m, 0)), 1.0))
    state = DECODER.new_state()
    DECODER.decode(batch(frames), state)
    meas = state.measurements
    np.testing.assert_allclose(meas["cell_temperature"].value, temps, atol=1e-9)
    np.testing.assert_allclose(meas["module_voltage"].value, 40.0 + np.arange(8), atol=1e-9)
    np.testing.assert_array_equal(meas["board_temperature"].value, -5 - np.arange(8))
    np.testing.assert_array_equal(meas["module_adc_fault"].value, np.arange(8) % 2)
    assert meas["module_open_wire"].valid(1.0, 0.5).all()


def test_foxbms_afe_stream_through_its_mapping(corpus_dir: Path) -> None:
    db = cantools.database.load_file(corpus_dir / "foxbms.dbc", strict=False)
    cells, sensors = 96, 30
    decoder = compile_decoder(
        db, load_mapping("foxbms_afe"), {"cell_voltage": cells, "cell_temperature": sensors}
    )
    rng = np.random.default_rng(3)
    mv = rng.integers(2000, 4300, cells)
    bad = rng.random(cells) < 0.25
    degc = rng.integers(-40, 100, sensors)
    volt_msg = db.get_message_by_name("AFE_CellVoltages")
    temp_msg = db.get_message_by_name("AFE_CellTemperatures")
    frames = []
    for g in range(cells // 4):
        values = {"AFE_CellVoltages_Mux": g}
        for c in range(4 * g, 4 * g + 4):
            values[f"CellVoltage_{c:03}"] = int(mv[c])
            values[f"CellVoltage_{c:03}_invalidFlag"] = int(bad[c])
        frames.append((volt_msg.frame_id, volt_msg.encode(values), 0.1 * g))
    for g in range(sensors // 6):
        values = {"AFE_CellTemperatures_Mux": g}
        values.update({f"CellTemperature_{s:03}": int(degc[s]) for s in range(6 * g, 6 * g + 6)})
        values.update({f"CellTemperature_{s:03}_invalidFlag": 0 for s in range(6 * g, 6 * g + 6)})
        frames.append((temp_msg.frame_id, temp_msg.encode(values), 2.0))
    state = decoder.new_state()
    report = decoder.decode(batch(frames), state)
    meas = state.measurements
    np.testing.assert_allclose(meas["cell_voltage"].value, mv / 1000.0, atol=1e-12)
    np.testing.assert_array_equal(meas["cell_voltage"].reported_valid, ~bad)
    np.testing.assert_array_equal(meas["cell_temperature"].value, degc)
    assert report.accepted[decoder.sources.index("afe")] == len(frames)


def _reasons(report) -> dict[RejectReason, int]:
    return {r: report.rejected_for(r) for r in RejectReason if report.rejected_for(r)}


def test_unknown_ids_are_counted_and_ignored() -> None:
    state = DECODER.new_state()
    frames = [(0x7FF, bytes(8), 1.0), (0x123, bytes(3), 1.0)]
    report = DECODER.decode(batch(frames), state)
    assert (report.unknown, state.unknown) == (2, 2)
    assert report.updated == 0 and not report.accepted.any()
    assert np.isneginf(state.measurements.updated_at).all()


def test_wrong_dlc_bad_crc_and_unknown_mux_are_rejected_per_source() -> None:
    message = DB.get_message_by_name("CellVoltages_M03")
    good = encode(message, {"CellVoltages_M03_Mux": 0}, 0)
    flipped = bytearray(good)
    flipped[4] ^= 0x10
    bad_mux = bytearray(good)
    bad_mux[1] |= 0xF0  # group 15 does not exist for 12 cells
    bad_mux[0] = e2e.crc8(message.frame_id, bad_mux)
    frames = [
        (message.frame_id, good[:7], 1.0),
        (message.frame_id, bytes(flipped), 1.0),
        (message.frame_id, bytes(bad_mux), 1.0),
    ]
    state = DECODER.new_state()
    report = DECODER.decode(batch(frames), state)
    m3 = DECODER.sources.index("M03")
    expected = {RejectReason.DLC: 1, RejectReason.CRC: 1, RejectReason.UNKNOWN_MUX: 1}
    assert _reasons(report) == expected
    assert report.rejected[m3].sum() == 3 and report.rejected.sum() == 3
    assert report.updated == 0 and np.isneginf(state.measurements.updated_at).all()


def test_counter_drops_repeats_and_late_copies_and_resumes_after_a_loss() -> None:
    message = DB.get_message_by_name("ModuleStatus_M01")
    # ok, +1, repeated, late copy, +1, +3 (two lost: wrong sequence), +1 (resumes), over the
    # wrap of 0..14
    counters = [5, 6, 6, 4, 7, 10, 11, 12, 13, 14, 0]
    verdict = [None, None, "R", "L", None, "W", None, None, None, None, None]
    frames = [
        (message.frame_id, encode(message, {"M01_ModuleVoltage": float(i)}, c), 0.1 * i)
        for i, c in enumerate(counters)
    ]
    expected = {
        RejectReason.COUNTER_FROZEN: 1,
        RejectReason.COUNTER_OUT_OF_ORDER: 1,
        RejectReason.COUNTER_JUMP: 1,
    }
    state = DECODER.new_state()
    order = np.random.default_rng(4).permutation(len(frames))  # arrival order is irrelevant
    report = DECODER.decode(batch([frames[i] for i in order]), state)
    assert _reasons(report) == expected
    assert report.accepted.sum() == verdict.count(None)
    assert state.measurements["module_voltage"].value[1] == 10.0  # the newest frame
    # Split over two batches: the same verdicts.
    state = DECODER.new_state()
    first = DECODER.decode(batch(frames[:4]), state)
    second = DECODER.decode(batch(frames[4:]), state)
    assert _reasons(first) == {RejectReason.COUNTER_FROZEN: 1, RejectReason.COUNTER_OUT_OF_ORDER: 1}
    assert _reasons(second) == {RejectReason.COUNTER_JUMP: 1}


def test_an_injected_late_copy_costs_one_frame_and_no_genuine_one() -> None:
    message = DB.get_message_by_name("CellVoltages_M02")
    genuine = [
        (message.frame_id, encode(message, {"CellVoltages_M02_Mux": i % 4}, i), 0.025 * i)
        for i in range(40)
    ]
    copy = (genuine[17][0], genuine[17][1], genuine[19][2] + 0.001)  # replayed two frames late
    state = DECODER.new_state()
    report = DECODER.decode(batch(genuine + [copy]), state)
    assert report.accepted.sum() == len(genuine)
    assert _reasons(report) == {RejectReason.COUNTER_OUT_OF_ORDER: 1}


@st.composite
def _streams(draw):
    """Good frames of 2 modules plus corrupted ones, split into random batches."""
    n_frames = draw(st.integers(1, 24))
    good, corrupted, kinds = [], [], []
    counters: dict[int, int] = {}
    t = 0.0
    for _ in range(n_frames):
        m = draw(st.integers(0, 1))
        g = draw(st.integers(0, TOPO.voltage_groups - 1))
        message = DB.get_message_by_name(f"CellVoltages_M{m:02}")
        values = {f"CellVoltages_M{m:02}_Mux": g}
        for c in range(3 * g, 3 * g + 3):
            values[f"M{m:02}_Cell{c:02}_Voltage"] = draw(st.integers(0, 30000)) * 0.0002
            values[f"M{m:02}_Cell{c:02}_Invalid"] = draw(st.integers(0, 1))
        seen = message.frame_id in counters
        count = counters.get(message.frame_id, draw(st.integers(0, 14))) + (1 if seen else 0)
        counters[message.frame_id] = count
        t += draw(st.sampled_from([0.002, 0.01, 0.05]))  # a bus never stamps two frames alike
        payload = encode(message, values, count)
        good.append((message.frame_id, payload, t))
        kind = draw(st.sampled_from(["none", "dlc", "crc", "frozen", "jump", "late"]))
        t_bad = t + 0.001  # before the next good frame
        if kind == "dlc":
            corrupted.append((message.frame_id, payload[: draw(st.integers(0, 7))], t_bad))
        elif kind == "crc":
            flipped = bytearray(payload)
            bit = draw(st.integers(0, 63))
            flipped[bit // 8] ^= 1 << (bit % 8)
            corrupted.append((message.frame_id, bytes(flipped), t_bad))
        elif kind == "frozen":
            corrupted.append((message.frame_id, encode(message, values, count), t_bad))
        elif kind == "jump":  # ahead of the good frame, not in sequence with it
            jump = count + draw(st.integers(2, 7))
            corrupted.append((message.frame_id, encode(message, values, jump), t_bad))
        elif kind == "late":  # a copy of an older frame
            late = count - draw(st.integers(1, 7))
            corrupted.append((message.frame_id, encode(message, values, late), t_bad))
        if kind != "none":
            kinds.append(kind)
    frames = good + corrupted
    order = draw(st.permutations(range(len(frames))))
    cuts = sorted(draw(st.lists(st.integers(0, len(frames)), max_size=3)))
    return good, [frames[i] for i in order], cuts, kinds


@given(_streams())
def test_corrupted_frames_never_change_state(stream) -> None:
    good, mixed, cuts, kinds = stream
    reference = DECODER.new_state()
    DECODER.decode(batch(good), reference)
    state = DECODER.new_state()
    # Counters are checked in time order, so a batch boundary must not reorder time:
    # cut the time-sorted stream, then shuffle inside each batch.
    mixed = sorted(mixed, key=lambda f: f[2])
    totals = dict.fromkeys(RejectReason, 0)
    for part in np.split(np.arange(len(mixed)), cuts):
        report = DECODER.decode(batch([mixed[i] for i in part[::-1]]), state)
        for reason in RejectReason:
            totals[reason] += report.rejected_for(reason)
    for name in state.measurements:
        a, b = state.measurements[name], reference.measurements[name]
        np.testing.assert_array_equal(a.updated_at, b.updated_at)
        np.testing.assert_array_equal(a.reported_valid, b.reported_valid)
        np.testing.assert_array_equal(a.value, b.value)
    assert sum(totals.values()) == len(kinds)
    assert totals[RejectReason.COUNTER_JUMP] == kinds.count("jump")
    assert totals[RejectReason.COUNTER_FROZEN] == kinds.count("frozen")
    assert totals[RejectReason.COUNTER_OUT_OF_ORDER] == kinds.count("late")
    assert totals[RejectReason.DLC] == kinds.count("dlc")
    assert totals[RejectReason.CRC] == kinds.count("crc")


def test_latest_timestamp_wins_within_and_across_batches() -> None:
    message = DB.get_message_by_name("ModuleStatus_M00")
    newer = (message.frame_id, encode(message, {"M00_ModuleVoltage": 44.0}, 2), 2.0)
    older = (message.frame_id, encode(message, {"M00_ModuleVoltage": 41.0}, 1), 1.0)
    state = DECODER.new_state()
    DECODER.decode(batch([newer, older]), state)
    voltage = state.measurements["module_voltage"]
    assert (voltage.value[0], voltage.updated_at[0]) == (44.0, 2.0)
    late = (message.frame_id, encode(message, {"M00_ModuleVoltage": 40.0}, 3), 1.5)
    DECODER.decode(batch([late]), state)  # accepted frame, but older than what we hold
    assert (voltage.value[0], voltage.updated_at[0]) == (44.0, 2.0)


def test_stale_values_are_invalid() -> None:
    rng = np.random.default_rng(5)
    volts = _volts(rng, TOPO.n_cells)
    frames = cell_voltage_frames(DB, TOPO, volts, np.zeros(TOPO.n_cells, bool), {}, 10.0)
    state = DECODER.new_state()
    cells = state.measurements["cell_voltage"]
    assert not cells.valid(0.0, 1e9).any()  # never written: invalid at any timeout
    DECODER.decode(batch(frames[:8]), state)  # modules 0 and 1 only
    valid = cells.valid(10.3, 0.5)
    assert valid[:24].all() and not valid[24:].any()
    assert not cells.valid(10.51, 0.5).any()
    np.testing.assert_allclose(cells.age(10.3)[:24], 0.3)


def test_latest_returns_the_newest_frame_of_a_small_message() -> None:
    master = cantools.database.load_file(Path(e2e.__file__).with_name("canbms_master.dbc"))
    decoder = compile_decoder([master])
    request = master.get_message_by_name("EMS_StateRequest")
    frames = [
        (
            request.frame_id,
            request.encode(
                {"EMS_RequestedState": s, "EMS_FaultReset": 0, "EMS_AliveCounter": s, "EMS_CRC": 7}
            ),
            t,
        )
        for s, t in ((2, 3.0), (1, 2.0))
    ]
    frames.append((request.frame_id, bytes(1), 4.0))  # wrong length: ignored
    latest = decoder.latest(batch(frames), "EMS_StateRequest")
    assert latest == {
        "EMS_CRC": 7.0,
        "EMS_AliveCounter": 2.0,
        "EMS_RequestedState": 2.0,
        "EMS_FaultReset": 0.0,
    }
    assert decoder.latest(batch(frames[2:]), "EMS_StateRequest") is None
    with pytest.raises(MappingError, match="NoSuchMessage"):
        decoder.latest(batch(frames), "NoSuchMessage")
