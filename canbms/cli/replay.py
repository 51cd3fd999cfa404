"""canbms replay: a recorded log through the controller in virtual time, or onto a bus.

Without --realtime the controller's core steps at its configured cycle on the log's own
timestamps: the same log and configuration give the same events and frames every time,
in whichever format the log was recorded.
"""

from __future__ import annotations

import argparse
import contextlib
from collections import Counter
from pathlib import Path

from canbms.cli.options import seconds
from canbms.cli.run import open_buses
from controller.adapters.base import Level
from controller.config.loader import default_config, load_config
from controller.core import Controller, StepResult
from hil.compare import compare
from hil.recording import log_path
from hil.replay import Log, Replayed, play, read_log, replay, write_frames

EXIT_DIFFERENT = 4  # exit code: --compare found differences
LEVELS = {Level.OK: "info", Level.WARNING: "warning", Level.ALARM: "alarm", Level.FAULT: "fault"}


def add_subparser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "replay",
        help="feed a recorded log through the controller in virtual time",
        description=" ".join(__doc__.split()),
    )
    parser.add_argument("log", type=log_path, help="the recording (.blf, .asc, .log, .csv, .mf4)")
    parser.add_argument("--config", help="configuration TOML (default: the embedded one)")
    parser.add_argument(
        "-o", "--output", type=log_path, help="write the controller's frames to this new log"
    )
    parser.add_argument(
        "--compare",
        action="store_true",
        help="report where the controller's frames differ from those the live controller sent "
        f"in the log; exit code {EXIT_DIFFERENT} when they do",
    )
    parser.add_argument(
        "--tolerance",
        type=seconds,
        default=0.3,
        help="--compare: how far apart in time equal values may be, and how long values must "
        "disagree to count as a difference (default 0.3 s)",
    )
    parser.add_argument(
        "--tail",
        type=float,
        default=1.0,
        help="--compare: seconds at the end of the log left out, where the live controller "
        "made its safe stop, which a log does not mark (default 1)",
    )
    parser.add_argument(
        "--realtime",
        action="store_true",
        help="instead: send the frames the controller received onto the configured buses in "
        "their recorded rhythm, for a controller on a bench",
    )
    parser.add_argument("--quiet", action="store_true", help="no event lines, only the summary")
    parser.set_defaults(func=run_replay)


def load(args: argparse.Namespace) -> tuple[Controller, Log]:
    """The controller of ``--config`` and the log read on its buses."""
    config = load_config(args.config) if args.config else default_config()
    controller = Controller(config)
    return controller, read_log(args.log, controller)


def run_replay(args: argparse.Namespace) -> int:
    if args.tail < 0:
        raise ValueError(f"--tail: {args.tail} is negative")
    controller, log = load(args)
    print(describe(args.log, args.config, log), flush=True)
    if args.realtime:
        return _play(controller, log)
    result = replay(controller, log, on_step=None if args.quiet else _print_events)
    for line in summary(result):
        print(line)
    if args.output is not None:
        write_frames(args.output, log, result.frames)
        print(f"  wrote {len(result.frames)} frames to {args.output}")
    if args.compare:
        return _compare(controller, log, result, args.tolerance, args.tail)
    return 0


def describe(path: Path, config: str | None, log: Log) -> str:
    received = Counter(log.received.bus_names[int(b)] for b in log.received.bus)
    buses = ", ".join(f"{n} {received.get(n, 0)}" for n in log.bus_names)
    return (
        f"canbms replay: {path}, {log.end:.2f} s; frames received per bus: {buses}; "
        f"{len(log.sent)} sent by the live controller\n"
        f"  configuration: {config or 'embedded default configuration'}"
    )


def _print_events(now: float, result: StepResult) -> None:
    for event in result.events:
        print(f"t={now:8.3f} s  {event}", flush=True)


def summary(result: Replayed) -> list[str]:
    levels = Counter(f"{LEVELS[e.level]} {e.kind}" for e in result.events)
    counted = ", ".join(f"{n} {what}" for what, n in sorted(levels.items())) or "none"
    return [
        "summary (virtual time)",
        f"  {result.steps} controller cycles, {len(result.events)} events ({counted})",
        f"  {len(result.frames)} frames sent by the controller",
    ]


def _compare(
    controller: Controller, log: Log, result: Replayed, tolerance: float, tail: float
) -> int:
    if not log.sent:
        raise ValueError("--compare: the log holds no frame the live controller sent")
    until = log.sent[-1].time - tail
    comparison = compare(controller, log.sent, result.frames, until, tolerance)
    print(
        f"compared with the live controller up to t={until:.2f} s "
        f"({comparison.compared} frames, within {tolerance:g} s): "
        f"{len(comparison.differences) or 'no'} differences"
    )
    for difference in comparison.differences:
        print(f"  {difference}")
    if comparison.not_compared:
        shell = ", ".join(comparison.not_compared)
        print(f"  not compared (not sent by the controller core): {shell}")
    return EXIT_DIFFERENT if comparison.differences else 0


def _play(controller: Controller, log: Log) -> int:
    with contextlib.ExitStack() as stack:
        buses = {n: stack.enter_context(b) for n, b in open_buses(controller.config).items()}
        print(f"  playing {len(log.received)} received frames in real time", flush=True)
        sent = play(log, buses)
    print(f"  sent {sent} frames")
    return 0
