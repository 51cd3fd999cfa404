"""The state store: latched faults and SOC survive a restart, and a kill -9 never corrupts it."""

from __future__ import annotations

import logging
import math
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path
from types import SimpleNamespace

import can
import numpy as np
import pytest
from core_support import Rig

from controller.adapters.base import Level
from controller.config.loader import parse_config
from controller.contactors import ContactorState, Request
from controller.core import Controller
from controller.diagnosis import Event
from controller.errors import RuntimeFault
from controller.persisted import Persisted
from controller.shell.runtime import Runtime
from controller.shell.store import MIGRATIONS, QUEUE_SIZE, Store, StoreWriter
from controller.shell.supervision import RuntimeStats


def test_a_new_store_is_empty_and_at_the_current_schema(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "state" / "s.sqlite")
    assert store.load() is None and store.version == len(MIGRATIONS)
    store.close()


def test_saved_state_and_events_read_back(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "s.sqlite")
    store.save(Persisted(("cell_overvoltage", "contactor_welded"), 41.5, 47.0, 44.25))
    store.append(
        [
            Event(
                3.0,
                "invalid_measurement",
                Level.FAULT,
                "set",
                1.0,
                None,
                np.arange(12, 24),
                "cell",
                "M01 silent",
            )
        ]
    )
    store.close()
    again = Store.open(tmp_path / "s.sqlite")
    assert again.load() == Persisted(("cell_overvoltage", "contactor_welded"), 41.5, 47.0, 44.25)
    assert again.history() == [(3.0, "invalid_measurement", "set", "M01 silent")]
    unknown = Persisted(("stage_exception",))
    again.save(unknown)
    loaded = again.load()
    assert loaded is not None and loaded.latched == ("stage_exception",)
    assert not loaded.soc_known and math.isnan(loaded.soc_mean)
    again.close()


def test_a_store_from_a_newer_release_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    db.close()
    with pytest.raises(RuntimeFault, match="newer than this canbms"):
        Store.open(path)


def test_a_latched_fault_survives_a_restart_until_a_reset(tmp_path: Path) -> None:
    rig = Rig()
    rig.close(Request.DISCHARGE)
    rig.plant.silent.add("M02")  # a module falls silent: slave timeout, FAULT
    rig.run_until(lambda r: r.state.contactors.state is ContactorState.FAULT, 5.0)
    persisted = rig.controller.persisted(rig.state)
    assert "slave_timeout" in persisted.latched and persisted.soc_known
    store = Store.open(tmp_path / "s.sqlite")
    store.save(persisted)
    store.close()

    restored = Store.open(tmp_path / "s.sqlite").load()
    assert restored == persisted
    fresh = Rig()  # the restarted controller, every module talking again
    fresh.state = fresh.controller.initial_state(0.0, restored)
    assert fresh.state.soc.soc_mean == pytest.approx(persisted.soc_mean)
    fresh.plant.request = Request.DISCHARGE
    fresh.run(4.0)
    assert not any(fresh.state.contactors.commands), "never closed onto the restored fault"
    assert fresh.state.published.dcl == 0.0
    assert fresh.controller.persisted(fresh.state).latched == persisted.latched, "still latched"

    fresh.plant.request, fresh.plant.reset = Request.STANDBY, True
    fresh.run_until(lambda r: not r.state.restored_faults, 1.0)
    fresh.plant.reset = False
    fresh.run_until(lambda r: r.state.contactors.state is ContactorState.STANDBY, 2.0)
    assert fresh.controller.persisted(fresh.state).latched == ()


WRITER = """
import sys, time
from controller.persisted import Persisted
from controller.shell.store import Store, StoreWriter
writer = StoreWriter(Store.open(sys.argv[1]))
writer.start()
k = int(sys.argv[2])  # each process counts on from its own start
while True:
    k += 1
    # every record is self-consistent: mean = k, min = k - 1, max = k + 1
    writer.submit(Persisted(("cell_overvoltage",) if k % 2 else (), k - 1.0, k + 1.0, float(k)))
    time.sleep(0.001)
"""


