"""``canbms run``: the controller on real buses, at its fixed period, until stopped."""

from __future__ import annotations

import argparse
import logging
import time

import can

from canbms.cli.options import seconds
from controller.adapters.base import Level
from controller.config.ingest import load_database
from controller.config.loader import ControllerConfig, default_config, load_config
from controller.config.safety import warnings as override_warnings
from controller.core import Controller
from controller.diagnosis import Event
from controller.errors import BusError
from controller.persisted import RESTORED, Persisted
from controller.shell.health_frame import HealthFrame
from controller.shell.mqtt import start_telemetry
from controller.shell.reconnect import Reconnector
from controller.shell.runtime import Runtime
from controller.shell.store import Store, StoreWriter
from controller.shell.supervision import RuntimeStats
from hil.recording import add_record_arguments, start_recording

log = logging.getLogger("canbms.run")
STATE_FILE = "canbms-state.sqlite"
OPEN_RETRIES = 3  # attempts after the first to open a bus that refuses at start
OPEN_RETRY_S = 0.25
EXIT_FAULT = 3  # exit code: stopped in the safe state after a latched fault (--exit-on-fault)


def add_subparser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run the controller on the configured buses",
        description="Run the BMS controller on the buses named in the configuration. "
        "SIGINT/SIGTERM set the limits to zero, open the contactors and close the buses.",
    )
    parser.add_argument("--config", help="configuration TOML (default: the embedded demo pack)")
    parser.add_argument("--duration", type=seconds, help="stop after this many seconds")
    parser.add_argument("--status-every", type=float, default=1.0, help="status line period, s")
    parser.add_argument(
        "--exit-on-fault",
        action="store_true",
        help=f"end the process (exit code {EXIT_FAULT}) once a latched fault has opened the "
        "contactors, for a supervisor that restarts it; by default it keeps running in FAULT",
    )
    add_record_arguments(parser)
    parser.set_defaults(func=run)


def open_buses(config: ControllerConfig) -> dict[str, can.BusABC]:
    """Open every configured bus by name; one that fails closes the ones already open.

    A transport that refuses at first (an adapter still enumerating, a bus server too busy
    to accept at once) is tried again ``OPEN_RETRIES`` times, waiting twice as long each
    time from ``OPEN_RETRY_S``; a configuration error (unknown interface, bad argument) is
    not."""
    buses: dict[str, can.BusABC] = {}
    for name, bus_config in config.buses.items():
        try:
            buses[name] = _open_bus(bus_config.bus_kwargs())
        except (can.CanError, OSError, ValueError, ImportError) as exc:
            for bus in buses.values():
                bus.shutdown()
            raise BusError(
                f"cannot open bus {name!r} ({bus_config.interface}, channel "
                f"{bus_config.channel!r}): {exc}"
            ) from exc
    return buses


def _open_bus(kwargs: dict) -> can.BusABC:
    for attempt in range(OPEN_RETRIES):
        try:
            return can.Bus(**kwargs)
        except (can.CanError, OSError) as exc:
            log.warning("opening bus %s failed (%s), trying again", kwargs.get("channel"), exc)
            time.sleep(OPEN_RETRY_S * 2**attempt)
    return can.Bus(**kwargs)


def banner(source: str | None, controller: Controller, health: HealthFrame | None) -> str:
    """What runs where: the configuration, each bus and what lives on it, the DBC files."""
    config = controller.config
    lines = [f"canbms run: {source or 'embedded default configuration'}"]
    for name, bus in config.buses.items():
        users = ["pack core"] if name in controller.decoders else []
        users += [s.name for s in controller.stages if s.bus == name]
        if health is not None and health.bus == name:
            users.append(f"BMS_RuntimeHealth every {health.period:g} s")
        rate = f" {bus.bitrate} bit/s" if bus.bitrate else ""
        fd = f" FD {bus.data_bitrate or ''}".rstrip() if bus.fd else ""
        lines.append(
            f"  bus {name}: {bus.interface} {bus.channel}{rate}{fd}  ({', '.join(users) or 'idle'})"
        )
    sources = config.dbc
    for role in ("slaves", "sensor", "master"):
        path = getattr(sources, role)
        lines.append(f"  dbc {role}: {path if path is not None else 'none (in the slave DBC)'}")
    lines += [f"  notice: {notice}" for notice in controller.notices]
    lines += [f"  warning: {text}" for text in override_warnings(controller.overrides)]
    lines.append(f"  state: {config.state_dir or 'none (nothing survives a restart)'}")
    return "\n".join(lines)


