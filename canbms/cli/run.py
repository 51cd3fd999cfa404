"""``canbms run``: the controller on real buses, at its fixed period, until stopped."""

from __future__ import annotations

import argparse
import logging
import time

import can

from controller.adapters.base import Level
from controller.config.loader import ControllerConfig, default_config, load_config
from controller.core import Controller
from controller.diagnosis import Event
from controller.errors import BusError
from controller.persisted import RESTORED, Persisted
from controller.shell.reconnect import Reconnector
from controller.shell.runtime import Runtime
from controller.shell.store import Store, StoreWriter

log = logging.getLogger("canbms.run")
STATE_FILE = "canbms-state.sqlite"
EXIT_FAULT = 3  # exit code: stopped in the safe state after a latched fault (--exit-on-fault)


def add_subparser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run the controller on the configured buses",
        description="Run the BMS controller on the buses named in the configuration. "
        "SIGINT/SIGTERM set the limits to zero, open the contactors and close the buses.",
    )
    parser.add_argument("--config", help="configuration TOML (default: the embedded demo pack)")
    parser.add_argument("--duration", type=float, help="stop after this many seconds")
    parser.add_argument("--status-every", type=float, default=1.0, help="status line period, s")
    parser.add_argument(
        "--exit-on-fault",
        action="store_true",
        help=f"end the process (exit code {EXIT_FAULT}) once a latched fault has opened the "
        "contactors, for a supervisor that restarts it; by default it keeps running in FAULT",
    )
    parser.set_defaults(func=run)


def open_buses(config: ControllerConfig) -> dict[str, can.BusABC]:
    """Open every configured bus by name; one that fails closes the ones already open."""
    buses: dict[str, can.BusABC] = {}
    for name, bus_config in config.buses.items():
        try:
            buses[name] = can.Bus(**bus_config.bus_kwargs())
        except (can.CanError, OSError, ValueError, ImportError) as exc:
            for bus in buses.values():
                bus.shutdown()
            raise BusError(
                f"cannot open bus {name!r} ({bus_config.interface}, channel "
                f"{bus_config.channel!r}): {exc}"
            ) from exc
    return buses


def banner(source: str | None, controller: Controller) -> str:
    """What runs where: the configuration, each bus and the stages on it."""
    config = controller.config
    lines = [f"canbms run: {source or 'embedded default configuration'}"]
    for name, bus in config.buses.items():
        stages = [s.name for s in controller.stages if s.bus == name]
        core = ["pack core"] if name in controller.decoders else []
        lines.append(
            f"  bus {name}: {bus.interface} {bus.channel}  ({', '.join(core + stages) or 'idle'})"
        )
    lines += [f"  notice: {notice}" for notice in controller.notices]
    return "\n".join(lines)


def open_store(config: ControllerConfig) -> tuple[StoreWriter | None, Persisted | None]:
    """The state store of ``state_dir`` (started writer) and what the last run saved."""
    if config.state_dir is None:
        return None, None
    store = Store.open(config.state_dir / STATE_FILE)
    restored = store.load()
    soc = f"SOC {restored.soc_mean:.1f} %" if restored and restored.soc_known else "SOC unknown"
    latched = ", ".join(restored.latched) if restored and restored.latched else "none"
    print(f"  state: {store.path} (restored: latched faults {latched}; {soc})", flush=True)
    writer = StoreWriter(store)
    writer.start()
    return writer, restored


def run(args: argparse.Namespace) -> int:
    config = load_config(args.config) if args.config else default_config()
    controller = Controller(config)
    print(banner(args.config, controller), flush=True)
    buses = open_buses(config)
    last = [0.0]

    faulted = [False]

    def status(state, now: float) -> None:
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
    writer, restored = open_store(config)
    state = controller.initial_state(now, restored)
    if restored is not None and restored.latched:
        print(Event(now, RESTORED, Level.FAULT, "set", detail=", ".join(restored.latched)))
    reconnector = Reconnector(lambda name: can.Bus(**config.buses[name].bus_kwargs()))
    runtime = Runtime(
        controller,
        state,
        buses,
        config.cycle_s,
        on_step=status,
        writer=writer,
        reconnector=reconnector,
    )
    runtime.install_signal_handlers()
    stats = runtime.run(duration=args.duration)
    print(
        f"stopped after {stats.cycles} cycles: {stats.overruns} overruns, "
        f"longest cycle {stats.max_cycle_s * 1e3:.2f} ms, {stats.send_errors} send errors, "
        f"{stats.step_errors} failed steps, {stats.dropped_frames} dropped frames"
        + (", ended in the safe state after a fault" if faulted[0] else "")
    )
    return EXIT_FAULT if faulted[0] else 0
