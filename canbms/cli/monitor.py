"""``canbms monitor``: a read-only live view of the internal and vehicle buses (textual).

Frames are decoded through the configured DBCs (the embedded default pack without
``--config``); the monitor sends nothing unless ``--allow-commands`` is given, and then only
the documented fault reset request (the ``canbms reset`` sequence) when ``r`` is pressed.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import can
import can.cli

from controller.config.loader import ControllerConfig, default_config, load_config

HISTORY_EVERY_S = 2.0  # the state store is read at most this often


def add_subparser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "monitor",
        help="live view of the buses: state, limits, diagnoses, cells, E2E, bus load",
        description=__doc__.split("\n\n")[1].replace("\n", " "),
    )
    parser.add_argument("--config", help="take the buses and DBCs from this configuration")
    parser.add_argument(
        "--state-dir", type=Path, help="show the event history of canbms run's state store here"
    )
    parser.add_argument(
        "--allow-commands",
        action="store_true",
        help="let 'r' send a fault reset request (standby + EMS_FaultReset) on the vehicle bus",
    )
    can.cli.add_bus_arguments(parser, group_title="internal bus (default: from the configuration)")
    can.cli.add_bus_arguments(parser, prefix="vehicle", group_title="vehicle bus")
    parser.set_defaults(func=run_monitor)


def bus_options(args: argparse.Namespace, config: ControllerConfig) -> dict[str, dict[str, Any]]:
    """python-can arguments per bus: the configuration's, with the command line's on top."""
    options = {name: bus.bus_kwargs() for name, bus in config.buses.items()}
    for name, prefix in (("internal", ""), ("vehicle", "vehicle_")):
        for key in ("interface", "channel", "bitrate", "fd", "data_bitrate"):
            value = getattr(args, f"{prefix}{key}", None)
            if value not in (None, False):
                options[name][key] = value
    return options


def open_buses(options: dict[str, dict[str, Any]]) -> dict[str, can.BusABC]:
    buses: dict[str, can.BusABC] = {}
    try:
        for name, kwargs in options.items():
            buses[name] = can.Bus(**kwargs)
    except (can.CanError, OSError, ValueError, ImportError) as exc:
        for bus in buses.values():
            bus.shutdown()
        raise SystemExit(f"canbms monitor: cannot open bus {name!r}: {exc}") from None
    return buses


def history_reader(state_dir: Path) -> Callable[[], list[str]]:
    """The store's newest events as lines, re-read at most every HISTORY_EVERY_S."""
    from canbms.monitor.model import history_lines
    from canbms.monitor.source import read_history

    cache: dict[str, Any] = {"at": -float("inf"), "lines": []}

    def read() -> list[str]:
        if time.monotonic() - cache["at"] >= HISTORY_EVERY_S:
            cache["at"], cache["lines"] = time.monotonic(), history_lines(read_history(state_dir))
        return cache["lines"]

    return read


def reset_sender(vehicle: dict[str, Any]) -> Callable[[], str]:
    """A fault reset request as ``canbms reset`` sends it, on a connection of its own."""
    from canbms.cli.reset import ResetSession

    def send() -> str:
        with can.Bus(**vehicle) as bus:
            return ResetSession(bus).run().message

    return send


def run_monitor(args: argparse.Namespace) -> int:
    try:
        from canbms.monitor.app import MonitorApp
    except ImportError as exc:
        if not (exc.name or "").startswith(("textual", "rich")):
            raise
        raise SystemExit("canbms monitor needs textual: pip install 'canbms[monitor]'") from None
    from canbms.monitor.model import MonitorModel
    from canbms.monitor.source import BusSource

    config = load_config(args.config) if args.config else default_config()
    options = bus_options(args, config)
    model = MonitorModel(config, {name: o.get("bitrate") for name, o in options.items()})
    source = BusSource(open_buses(options))
    try:
        MonitorApp(
            model,
            source,
            history=history_reader(args.state_dir) if args.state_dir else None,
            reset=reset_sender(options["vehicle"]) if args.allow_commands else None,
        ).run()
    finally:
        source.close()
    return 0
