"""``canbms bench``: measure decoder, controller cycle, simulator, live runtime and memory.

Every number is set against a baseline measured or fixed in the same run: a cantools
``decode_message`` loop over the same frames, the 1 ms budget of a controller step, real
time for the simulator, the frames offered to the live runtime and the bound on its
reaction, the process before the pack and after a minute for memory. ``--quick`` runs each
case briefly and leaves out the 100,000-cell pack (whose in-memory DBC alone takes most of
a minute to build).
"""

from __future__ import annotations

import argparse
import sys

BENCHMARKS = ("decode", "core", "simulator", "soc", "live", "memory")


def _run(args: argparse.Namespace) -> int:
    from hil.benchmarks import run

    only = tuple(args.only or BENCHMARKS)
    progress = (lambda text: print(f"  {text} ...", file=sys.stderr)) if args.verbose else None
    header = f"{'benchmark':10s} {'case':52s} {'ours':>12s} {'unit':17s} {'baseline':>22s} ratio"
    print(header)
    print("-" * len(header))
    for row in run(quick=args.quick, only=only, progress=progress or (lambda _: None)):
        baseline = f"{_number(row.baseline_value)} {row.baseline}"
        print(
            f"{row.benchmark:10s} {row.case:52s} {_number(row.value):>12s} {row.unit:17s} "
            f"{baseline:>22s} {row.better:5.2f}x  {row.note}",
            flush=True,
        )
    return 0


def _number(value: float) -> str:
    """Thousands separated above 100, three significant decimals below."""
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def add_subparser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "bench",
        help="run the benchmarks and print numbers against baselines",
        description=__doc__.splitlines()[0].split(": ", 1)[1],
    )
    parser.add_argument("--quick", action="store_true", help="short runs, up to 10,000 cells")
    parser.add_argument(
        "--only", action="append", choices=BENCHMARKS, help="run this benchmark (repeatable)"
    )
    parser.set_defaults(func=_run)
