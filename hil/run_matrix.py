"""Run a fault matrix: every row on a fresh plant and controller in lock-step (rows spread
over worker processes), or every row in turn against one controller in real time."""

from __future__ import annotations

import contextlib
import math
import multiprocessing
import os
import signal
import subprocess
import time
import tomllib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from importlib import resources
from pathlib import Path
from typing import Any

import can

from controller.adapters.canbms_inverter import CanBmsInverter
from controller.adapters.elcon import ElconCharger as ElconAdapter
from controller.config.loader import ControllerConfig, parse_config, read_toml
from controller.core import Controller
from hil.drivers import LockStep, RealTime
from hil.injections import CHARGER, INJECTIONS, INVERTER
from hil.matrix import Row
from hil.rows import Outcome, run_row
from hil.timing import Timing
from slaves.chemistry import NMC
from slaves.contactor_driver import ContactorDriverConfig
from slaves.elcon_charger import ChargerConfig, ElconCharger
from slaves.inverter import Inverter, InverterConfig
from slaves.simulator import SimConfig
from slaves.system import SimulatedSystem
from slaves.thermal import ThermalParams

INITIAL_SOC = 0.6
AMBIENT = 25.0
FAST_THERMAL = 10.0  # heat capacities divided by this where a row needs a warming pack


def load(path: str | Path | None, **overrides: Any) -> ControllerConfig:
    """The configuration at ``path``; without one, the bench's (`hil/matrix/bench.toml`: the
    demo's pack and limits with a storage inverter and a charger on the vehicle bus).
    ``overrides`` replace top-level keys (``cycle_ms=100``) before validation."""
    if path is None:
        text = resources.files("hil.matrix").joinpath("bench.toml").read_text("utf-8")
        return parse_config({**tomllib.loads(text), **overrides})
    return parse_config({**read_toml(path), **overrides}, base=Path(path).parent)


def attach_devices(system: SimulatedSystem, config: ControllerConfig) -> None:
    """The devices the configured adapters talk to, on the vehicle bus: an inverter that
    wants no current (it only sends its keep-alive and obeys the limits), the chargers (the
    first named ``CHARGER``), which charge as commanded."""
    inverters = [a for a in config.adapters if isinstance(a, CanBmsInverter)]
    if inverters:
        variant = InverterConfig(variant=inverters[0].config.variant)
        system.add_device("vehicle", INVERTER, Inverter(system.circuit, 0.0, config=variant))
    addresses = [
        a for s in config.adapters if isinstance(s, ElconAdapter) for a in s.config.addresses
    ]
    for k, address in enumerate(addresses):
        name = CHARGER if k == 0 else f"{CHARGER}_{address:02X}"
        charger = ElconCharger(system.circuit, ChargerConfig(address=address))
        system.add_device("vehicle", name, charger)


def plant(row: Row, timing: Timing, seed: int) -> SimulatedSystem:
    """The plant of one row: the default pack at ``INITIAL_SOC``, at the row's temperature,
    with the devices of the configuration's adapters."""
    inj = INJECTIONS[row.fault]
    ambient = inj.temperature(timing) if inj.temperature else AMBIENT
    chemistry, config = NMC, None
    if inj.fast_thermal:
        chemistry = replace(NMC, heat_capacity_j_per_k=NMC.heat_capacity_j_per_k / FAST_THERMAL)
        extra = ThermalParams().extra_heat_capacity_j_per_k / FAST_THERMAL
        config = SimConfig(thermal=ThermalParams(extra_heat_capacity_j_per_k=extra))
    system = SimulatedSystem(
        chemistry=chemistry, seed=seed, initial_soc=INITIAL_SOC, ambient=ambient, config=config
    )
    attach_devices(system, timing.config)
    return system


def _lockstep_row(job: tuple[Row, str | None, int, str | None]) -> Outcome:
    row, config_path, seed, controller_path = job
    config = load(config_path)
    timing = Timing.of(config)
    under_test = config if controller_path is None else load(controller_path)
    driver = LockStep(plant(row, timing, seed), Controller(under_test), timing)
    try:
        return run_row(driver, row)
    finally:
        driver.close()


def run_lockstep(
    rows: list[Row],
    config_path: str | None,
    seed: int = 0,
    jobs: int = 1,
    progress: Callable[[Outcome], None] | None = None,
    controller_path: str | None = None,
) -> list[Outcome]:
    """Every row on its own plant and controller; the outcomes in row order. The bounds come
    from ``config_path``; the controller under test runs ``controller_path`` when given
    (as a device under test runs its own settings)."""
    work = [(row, config_path, seed, controller_path) for row in rows]
    if jobs <= 1:
        outcomes = []
        for job in work:
            outcomes.append(_lockstep_row(job))
            if progress:
                progress(outcomes[-1])
        return outcomes
    # spawn, not fork: forking a process whose other threads hold locks (a bus's reader, a
    # logging handler) can leave a worker waiting forever on a lock copied while held.
    with multiprocessing.get_context("spawn").Pool(jobs) as pool:
        outcomes = []
        for outcome in pool.imap(_lockstep_row, work):
            outcomes.append(outcome)
            if progress:
                progress(outcome)
    return outcomes