def _wait_for_writing(path: Path, writer: subprocess.Popen, start: int) -> None:
    """Until the writer process has committed a record of its own (counted from ``start``)."""
    deadline = time.monotonic() + 60.0
    while time.monotonic() < deadline and writer.poll() is None:
        if path.exists():
            store = Store.open(path)
            record = store.load()
            store.close()
            if record is not None and record.soc_mean > start:
                return
        time.sleep(0.02)
    pytest.fail("the writer process never wrote")


def test_a_kill_at_any_instant_leaves_a_whole_record(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    rng = random.Random(7)
    for iteration in range(10):
        start = iteration * 1_000_000
        writer = subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(start)])
        _wait_for_writing(path, writer, start)  # however long the import takes on a loaded machine
        time.sleep(rng.random() * 0.3)  # then a kill at any instant of the writing
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait(10)
        store = Store.open(path)
        saved = store.load()
        store.close()
        assert saved is not None
        assert saved.soc_min == saved.soc_mean - 1 and saved.soc_max == saved.soc_mean + 1
        assert saved.latched == (("cell_overvoltage",) if saved.soc_mean % 2 else ())
        assert saved.soc_mean >= 1


def test_the_writer_never_blocks_and_counts_what_it_drops(tmp_path: Path) -> None:
    writer = StoreWriter(Store.open(tmp_path / "s.sqlite"))  # not started: nothing drains
    for k in range(300):
        writer.submit(Persisted((), float(k), float(k), float(k)))
    assert writer.dropped == 300 - QUEUE_SIZE
    writer.start()
    writer.finish()
    assert Store.open(tmp_path / "s.sqlite").load() == Persisted((), *[float(QUEUE_SIZE - 1)] * 3)


def test_the_runtime_keeps_the_store_current_without_waiting_on_it(tmp_path: Path) -> None:
    run = uuid.uuid4().hex[:8]
    config = parse_config(
        {"buses": {name: {"channel": f"store-{run}-{name}"} for name in ("internal", "vehicle")}}
    )
    controller = Controller(config)
    buses = {
        name: can.Bus(interface="virtual", channel=b.channel) for name, b in config.buses.items()
    }
    writer = StoreWriter(Store.open(tmp_path / "s.sqlite"))
    writer.start()
    runtime = Runtime(
        controller, controller.initial_state(time.monotonic()), buses, config.cycle_s, writer=writer
    )
    runtime.run(duration=1.3, shutdown_timeout=0.1)
    store = Store.open(tmp_path / "s.sqlite")
    saved = store.load()
    assert saved is not None and saved.latched == () and not saved.soc_known
    assert ("source_silent", "set") in {(d, k) for _, d, k, _ in store.history()}
    assert writer.dropped == 0 and writer.errors == 0


def test_a_state_record_that_cannot_be_built_is_a_warning_and_the_loop_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    run = uuid.uuid4().hex[:8]
    config = parse_config(
        {"buses": {name: {"channel": f"unbuilt-{run}-{name}"} for name in ("internal", "vehicle")}}
    )
    controller = Controller(config)

    def broken(state):  # noqa: ANN001, ANN202
        raise ValueError("could not broadcast input array from shape (10,) into shape (11,)")

    controller.persisted_summary = broken  # type: ignore[method-assign]
    buses = {
        name: can.Bus(interface="virtual", channel=b.channel) for name, b in config.buses.items()
    }
    writer = StoreWriter(Store.open(tmp_path / "s.sqlite"))
    writer.start()
    runtime = Runtime(
        controller, controller.initial_state(time.monotonic()), buses, config.cycle_s, writer=writer
    )
    with caplog.at_level(logging.WARNING, logger="controller.shell.runtime"):
        stats = runtime.run(duration=0.5, shutdown_timeout=0.1)
    assert stats.cycles >= 10 and stats.step_errors == 0, "every cycle stepped the core"
    messages = [r.getMessage() for r in caplog.records]
    assert sum("building the state record failed" in m for m in messages) == 1, "once"
    assert any("store_behind warning set" in m for m in messages)
    store = Store.open(tmp_path / "s.sqlite")
    assert store.load() is None, "no record was built"
    assert ("store_behind", "set") in {(d, k) for _, d, k, _ in store.history()}, "events kept"


