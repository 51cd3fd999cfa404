"""Real-time runs on python-can buses: in-process virtual, and over python-can-remote."""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from collections import Counter

import can
import pytest
from can.interfaces.virtual import VirtualBus
from sim_support import balancing_command

from canbms.cli import main
from dbc.topology import Topology
from slaves.realtime import BusReceiveError, RealtimeRunner
from slaves.simulator import PackSimulator

TOPO = Topology(modules=4, cells_per_module=12, sensors_per_module=4)


def _channel() -> str:
    return f"test-{uuid.uuid4().hex}"


def _drain(bus: can.BusABC) -> list[can.Message]:
    out = []
    while (msg := bus.recv(timeout=0.2)) is not None:
        out.append(msg)
    return out


def _assert_counts(frames: list[can.Message], seconds: float, modules: int) -> None:
    """Per ID: every group once per period, give or take one period for scheduling."""
    counts = Counter(m.arbitration_id for m in frames)
    for m in range(modules):
        for base, period, groups in ((0x200, 0.1, 4), (0x280, 1.0, 2), (0x300, 0.1, 1)):
            periods = seconds / period
            assert (periods - 1) * groups <= counts[base + m] <= (periods + 1) * groups, (
                hex(base + m),
                counts[base + m],
            )
    assert set(counts) == {b + m for b in (0x200, 0x280, 0x300) for m in range(modules)}


def test_two_seconds_on_the_virtual_bus_without_drift() -> None:
    channel = _channel()
    with (
        can.Bus(interface="virtual", channel=channel) as sim_bus,
        can.Bus(interface="virtual", channel=channel) as master,
    ):
        sim = PackSimulator(TOPO, seed=1)
        seconds = []
        runner = RealtimeRunner(sim, sim_bus, on_second=lambda s, st: seconds.append(s.t))
        began = time.monotonic()
        stats = runner.run(duration=2.0)
        elapsed = time.monotonic() - began
        frames = _drain(master)
    assert sim.t == pytest.approx(2.0)
    assert 1.98 <= elapsed < 2.3  # the absolute schedule neither drifts nor rushes
    assert seconds == pytest.approx([1.0, 2.0])
    assert stats.steps == 200 and stats.send_errors == 0
    assert stats.frames_sent == len(frames)
    _assert_counts(frames, 2.0, TOPO.modules)


def test_balancing_command_from_the_bus_is_obeyed() -> None:
    channel = _channel()
    with (
        can.Bus(interface="virtual", channel=channel) as sim_bus,
        can.Bus(interface="virtual", channel=channel) as master,
    ):
        sim = PackSimulator(TOPO, seed=1)
        runner = RealtimeRunner(sim, sim_bus)
        master.send(balancing_command(sim, 2, [3, 4], 0))
        stats = runner.run(duration=0.3)
    assert stats.frames_received == 1
    assert sim.modules.balancer.active[2].nonzero()[0].tolist() == [3, 4]


class _CutCableBus(VirtualBus):
    def _recv_internal(self, timeout):
        time.sleep(0.01)
        raise can.CanOperationError("cable cut")


def test_a_failing_bus_reader_stops_the_run_with_its_error() -> None:
    with _CutCableBus(channel=_channel()) as bus:
        runner = RealtimeRunner(PackSimulator(TOPO), bus)
        with pytest.raises(BusReceiveError, match="cable cut"):
            runner.run(duration=5.0)
        assert runner.sim.t < 1.0


def test_sigterm_stops_a_run_without_duration() -> None:
    with can.Bus(interface="virtual", channel=_channel()) as bus:
        runner = RealtimeRunner(PackSimulator(TOPO), bus)
        previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            runner.install_signal_handlers()
            threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGTERM)).start()
            stats = runner.run()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    assert 20 <= stats.steps <= 60


def test_cli_prints_a_status_line_per_second(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["sim", "-c", _channel(), "--modules", "2", "--duration", "2.05", "--current", "-20"]
    assert main(argv) == 0
    out = capsys.readouterr().out.splitlines()
    status = [line for line in out if line.startswith("t=")]
    assert len(status) == 2 and "I=  -20.0 A" in status[0]
    assert "2 modules x 12 cells" in out[0] and "stopped at t=2.05 s" in out[-1]


def test_cli_runs_over_python_can_remote(remote_server: str) -> None:
    with can.Bus(interface="remote", channel=remote_server) as master:
        argv = ["sim", "-i", "remote", "-c", remote_server, "--modules", "4", "--quiet"]
        assert main([*argv, "--duration", "2.0"]) == 0
        frames = _drain(master)
    _assert_counts(frames, 2.0, 4)