def run_realtime(
    rows: list[Row],
    config: ControllerConfig,
    buses: Mapping[str, can.BusABC],
    seed: int = 0,
    step: float = 0.01,
    progress: Callable[[Outcome], None] | None = None,
    restart: list[str] | None = None,
    retries: int = 2,
) -> list[Outcome]:
    """Every row in turn on one plant against the controller on ``buses``.

    ``restart``, a command line, starts the controller under test afresh for each row and
    stops it (SIGINT) after: a latch one row leaves that no fault reset can clear then
    cannot spoil the rows after it.

    A row measured while the bench could not keep real time (`stalled`) is no verdict on
    the controller: it runs again, up to ``retries`` times, and fails if it never ran in
    time.

    The plant temperature moves between rows at ``RAMP_K_PER_S`` (slower than any rate
    check), so rows that need the same temperature should stand together.
    """
    timing = Timing.of(config)
    system = SimulatedSystem(seed=seed, initial_soc=INITIAL_SOC, ambient=AMBIENT)
    attach_devices(system, config)
    driver = RealTime(system, buses, timing, step=step)
    outcomes = []
    for row in rows:
        inj = INJECTIONS[row.fault]
        target = inj.temperature(timing) if inj.temperature else AMBIENT
        _ramp(driver, target, RAMP_K_PER_S if restart is None else math.inf)
        for attempt in range(retries + 1):
            began, first = time.monotonic(), len(driver.record.frames)
            with _controller(restart):
                outcome = run_row(driver, row)
            outcome.duration_s = time.monotonic() - began
            stall, outcome.stalls = stalled(driver, first, outcome.onset, restart is not None)
            if not stall:
                break
            if attempt == retries:
                outcome.error = f"not run in real time in {retries + 1} attempts: {stall}"
        outcome.mode = "RealTime"
        outcomes.append(outcome)
        if progress:
            progress(outcome)
    return outcomes


def raise_priority(rt_priority: int) -> str:
    """Schedule this process, and the controller processes it starts, round-robin real time
    at ``rt_priority`` (SCHED_RR; 0: leave it), so that other work on the machine cannot
    stall the plant: it sleeps most of each step, and the kernel keeps a share of the CPU
    for everything else. Without the privilege, niceness -10, else nothing; what was set."""
    if rt_priority <= 0:
        return "default scheduling"
    try:
        os.sched_setscheduler(0, os.SCHED_RR, os.sched_param(rt_priority))
        return f"SCHED_RR priority {rt_priority}"
    except OSError:
        pass
    try:
        os.setpriority(os.PRIO_PROCESS, 0, -10)
        return "niceness -10 (no privilege for SCHED_RR)"
    except OSError as exc:
        return f"default scheduling ({exc.strerror})"


STALL_S = ContactorDriverConfig().command_timeout_s
WATCHED_BEFORE_S = 2.0  # s before the onset in which a stall matters (the row's settling)


def stalled(driver: RealTime, first: int, onset: float, own_controller: bool) -> tuple[str, str]:
    """Why the row's measurement is void (or ""), and the figures: from ``WATCHED_BEFORE_S``
    before the onset to its end, the plant started a step more than `STALL_S` late, or (a
    controller process the bench started on its own machine) two ContactorCommand frames
    were further apart.
    `STALL_S` is the contactor driver's command timeout: a longer pause of either side
    opens the contactors or ages frames, whatever the controller does."""
    since = onset - WATCHED_BEFORE_S if math.isfinite(onset) else -math.inf
    lag = driver.worst_lag(since)
    times = [t for t, n, _ in driver.record.frames[first:] if n == "ContactorCommand"]
    times = [t for t in times if t >= since]
    gap = max((b - a for a, b in zip(times, times[1:], strict=False)), default=0.0)
    why = []
    if lag > STALL_S:
        why.append(f"a plant step {lag * 1000:.0f} ms late")
    if own_controller and gap > STALL_S:
        why.append(f"the controller process silent for {gap * 1000:.0f} ms")
    figures = f"plant lag {lag * 1000:.0f} ms, ContactorCommand gap {gap * 1000:.0f} ms"
    return ", ".join(why), figures


RAMP_K_PER_S = 0.2
STOP_S = 10.0


@contextlib.contextmanager
def _controller(command: list[str] | None) -> Iterator[None]:
    """The controller process of one row (nothing when ``command`` is None)."""
    if command is None:
        yield
        return
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(STOP_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _ramp(driver: RealTime, target: float, rate: float) -> None:
    """Move ambient and module temperatures to ``target`` at ``rate`` K/s (a plausible rate
    while a controller watches; at once between two controller processes)."""
    thermal = driver.system.pack.plant.thermal
    while abs(thermal.ambient - target) > 1e-6:
        delta = target - thermal.ambient
        move = max(-rate * driver.step, min(rate * driver.step, delta))
        thermal.ambient += move
        thermal.temperature = thermal.temperature + move
        driver.advance()