def restored_lines(restored: Persisted | None, counters: RuntimeStats | None) -> list[str]:
    """What the state store handed back, field by field: the latched faults and SOC always,
    every other field of the record where it differs from a fresh start."""
    if restored is None:
        return ["  restored: nothing (a new state store)"]
    latched = ", ".join(restored.latched) or "none"
    soc = (
        f"SOC {restored.soc_mean:.1f} % (cells {restored.soc_min:.1f}-{restored.soc_max:.1f} %)"
        if restored.soc_known
        else "SOC unknown"
    )
    lines = [f"  restored: latched faults {latched}; {soc}"]
    fresh = Persisted().to_record()
    shown = {"latched", "soc_min", "soc_max", "soc_mean"}
    lines += [
        f"  restored: {key} {_plain(_measured(key, value))}"
        for key, value in restored.to_record().items()
        if key not in shown and value != fresh.get(key)
    ]
    if counters is not None and counters.cycles:
        lines.append(f"  restored runtime counters: {counters.summary()}")
    return lines


def _measured(key: str, value: object) -> object:
    """A per-cell estimate with its cells not measured yet (stored as 0) marked unknown."""
    if key in Persisted.MEASURED_PER_CELL and isinstance(value, list):
        return [v if v else None for v in value]
    return value


def _plain(value: object) -> str:
    """A stored value in a few words: a long list (one value per cell) by its range."""
    if value is None:
        return "unknown"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list) and len(value) > 4:
        known = [v for v in value if isinstance(v, int | float)]
        if not known:
            return f"{len(value)} values, none known"
        unknown = f", {len(value) - len(known)} unknown" if len(known) < len(value) else ""
        return f"{len(value)} values {min(known):g} to {max(known):g}{unknown}"
    if isinstance(value, list):
        return "/".join(_plain(v) for v in value)
    return str(value)


def open_store(
    config: ControllerConfig,
) -> tuple[StoreWriter | None, Persisted | None, RuntimeStats | None]:
    """The state store of ``state_dir`` (started writer), what the last run saved and the
    runtime counters of every earlier run."""
    if config.state_dir is None:
        return None, None, None
    store = Store.open(config.state_dir / STATE_FILE)
    restored = store.load()
    counters = RuntimeStats.from_record(store.counters())
    print(f"  state file: {store.path}", flush=True)
    print("\n".join(restored_lines(restored, counters)), flush=True)
    writer = StoreWriter(store)
    writer.start()
    return writer, restored, counters


def health_frame(controller: Controller) -> HealthFrame | None:
    """BMS_RuntimeHealth from the configured master DBC, checked against every other
    producer on its bus; None where that DBC does not define it."""
    health = HealthFrame.of(load_database(controller.config.dbc.master)[0])
    if health is not None:
        producers = {"the pack core": controller.status.produced().get(health.bus, frozenset())}
        for stage in controller.stages:
            if stage.bus == health.bus:
                producers[f"stage {stage.name!r}"] = stage.traffic.produces
        health.check(producers)
    return health


def run(args: argparse.Namespace) -> int:
    config = load_config(args.config) if args.config else default_config()
    controller = Controller(config)
    health = health_frame(controller)
    print(banner(args.config, controller, health), flush=True)
    telemetry = start_telemetry(config)  # [mqtt]: off the control path, None without it
    buses = open_buses(config)
    recording = start_recording(args, tuple(config.buses), say=print)  # none: no --record
    buses = recording.wrap_all(buses)
    last = [0.0]

    faulted = [False]

    def status(state, now: float) -> None:
        if telemetry is not None:
            telemetry.offer(state, now)  # returns at once; never raises
        if args.exit_on_fault and not faulted[0] and state.contactors.state.name == "FAULT":
            if controller.is_safe(state):  # contactors commanded open and confirmed
                faulted[0] = True
                runtime.stop()
        if now - last[0] >= args.status_every:
            last[0] = now
            p = state.published
            latched = state.contactors.state.name == "FAULT"  # as BMS_FaultLevel reports it
            level = int(Level.FAULT) if latched else int(state.protection.highest)
            print(
                f"{state.contactors.state.name:<16} fault level {level} "
                f"CCL {p.ccl:6.1f} A  DCL {p.dcl:6.1f} A",
                flush=True,
            )

    now = time.monotonic()
    writer, restored, counters = open_store(config)
    state = controller.initial_state(now, restored)
    if restored is not None and restored.latched:
        print(Event(now, RESTORED, Level.FAULT, "set", detail=", ".join(restored.latched)))
    reconnector = Reconnector(
        recording.wrap_opener(lambda name: can.Bus(**config.buses[name].bus_kwargs()))
    )
    runtime = Runtime(
        controller,
        state,
        buses,
        config.cycle_s,
        on_step=status,
        writer=writer,
        persist_every=config.persist_every_s,
        reconnector=reconnector,
        supervision=config.supervision,
        health=health,
        restored_stats=counters,
    )
    runtime.install_signal_handlers()
    stats = runtime.run(duration=args.duration)
    if telemetry is not None:
        telemetry.stop()
        print(telemetry.summary())
    recording.close()
    print(
        f"stopped after {stats.summary()}"
        + (", ended in the safe state after a fault" if faulted[0] else "")
    )
    return EXIT_FAULT if faulted[0] else 0
