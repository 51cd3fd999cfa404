"""canbms demo: the simulated pack and the controller together through a scenario.

Both run in lock-step virtual time, every frame handed between them in the process; the
plant runs faster than real time, which the status line says. On a terminal the status line
updates in place, with what the script did and what the controller reported printed above
it; into a file or a pipe every status is a line of its own.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path
from typing import TextIO

from canbms.cli.options import seconds
from hil.scenarios import SCENARIOS
from hil.scenarios.session import DEMO_DURATION
from hil.series import Series


def add_subparser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="simulated pack + controller through a scripted session",
        description=" ".join(__doc__.split("\n\n")[1].split()),
    )
    parser.add_argument(
        "--scenario",
        choices=tuple(SCENARIOS),
        default="session",
        help="session: the scripted tour (default); charge, discharge, canopen: closed loops "
        "through the charger/inverter protocols",
    )
    parser.add_argument(
        "--variant",
        choices=("victron", "pylontech", "sma"),
        default="victron",
        help="CAN-BMS inverter variant of the discharge scenario",
    )
    parser.add_argument(
        "--duration",
        type=seconds,
        default=None,
        help=f"virtual seconds (session: {DEMO_DURATION:.0f}; scenarios: until they end)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the simulated pack")
    parser.add_argument(
        "--speed", type=_speed, default=0.0, help="pace: 1 = real time, 0 = as fast as possible"
    )
    parser.add_argument(
        "--every",
        type=seconds,
        default=None,
        help="status period, virtual s (session: 1; scenarios: 10)",
    )
    parser.add_argument(
        "--plot",
        type=Path,
        metavar="FILE",
        help="draw the run (cell voltages, current and limits, SOC, temperatures, faults) "
        "into FILE (.png, .svg, .pdf); needs matplotlib",
    )
    parser.set_defaults(func=demo)


def _speed(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"{text} is not 0 or a positive pace")
    return value


class StatusLine:
    """One status line that a terminal redraws in place; elsewhere one line per status."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.in_place = out.isatty()
        self._shown = False

    def show(self, text: str) -> None:
        if not self.in_place:
            print(text, file=self.out, flush=True)
            return
        width = shutil.get_terminal_size().columns - 1  # a wrapped line cannot be redrawn
        self.out.write(f"\r\x1b[K{text[:width]}")
        self.out.flush()
        self._shown = True

    def note(self, text: str) -> None:
        """A line that stays, above the status line."""
        if self._shown:
            self.out.write("\r\x1b[K")
            self._shown = False
        print(text, file=self.out, flush=True)

    def end(self) -> None:
        if self._shown:
            self.out.write("\n")
            self._shown = False


def demo(args: argparse.Namespace) -> int:
    """Any scenario: live status every ``--every`` virtual seconds, then its summary."""
    every = args.every if args.every is not None else (1.0 if args.scenario == "session" else 10.0)
    started = time.perf_counter()
    options = {"variant": args.variant} if args.scenario == "discharge" else {}
    series = Series() if args.plot is not None else None
    line = StatusLine(sys.stdout)
    with SCENARIOS[args.scenario](seed=args.seed, **options) as scenario:
        if args.duration is not None:
            scenario.max_duration = args.duration
        next_line = 0.0
        printed = 0
        print(f"canbms demo --scenario {scenario.title}", flush=True)
        while not scenario.finished and scenario.bench.now < scenario.max_duration - 1e-9:
            result = scenario.step()
            now = scenario.bench.now
            if series is not None:
                series.add(now, result)
            for at, label in scenario.log[printed:]:
                line.note(f"t={at:6.1f}s  >> {label}")
            printed = len(scenario.log)
            for event in map(str, result.events):
                line.note(f"t={now:6.1f}s  !! {event}")
            if now + 1e-9 >= next_line or scenario.finished:
                next_line += every
                line.show(scenario.status(now, result))
            if args.speed > 0:
                ahead = now / args.speed - (time.perf_counter() - started)
                if ahead > 0:
                    time.sleep(ahead)
        line.end()
        wall = time.perf_counter() - started
        virtual = scenario.bench.now
        print("\nsummary (virtual time)")
        for text in scenario.summary():
            print(text)
        print(
            f"  {virtual:.0f} s of virtual time in {wall:.1f} s of wall time "
            f"({virtual / max(wall, 1e-9):.1f}x real time), "
            f"{scenario.bench.frames_carried} frames carried to the controller"
        )
    if series is not None:
        from hil.plot import render  # matplotlib only when a plot is asked for

        title = f"canbms demo --scenario {args.scenario} (seed {args.seed}), virtual time"
        print(f"  plot: {render(series, args.plot, title)}")
    return 0