def test_a_store_of_the_first_schema_is_migrated_and_keeps_its_record(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    db = sqlite3.connect(path, isolation_level=None)
    db.executescript(f"BEGIN; {MIGRATIONS[0]} PRAGMA user_version = 1; COMMIT;")
    db.execute(
        "INSERT INTO persisted (id, saved_at, record) VALUES (1, 0, ?)",
        ('{"latched": ["cell_overvoltage"], "soc_min": 40.0, "soc_max": 42.0, "soc_mean": 41.0}',),
    )
    db.close()
    store = Store.open(path)
    assert store.version == len(MIGRATIONS) > 1
    assert store.load() == Persisted(("cell_overvoltage",), 40.0, 42.0, 41.0)
    assert store.counters() == {}, "no runtime counters before the release that keeps them"
    store.close()


def test_runtime_counters_are_written_with_the_record_and_summed_over_runs(
    tmp_path: Path,
) -> None:
    """Two runs on a virtual clock: the second starts from what the first stored."""

    class Clock:
        now = 50.0

        def __call__(self) -> float:
            return self.now

        def wait(self, seconds: float) -> bool:
            self.now += seconds
            return False

    class Core:
        def __init__(self, clock: Clock, cost: float) -> None:
            self.clock, self.cost = clock, cost

        def step(self, state, batch, now):  # noqa: ANN001, ANN202
            self.clock.now += self.cost
            return SimpleNamespace(state=state, frames=(), events=())

        def persisted(self, state) -> Persisted:  # noqa: ANN001
            return Persisted()

        persisted_summary = persisted

    def run(cycles: int, cost: float) -> RuntimeStats:
        store = Store.open(tmp_path / "s.sqlite")
        restored = RuntimeStats.from_record(store.counters())
        writer = StoreWriter(store)
        writer.start()
        clock = Clock()
        done = [0]
        runtime = Runtime(
            Core(clock, cost),
            None,
            {},
            0.01,
            clock=clock,
            on_step=lambda *_: done.__setitem__(0, done[0] + 1),
            writer=writer,
            restored_stats=restored,
        )
        runtime._stop = SimpleNamespace(wait=clock.wait, is_set=lambda: done[0] >= cycles)
        runtime._safe_stop = lambda timeout: None
        runtime.run()
        return runtime.stats

    first = run(300, 0.002)
    second = run(200, 0.015)  # every cycle overruns its 10 ms period
    store = Store.open(tmp_path / "s.sqlite")
    total = RuntimeStats.from_record(store.counters())
    store.close()
    assert (first.cycles, second.cycles, total.cycles) == (300, 200, 500)
    assert (first.overruns, total.overruns) == (0, second.overruns) and second.overruns == 200
    assert total.max_cycle_s == pytest.approx(0.015)


class _Recorder:
    """A store writer that keeps what the runtime hands it."""

    def __init__(self) -> None:
        self.saved: list[Persisted] = []

    def submit(self, persisted: Persisted | None, events=(), counters=None) -> None:  # noqa: ANN001
        if persisted is not None:
            self.saved.append(persisted)


def test_the_soc_is_stored_when_it_becomes_known_and_as_it_moves_not_only_on_the_period() -> None:
    """A controller killed 2 s after its SOC became known must leave that SOC behind: the
    period (60 s here) alone would lose it, and with it the SOC a restart resumes from."""
    now = {"soc": math.nan}
    record = lambda _state: Persisted((), *[now["soc"]] * 3)  # noqa: E731
    core = SimpleNamespace(persisted=record, persisted_summary=record)
    recorder = _Recorder()
    runtime = Runtime.__new__(Runtime)  # only the persisting part of the loop is exercised
    runtime.core, runtime.state, runtime.writer = core, None, recorder
    runtime.persist_every, runtime._persisted, runtime._persisted_at = 60.0, None, -math.inf
    runtime.supervisor = SimpleNamespace(total=SimpleNamespace(as_record=dict))
    for k, soc in enumerate([math.nan, math.nan, 50.0, 50.1, 50.15, 50.25, 50.3, 50.45]):
        now["soc"] = soc
        runtime._persist((), float(k))
    stored = [p.soc_mean for p in recorder.saved]
    assert stored[0] != stored[0], "the first cycle is stored (SOC still unknown)"
    assert stored[1:] == [50.0, 50.25, 50.45], "known at once, then every 0.2 points moved"
