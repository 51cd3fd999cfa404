"""``canbms demo``: the simulated pack and the controller together through a scenario.

Both run in virtual time and every frame crosses python-can's in-process ``virtual`` bus;
the plant runs faster than real time, which the status lines say.
"""

from __future__ import annotations

import argparse
import time

from hil.scenarios import SCENARIOS
from hil.scenarios.session import DEMO_DURATION


def add_subparser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="simulated pack + controller through a scripted session",
        description=__doc__.splitlines()[0],
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
        type=float,
        default=None,
        help=f"virtual seconds (session: {DEMO_DURATION:.0f}; scenarios: until they end)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the simulated pack")
    parser.add_argument(
        "--speed", type=float, default=0.0, help="pace: 1 = real time, 0 = as fast as possible"
    )
    parser.add_argument(
        "--every",
        type=float,
        default=None,
        help="status line period, virtual s (session: 1; scenarios: 10)",
    )
    parser.set_defaults(func=demo)


def demo(args: argparse.Namespace) -> int:
    """Any scenario: live status every ``--every`` virtual seconds, then its summary."""
    every = args.every if args.every is not None else (1.0 if args.scenario == "session" else 10.0)
    started = time.perf_counter()
    options = {"variant": args.variant} if args.scenario == "discharge" else {}
    with SCENARIOS[args.scenario](seed=args.seed, **options) as scenario:
        if args.duration is not None:
            scenario.max_duration = args.duration
        next_line = 0.0
        printed = 0
        print(f"canbms demo --scenario {scenario.title}", flush=True)
        while not scenario.finished and scenario.bench.now < scenario.max_duration - 1e-9:
            result = scenario.step()
            now = scenario.bench.now
            for at, label in scenario.log[printed:]:
                print(f"t={at:6.1f}s  >> {label}", flush=True)
            printed = len(scenario.log)
            for line in map(str, result.events):
                print(f"t={now:6.1f}s  !! {line}", flush=True)
            if now + 1e-9 >= next_line or scenario.finished:
                next_line += every
                print(scenario.status(now, result), flush=True)
            if args.speed > 0:
                ahead = now / args.speed - (time.perf_counter() - started)
                if ahead > 0:
                    time.sleep(ahead)
        wall = time.perf_counter() - started
        virtual = scenario.bench.now
        print("\nsummary (virtual time)")
        for line in scenario.summary():
            print(line)
        print(
            f"  {virtual:.0f} s of virtual time in {wall:.1f} s of wall time "
            f"({virtual / max(wall, 1e-9):.1f}x real time), "
            f"{scenario.bench.frames_carried} frames over the virtual bus"
        )
    return 0
