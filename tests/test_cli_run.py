"""``canbms run`` as a process: everything configured runs, a bad combination never starts.

The controller runs in its own process against a python-can-remote server on loopback (the
two-process setup of the README); the test listens on the same bus and judges the frames by
their order and content, not by wall-clock windows.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import can
import cantools

from dbc import path as dbc_path

RUN = "from canbms.cli import main; raise SystemExit(main())"


def _config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "canbms.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_canopen_node_boots_and_beats_on_the_vehicle_bus(tmp_path: Path, remote_server) -> None:  # noqa: ANN001
    config = _config(
        tmp_path,
        f"""
[buses.internal]
interface = "virtual"
channel = "cli-run-internal"

[buses.vehicle]
interface = "remote"
channel = "{remote_server}"

[canopen]
node_id = 3
heartbeat_ms = 200
""",
    )
    with can.Bus(interface="remote", channel=remote_server) as vehicle:
        done = subprocess.run(
            [sys.executable, "-c", RUN, "run", "--config", str(config), "--duration", "2"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        deadline = time.monotonic() + 2.0
        frames: list[can.Message] = []
        while time.monotonic() < deadline:
            msg = vehicle.recv(0.2)
            if msg is not None:
                frames.append(msg)
    assert done.returncode == 0, done.stderr
    assert "bus vehicle: remote" in done.stdout and "canopen" in done.stdout
    node = [bytes(m.data) for m in frames if m.arbitration_id == 0x703]
    assert node and node[0] == b"\x00", "boot-up before any heartbeat"
    assert node[1:4] == [b"\x05"] * 3, "then heartbeats in OPERATIONAL"
    assert any(m.arbitration_id == 0x183 for m in frames), "TPDO1"


def test_an_adapter_on_an_undefined_bus_never_starts(tmp_path: Path) -> None:
    config = _config(tmp_path, '[[adapters]]\ntype = "elcon"\nmax_current = 10\n')
    done = subprocess.run(
        [sys.executable, "-c", RUN, "run", "--config", str(config), "--duration", "1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "adapters[0].bus: 'charger' is not a configured bus" in done.stderr
    assert "stopped after" not in done.stdout


def test_exit_on_fault_ends_in_the_safe_state_with_its_own_code(tmp_path: Path) -> None:
    config = _config(tmp_path, "startup_timeout_ms = 500\n")  # nothing answers: missing data
    done = subprocess.run(
        [sys.executable, "-c", RUN, "run", "--config", str(config), "--exit-on-fault"]
        + ["--duration", "30"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 3, done.stderr
    assert "ended in the safe state after a fault" in done.stdout
    assert "STANDBY -> FAULT" in done.stderr, "the fault that ended it is in the log"


def test_the_banner_the_health_frame_and_counters_across_a_restart(
    tmp_path: Path,
    remote_server,  # noqa: ANN001
) -> None:
    config = _config(
        tmp_path,
        f"""
state_dir = "state"
startup_timeout_ms = 60000  # nothing answers: no missing-data fault within the run


[buses.internal]
interface = "virtual"
channel = "cli-run-health-internal"

[buses.vehicle]
interface = "remote"
channel = "{remote_server}"
""",
    )
    command = [sys.executable, "-c", RUN, "run", "--config", str(config), "--duration", "3"]
    with can.Bus(interface="remote", channel=remote_server) as vehicle:
        first = subprocess.run(command, capture_output=True, text=True, timeout=60)
        frames = list(iter(lambda: vehicle.recv(1.0), None))
    second = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr

    banner = first.stdout
    assert f"canbms run: {config}" in banner
    assert f"bus vehicle: remote {remote_server}" in banner
    assert "BMS_RuntimeHealth every 1 s" in banner
    assert "dbc master: " in banner and "canbms_master.dbc" in banner
    assert f"state: {tmp_path / 'state'}" in banner
    assert "restored: nothing (a new state store)" in banner
    cycles = int(re.search(r"stopped after (\d+) cycles", first.stdout)[1])
    assert f"restored runtime counters: {cycles} cycles" in second.stdout
    assert "restored: latched faults none; SOC unknown" in second.stdout

    master = cantools.database.load_file(str(dbc_path("canbms_master.dbc")))
    health = [m for m in frames if m.arbitration_id == 0x0FC]
    decoded = [master.decode_message(0x0FC, bytes(m.data)) for m in health]
    assert len(decoded) >= 2
    alive = [d["BMS_RtAliveCounter"] for d in decoded]
    assert alive == list(range(alive[0], alive[0] + len(alive))), "none lost, none repeated"
    stamps = [m.timestamp for m in health]
    assert min(b - a for a, b in zip(stamps, stamps[1:], strict=False)) > 0.8, "once a second"
    assert all(d["BMS_RtFailedSteps"] == 0 and d["BMS_RtDroppedFrames"] == 0 for d in decoded)
