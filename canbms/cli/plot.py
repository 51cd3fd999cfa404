"""canbms plot: a recorded run on one page.

The log is replayed through the controller of the configuration, as canbms replay does, and
what the controller saw and decided is drawn: the cell-voltage envelope, current against
CCL/DCL, SOC, temperatures, the contactors' closed stretches and every warning, alarm and
fault. Needs matplotlib (pip install 'canbms[plot]').
"""

from __future__ import annotations

import argparse
from pathlib import Path

from canbms.cli.replay import load
from hil.plot import render
from hil.recording import log_path
from hil.replay import replay
from hil.series import Series


def add_subparser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "plot",
        help="draw a recorded run: cell voltages, current and limits, SOC, temperatures",
        description=" ".join(__doc__.split()),
    )
    parser.add_argument("log", type=log_path, help="the recording (.blf, .asc, .log, .csv, .mf4)")
    parser.add_argument("--config", help="configuration TOML (default: the embedded one)")
    parser.add_argument(
        "-o", "--output", type=Path, required=True, help="image to write (.png, .svg, .pdf)"
    )
    parser.set_defaults(func=run_plot)


def run_plot(args: argparse.Namespace) -> int:
    controller, log = load(args)
    series = Series()
    result = replay(controller, log, on_step=series.add)
    title = f"{args.log.name} replayed through {args.config or 'the embedded configuration'}"
    render(series, args.output, title)
    faults = sum(1 for m in series.marks if m.kind == "set")
    print(
        f"canbms plot: {args.output}: {log.end:.1f} s, {result.steps} cycles, "
        f"{faults} warnings, alarms and faults marked"
    )
    return 0
