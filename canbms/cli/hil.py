"""``canbms hil``: the fault matrix against the controller, with a reaction-time report.

Lock-step (default): the controller's core runs in this process with the simulated plant in
virtual time, one fresh plant and controller per row, rows spread over ``--jobs`` processes.
``--realtime``: the plant alone runs in real time on the buses given (python-can's
``-i/-c/-b`` for the internal bus, ``--vehicle-*`` for the vehicle bus); the controller under
test is whatever answers there (``canbms run --config ...`` or a device), and every time
comes from bus timestamps. Exit 0 when every judged row passed, 1 when any failed.
"""

from __future__ import annotations

import argparse
import contextlib
import shlex
import time
from pathlib import Path

import can
import can.cli

from controller.config.loader import ControllerConfig
from hil import report
from hil.matrix import load_matrix
from hil.rows import Outcome
from hil.run_matrix import load, raise_priority, run_lockstep, run_realtime
from hil.soak import SoakResult, run_soak
from slaves.system import INTERNAL, VEHICLE


def add_subparser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "hil",
        help="run the fault matrix and write the reaction-time report",
        description=(
            "Inject every fault of a fault matrix into the simulated plant with the pack in "
            "each listed state, and time the controller's reactions (diagnosis, limits to "
            "zero, open command, coils open) against bounds computed from the configuration. "
            "Writes report.md, report.html, junit.xml and a plot per row (extra 'plot') to "
            "the output directory; exits 1 when a row fails. See docs/hil.md."
        ),
    )
    parser.add_argument(
        "--matrix",
        type=Path,
        default=None,
        help="matrix file (default: the shipped default matrix)",
    )
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        help="controller configuration (default: the bench's, hil/matrix/bench.toml)",
    )
    parser.add_argument(
        "-o", "--output", type=Path, default=Path("hil-report"), help="report directory"
    )
    parser.add_argument(
        "--controller-config",
        type=Path,
        default=None,
        help="lock-step: the configuration the controller under test runs (default: --config, "
        "which the bounds always come from)",
    )
    parser.add_argument("--quick", action="store_true", help="only the rows marked quick")
    parser.add_argument(
        "--row",
        action="append",
        default=[],
        metavar="NAME",
        help="only rows whose fault@state contains NAME (repeatable)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the plant (spreads and noise)")
    parser.add_argument(
        "--jobs", type=int, default=2, help="lock-step worker processes (default 2)"
    )
    parser.add_argument(
        "--realtime",
        action="store_true",
        help="black box: the plant on real buses, the controller elsewhere",
    )
    parser.add_argument("--step", type=float, default=0.01, help="real-time plant step in s")
    parser.add_argument(
        "--restart",
        default=None,
        metavar="COMMAND",
        help="--realtime: start the controller with COMMAND for each row and stop it after "
        "(for a controller process, so a latch no reset clears stays in its row)",
    )
    parser.add_argument(
        "--retries",
        type=int,
        default=2,
        help="--realtime: run a row again this often while the bench could not keep real "
        "time (a plant step, or a --restart controller's frames, late by more than the "
        "contactor driver's command timeout)",
    )
    parser.add_argument(
        "--rt-priority",
        type=int,
        default=10,
        help="--realtime: the plant and the --restart controller run SCHED_RR at this "
        "priority (default 10; 0: normal scheduling; without the privilege niceness -10)",
    )
    parser.add_argument(
        "--soak",
        type=float,
        default=None,
        metavar="HOURS",
        help="instead of the matrix: drive and charge the healthy pack with rests for HOURS "
        "simulated hours in lock-step and count every warning, alarm and fault (exit 1 on "
        "any alarm or fault; docs/hil.md)",
    )
    parser.add_argument(
        "--cycle-ms",
        type=float,
        default=None,
        help="--soak: control cycle of the controller and plant step (default: the "
        "configuration's; a longer one, up to 100 ms, runs a day in fewer steps)",
    )
    can.cli.add_bus_arguments(parser, group_title="internal bus (--realtime)")
    can.cli.add_bus_arguments(parser, prefix="vehicle", group_title="vehicle bus (--realtime)")
    parser.set_defaults(func=run_hil)


def _select(args: argparse.Namespace, rows: list) -> list:
    chosen = [r for r in rows if r.quick] if args.quick else rows
    if args.row:
        chosen = [r for r in chosen if any(name in r.name for name in args.row)]
    if not chosen:
        raise ValueError("no row selected")
    return chosen


def _line(o: Outcome) -> None:
    said = "; ".join(filter(None, (o.error, *o.failures)))
    stalls = f"[{o.stalls}]" if o.stalls else ""
    print(f"  {o.verdict:<7} {o.row.name:<45} {stalls} {said}".rstrip(), flush=True)


def run_hil(args: argparse.Namespace) -> int:
    if args.soak is not None:
        cycle = {} if args.cycle_ms is None else {"cycle_ms": args.cycle_ms}
        return _soak(load(args.config, **cycle), args.soak, args.seed)
    config = load(args.config)
    rows = _select(args, load_matrix(args.matrix, config.diagnosis))
    began = time.monotonic()
    source = str(args.config) if args.config else "the bench configuration (hil/matrix/bench.toml)"
    if args.controller_config:
        source += f"; the controller under test runs {args.controller_config}"
    if args.realtime:
        mode = "black-box real time"
        priority = raise_priority(args.rt_priority)
        print(
            f"canbms hil: {len(rows)} rows, {mode}, plant seed {args.seed}, {priority}", flush=True
        )
        with contextlib.ExitStack() as stack:
            buses = {
                role: stack.enter_context(
                    can.cli.create_bus_from_namespace(
                        args, prefix=prefix, receive_own_messages=True
                    )
                )
                for role, prefix in ((INTERNAL, None), (VEHICLE, "vehicle"))
            }
            restart = shlex.split(args.restart) if args.restart else None
            outcomes = run_realtime(
                rows, config, buses, args.seed, args.step, _line, restart, args.retries
            )
    else:
        mode = "lock-step virtual time"
        print(
            f"canbms hil: {len(rows)} rows, {mode}, {args.jobs} jobs, plant seed {args.seed}",
            flush=True,
        )
        config_path = str(args.config) if args.config else None
        under_test = str(args.controller_config) if args.controller_config else None
        outcomes = run_lockstep(rows, config_path, args.seed, args.jobs, _line, under_test)
    elapsed = time.monotonic() - began
    preamble = (
        f"Mode: {mode}. Configuration: {source}. Plant seed {args.seed}. "
        f"Times are from the fault's onset to the first frame showing each reaction; "
        f"a bound is the sum of configured times listed below the table."
    )
    for note in report.write(outcomes, args.output, "Reaction times", preamble):
        print(f"canbms hil: {note}")
    print(f"canbms hil: {report.summary(outcomes)} in {elapsed:.1f} s; report in {args.output}")
    return 0 if all(o.passed for o in outcomes) else 1


def _soak(config: ControllerConfig, hours: float, seed: int) -> int:
    def progress(now: float, result: SoakResult) -> None:
        raised = f"{len(result.false_alarms)} alarms/faults so far"
        print(f"  t={now / 3600.0:6.2f} h  {raised}", flush=True)

    print(f"canbms hil --soak: {hours:g} simulated hours, lock-step, plant seed {seed}", flush=True)
    result = run_soak(config, hours, seed, progress)
    for line in result.lines():
        print(f"canbms hil --soak: {line}")
    return 1 if result.false_alarms else 0
