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

from hil import report
from hil.matrix import load_matrix
from hil.rows import Outcome
from hil.run_matrix import load, run_lockstep, run_realtime
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
    print(f"  {o.verdict:<7} {o.row.name:<45} {'; '.join(o.failures) or o.error}", flush=True)


def run_hil(args: argparse.Namespace) -> int:
    config = load(args.config)
    rows = _select(args, load_matrix(args.matrix, config.diagnosis))
    began = time.monotonic()
    source = str(args.config) if args.config else "the bench configuration (hil/matrix/bench.toml)"
    if args.controller_config:
        source += f"; the controller under test runs {args.controller_config}"
    if args.realtime:
        mode = "black-box real time"
        print(f"canbms hil: {len(rows)} rows, {mode}, plant seed {args.seed}", flush=True)
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
            outcomes = run_realtime(rows, config, buses, args.seed, args.step, _line, restart)
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
