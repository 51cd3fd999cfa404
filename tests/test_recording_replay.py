"""Recording a live run and replaying it: the same log gives the same events and frames.

A live ``canbms run`` against ``canbms sim --system`` in another process, joined by two
python-can-remote servers on loopback, records every bus to .blf and .asc at once. Both
files replay through a fresh controller to identical events and frames, the replay agrees
with what the live controller sent, and a changed threshold shows up in the comparison.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import can
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from remote_support import serve_remote

from canbms.cli import main
from controller.config.loader import load_config
from controller.core import Controller
from hil.compare import compare
from hil.recording import RESOLUTION_S, LogWriter, Recording, csv_path
from hil.replay import read_log, replay

CLI = "from canbms.cli import main; raise SystemExit(main())"
RUN_S = 6.0


def _config(path: Path, internal: str, vehicle: str, extra: str = "", top: str = "") -> Path:
    path.write_text(
        f'{top}[buses.internal]\ninterface = "remote"\nchannel = "{internal}"\n\n'
        f'[buses.vehicle]\ninterface = "remote"\nchannel = "{vehicle}"\n{extra}',
        encoding="utf-8",
    )
    return path


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path, Path]:
    """A live run recorded to .blf and .asc; its configuration and one with a lower
    overvoltage warning threshold, which the pack's cells are above."""
    tmp = tmp_path_factory.mktemp("live")
    with serve_remote() as internal, serve_remote() as vehicle:
        config = _config(tmp / "live.toml", internal, vehicle)
        sim = subprocess.Popen(
            [sys.executable, "-c", CLI, "sim", "--system", "-i", "remote", "-c", internal]
            + ["--vehicle-interface", "remote", "--vehicle-channel", vehicle]
            + ["--request", "discharge@1", "--load", "20", "--quiet"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            done = subprocess.run(
                [sys.executable, "-c", CLI, "run", "--config", str(config)]
                + ["--duration", str(RUN_S), "--status-every", "100"]
                + ["--record", str(tmp / "live.blf"), "--record", str(tmp / "live.asc")],
                capture_output=True,
                text=True,
                timeout=120,
            )
        finally:
            sim.terminate()
            sim.wait(10)
    assert done.returncode == 0, done.stderr
    assert "none dropped" in done.stdout, done.stdout
    changed = _config(
        tmp / "changed.toml",
        internal,
        vehicle,
        "\n[protection.cell_overvoltage.warning]\nthreshold = 3.5\nhysteresis = 0.02\n",
        # a warning this low is inside every charge: accepted only as an override
        'unsafe_override = ["limits.charge_cell_voltage_v", "limits.charge.cell_voltage"]\n',
    )
    return tmp / "live.blf", tmp / "live.asc", config, changed


def _replayed(log: Path, config: Path):  # noqa: ANN202
    controller = Controller(load_config(config))
    recorded = read_log(log, controller)
    return controller, recorded, replay(controller, recorded)


def test_blf_and_asc_of_one_run_replay_to_the_same_events_and_frames(live) -> None:  # noqa: ANN001
    blf, asc, config, _ = live
    _, from_blf, a = _replayed(blf, config)
    _, from_asc, b = _replayed(asc, config)
    assert np.array_equal(from_blf.ticks, from_asc.ticks)
    assert [str(e) for e in a.events] == [str(e) for e in b.events]
    assert [(s.time, s.frame) for s in a.frames] == [(s.time, s.frame) for s in b.frames]
    closed = [e for e in a.events if "CLOSED_DISCHARGE" in str(e)]
    assert closed, "the run closed the contactors for the discharge: events worth comparing"
    again = _replayed(blf, config)[2]
    assert [str(e) for e in again.events] == [str(e) for e in a.events]
    assert again.frames == a.frames


def test_the_log_holds_both_directions_on_named_buses(live) -> None:  # noqa: ANN001
    blf, _, config, _ = live
    controller, recorded, _ = _replayed(blf, config)
    received = set(recorded.received.bus_names[int(b)] for b in recorded.received.bus)
    assert received == {"internal", "vehicle"}
    sent = {(s.frame.bus, s.frame.arbitration_id) for s in recorded.sent}
    assert ("internal", 0x0E8) in sent, "ContactorCommand, sent by the live controller"
    assert ("vehicle", 0x0F1) in sent, "BMS_Limits"
    assert not any(int(i) in (0x0E8, 0x0F1) for i in recorded.received.ids)


def test_replay_agrees_with_the_live_controller(live) -> None:  # noqa: ANN001
    blf, _, config, _ = live
    controller, recorded, result = _replayed(blf, config)
    until = recorded.sent[-1].time - 1.0
    comparison = compare(controller, recorded.sent, result.frames, until)
    assert comparison.compared > 100
    assert comparison.differences == (), "\n".join(map(str, comparison.differences))


def test_compare_flags_a_changed_threshold(live, capsys) -> None:  # noqa: ANN001
    blf, _, _, changed = live
    code = main(["replay", str(blf), "--config", str(changed), "--compare", "--quiet"])
    out = capsys.readouterr().out
    assert code == 4, out
    assert "BMS_Status.BMS_FaultLevel: live None, replayed Warning" in out


def test_replay_writes_the_controllers_frames_to_a_new_log(live, tmp_path: Path) -> None:  # noqa: ANN001
    blf, _, config, _ = live
    out = tmp_path / "out.log"
    assert main(["replay", str(blf), "--config", str(config), "-o", str(out), "--quiet"]) == 0
    controller, recorded, result = _replayed(blf, config)
    written = list(can.LogReader(out))
    assert len(written) == len(result.frames)
    assert {m.channel for m in written} <= {"internal", "vehicle"}
    assert not any(m.is_rx for m in written)
    first = result.frames[0]
    assert written[0].arbitration_id == first.frame.arbitration_id
    assert bytes(written[0].data) == first.frame.data
    assert written[0].timestamp == pytest.approx(recorded.start + first.time, abs=1e-5)


def test_realtime_play_sends_the_received_frames_in_their_rhythm(live) -> None:  # noqa: ANN001
    blf, _, config, _ = live
    controller, recorded, _ = _replayed(blf, config)
    short = blf.with_name("short.log")
    first_second = [m for m in can.LogReader(blf) if m.timestamp - recorded.start < 0.5]
    writer = LogWriter(short, ("internal", "vehicle"))
    for m in first_second:
        writer.write(m.channel, m, m.is_rx, m.timestamp)  # .blf channels are bus positions
    writer.stop()
    with serve_remote() as internal, serve_remote() as vehicle:
        got: dict[str, list[can.Message]] = {"internal": [], "vehicle": []}
        listeners = {
            name: can.Bus(interface="remote", channel=url)
            for name, url in (("internal", internal), ("vehicle", vehicle))
        }
        readers = [
            threading.Thread(
                target=lambda n=n, b=b: got[n].extend(iter(lambda: b.recv(2.0), None)),
                daemon=True,
            )
            for n, b in listeners.items()
        ]
        for reader in readers:
            reader.start()
        play = _config(blf.with_name("play.toml"), internal, vehicle)
        assert main(["replay", str(short), "--config", str(play), "--realtime"]) == 0
        for reader in readers:
            reader.join(10)
        for bus in listeners.values():
            bus.shutdown()
    for index, name in enumerate(("internal", "vehicle")):
        expected = [m for m in first_second if m.is_rx and m.channel == index]
        assert [m.arbitration_id for m in got[name]] == [m.arbitration_id for m in expected]
    played = sorted(m.timestamp for m in (*got["internal"], *got["vehicle"]))
    recorded_rx = sorted(m.timestamp for m in first_second if m.is_rx)
    span, recorded_span = played[-1] - played[0], recorded_rx[-1] - recorded_rx[0]
    assert span >= recorded_span * 0.9, "played in the recorded rhythm, not all at once"


frames = st.lists(
    st.tuples(
        st.integers(0, 1),
        st.integers(0, 0x7FF),
        st.binary(min_size=0, max_size=8),
        st.booleans(),
        st.floats(0, 3600, allow_nan=False),
    ),
    min_size=1,
    max_size=30,
)


@given(frames=frames)
def test_every_format_reads_back_the_same_frames_times_and_buses(frames, tmp_path_factory) -> None:  # noqa: ANN001
    """The recording's convention: a frame comes back on its bus, in its direction, on the
    same tick (never before the frame written ahead of it), whichever format wrote it."""
    tmp = tmp_path_factory.mktemp("formats")
    start = 1.7e9
    buses = ("internal", "vehicle")
    read = {}
    for suffix in (".blf", ".asc", ".log"):
        writer = LogWriter(tmp / f"run{suffix}", buses)
        for bus, ident, data, rx, t in frames:
            msg = can.Message(arbitration_id=ident, data=data, is_extended_id=False)
            writer.write(bus, msg, rx, start + t)
        writer.stop()
        messages = list(can.LogReader(tmp / f"run{suffix}"))
        first = min(m.timestamp for m in messages)  # each format keeps its own time base
        read[suffix] = sorted(
            (
                round((m.timestamp - first) / RESOLUTION_S),
                m.channel if isinstance(m.channel, str) else buses[m.channel],
                m.arbitration_id,
                bytes(m.data),
                m.is_rx,
            )
            for m in messages
        )
    assert read[".blf"] == read[".asc"] == read[".log"]
    ticks = np.maximum.accumulate([round((start + t) / RESOLUTION_S) for *_, t in frames])
    expected = sorted(
        (int(tick - ticks[0]), buses[b], i, d, rx)
        for tick, (b, i, d, rx, _) in zip(ticks, frames, strict=True)
    )
    assert read[".log"] == expected


def test_recording_wraps_buses_and_keeps_direction_and_bus(tmp_path: Path) -> None:
    path = tmp_path / "rec.csv"
    recording = Recording([path], ("internal", "vehicle"), say=lambda _: None)
    channel = f"rec-{time.monotonic_ns()}"
    with (
        can.Bus(interface="virtual", channel=channel + "-i") as peer_i,
        can.Bus(interface="virtual", channel=channel + "-v") as peer_v,
    ):
        internal = recording.wrap("internal", can.Bus(interface="virtual", channel=channel + "-i"))
        vehicle = recording.wrap("vehicle", can.Bus(interface="virtual", channel=channel + "-v"))
        peer_i.send(can.Message(arbitration_id=0x200, data=b"\x01\x02"))
        assert internal.recv(1.0) is not None
        vehicle.send(can.Message(arbitration_id=0x0F0, data=b"\x05"))
        assert peer_v.recv(1.0) is not None
        internal.shutdown()
        vehicle.shutdown()
    recording.close()
    assert recording.written == 2 and recording.dropped == 0
    on_internal = list(can.LogReader(csv_path(path, "internal")))
    on_vehicle = list(can.LogReader(csv_path(path, "vehicle")))
    assert [(m.arbitration_id, bytes(m.data)) for m in on_internal] == [(0x200, b"\x01\x02")]
    assert [(m.arbitration_id, bytes(m.data)) for m in on_vehicle] == [(0x0F0, b"\x05")]


def test_a_full_queue_drops_frames_and_says_how_many(tmp_path: Path) -> None:
    said: list[str] = []
    recording = Recording([tmp_path / "rec.log"], ("internal",), capacity=2, say=said.append)
    release = threading.Event()
    write = recording.writers[0].write
    recording.writers[0].write = lambda *a: (release.wait(10), write(*a))  # a stalled disk
    msg = can.Message(arbitration_id=0x123, data=b"\x00")
    recording.put(0, msg, True, 1.0)
    deadline = time.monotonic() + 10
    while not recording._queue.empty() and time.monotonic() < deadline:
        time.sleep(0.01)  # the writer took the first frame and waits on the disk
    for k in range(9):
        recording.put(0, msg, True, 2.0 + k)  # never blocks: 2 wait, 7 are dropped
    release.set()
    recording.close()
    assert (recording.written, recording.dropped) == (3, 7)
    assert said[-1].endswith("7 frames dropped")
