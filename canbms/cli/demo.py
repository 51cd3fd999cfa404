"""``canbms demo``: the simulated pack and the controller together through a scripted session.

Both run in virtual time and every frame crosses python-can's in-process ``virtual`` bus;
the plant runs faster than real time, which the status lines say.
"""

from __future__ import annotations

import argparse
import time
import tomllib
from importlib import resources

from controller.config.loader import parse_config
from controller.core import Controller, ControllerState, StepResult
from controller.event_log import event_lines
from hil.bench import VirtualBench
from hil.scenario import DEMO_DURATION, Milestones, Session, demo_actions, demo_system
from hil.scenarios import SCENARIOS


def add_subparser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="simulated pack + controller through a scripted session",
        description=__doc__.splitlines()[0],
    )
    parser.add_argument(
        "--scenario",
        choices=("session", *SCENARIOS),
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


def demo_config():
    text = resources.files("hil").joinpath("demo.toml").read_text(encoding="utf-8")
    return parse_config(tomllib.loads(text))


def status_line(now: float, result: StepResult, soc: float, speed: float) -> str:
    s = result.state
    v, t = result.view.voltage_stats, result.view.temperature_stats
    return (
        f"t={now:5.1f}s  {s.contactors.state.name:<16} level {int(s.protection.highest)}  "
        f"I={result.view.current.value:7.1f} A  "
        f"CCL={s.published.ccl:6.1f} DCL={s.published.dcl:6.1f} A  "
        f"cell {v.minimum:.3f}..{v.maximum:.3f} V (#{v.argmin}/#{v.argmax})  "
        f"T {t.maximum:4.1f} C  SOC {soc * 100:5.1f} %  [{speed:4.1f}x real time]"
    )


def reception(state: ControllerState) -> str:
    """Frames the controller accepted, rejected (E2E, length, mux) and did not know."""
    ingest = state.ingest.values()
    accepted = sum(int(s.accepted.sum()) for s in ingest)
    rejected = sum(int(s.rejected.sum()) for s in ingest)
    unknown = sum(s.unknown for s in ingest)
    return f"{accepted} frames accepted, {rejected} rejected, {unknown} with unknown IDs"


def summary(m: Milestones, wall: float, virtual: float, frames: int) -> list[str]:
    def at(value: float | None) -> str:
        return "not reached" if value is None else f"{value:.2f} s"

    lines = [
        "",
        "summary (virtual time)",
        f"  contactors closed for discharge  {at(m.closed_discharge)}",
        f"  peak discharge current           {m.peak_discharge:.1f} A",
        f"  contactors closed for charge     {at(m.closed_charge)}",
        f"  CCL before / at top of charge    {m.ccl_before_taper:.1f} A / {m.ccl_at_top:.1f} A",
        f"  fault injected                   {at(m.fault_injected)}",
    ]
    if m.fault_injected is not None:
        detected = None if m.fault_detected is None else (m.fault_detected - m.fault_injected)
        opened = None if m.contactors_open is None else (m.contactors_open - m.fault_injected)
        lines += [
            f"  fault detected after             {at(detected)}",
            f"  contactors commanded open after  {at(opened)}",
        ]
    lines.append(
        f"  {virtual:.0f} s of virtual time in {wall:.1f} s of wall time "
        f"({virtual / max(wall, 1e-9):.1f}x real time), {frames} frames over the virtual bus"
    )
    return lines


def demo(args: argparse.Namespace) -> int:
    if args.scenario != "session":
        return run_scenario(args)
    duration = DEMO_DURATION if args.duration is None else args.duration
    every = 1.0 if args.every is None else args.every
    system, load = demo_system(args.seed)
    controller = Controller(demo_config())
    started = time.perf_counter()
    next_line = [0.0]

    with VirtualBench(system, controller) as bench:
        session = Session(bench, load, demo_actions())
        printed = 0

        def show(now: float, result: StepResult) -> None:
            nonlocal printed
            while printed < len(session.log):
                at, label = session.log[printed]
                print(f"t={at:5.1f}s  >> {label}", flush=True)
                printed += 1
            for line in event_lines(result.events):
                print(f"t={now:5.1f}s  !! {line}", flush=True)
            if now + 1e-9 >= next_line[0]:
                next_line[0] += every
                speed = now / max(time.perf_counter() - started, 1e-9)
                print(status_line(now, result, float(system.pack.soc.mean()), speed), flush=True)
            if args.speed > 0:
                ahead = now / args.speed - (time.perf_counter() - started)
                if ahead > 0:
                    time.sleep(ahead)

        bench.on_step = show
        print(
            "canbms demo: 96s NMC pack and controller on the python-can virtual bus, "
            "in virtual time (faster than real time unless --speed 1)"
        )
        milestones = session.run(duration)
        wall = time.perf_counter() - started
        for line in summary(milestones, wall, bench.now, bench.frames_carried):
            print(line)
        print(f"  controller reception             {reception(bench.state)}")
    return 0


def run_scenario(args: argparse.Namespace) -> int:
    """A closed-loop scenario: live status every ``--every`` virtual seconds, then its summary."""
    every = 10.0 if args.every is None else args.every
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
            for line in event_lines(result.events):
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
