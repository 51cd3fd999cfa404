"""``canbms dbc``: generate the slave-bus DBC for a pack topology, or summarise a DBC."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cantools

from dbc.layout import BAUDRATE
from dbc.slave_protocol import build_database, dump_string
from dbc.topology import Topology


def _add_topology_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = Topology()
    parser.add_argument("--modules", type=int, default=defaults.modules, help="slave modules")
    parser.add_argument(
        "--cells", type=int, default=defaults.cells_per_module, help="cells per module"
    )
    parser.add_argument(
        "--sensors", type=int, default=defaults.sensors_per_module, help="sensors per module"
    )
    parser.add_argument("--fd", action="store_true", help="CAN FD (64-byte frames)")
    parser.add_argument(
        "--extended-ids",
        action="store_true",
        help="29-bit identifiers (needed above 64 modules)",
    )


def _topology(args: argparse.Namespace) -> Topology:
    return Topology(args.modules, args.cells, args.sensors, args.fd, args.extended_ids)


def _generate(args: argparse.Namespace) -> int:
    text = dump_string(_topology(args))
    if args.output in (None, "-"):
        sys.stdout.write(text)
    else:
        Path(args.output).write_text(text, encoding="utf-8", newline="\n")
    return 0


def _classic_frame_bits(length: int) -> int:
    """Worst-case bits of an 11-bit-ID classic frame with bit stuffing and interframe space."""
    return 8 * length + 44 + (34 + 8 * length - 1) // 4 + 3


def _groups(message: cantools.database.can.Message) -> int:
    ids = {i for s in message.signals for i in (s.multiplexer_ids or ())}
    return max(len(ids), 1)


def _show(args: argparse.Namespace) -> int:
    if args.file:
        database = cantools.database.load_file(args.file, strict=True)
        title = args.file
    else:
        topology = _topology(args)
        database = build_database(topology)
        title = topology.describe()
    print(title)
    header = f"{'message':<24} {'ID':>6} {'DLC':>4} {'period':>8} {'groups':>6} {'signals':>7}"
    print(header)
    print("-" * len(header))
    frames_per_s = 0.0
    bits_per_s = 0.0
    fd = False
    for message in sorted(database.messages, key=lambda m: m.frame_id):
        period = message.cycle_time
        groups = _groups(message)
        fd = fd or message.is_fd
        if period:
            rate = groups * 1000.0 / period
            frames_per_s += rate
            bits_per_s += rate * _classic_frame_bits(message.length)
        print(
            f"{message.name:<24} {f'0x{message.frame_id:03X}':>6} {message.length:>4} "
            f"{(f'{period} ms' if period else '-'):>8} {groups:>6} {len(message.signals):>7}"
        )
    load = "n/a on CAN FD" if fd else f"{100.0 * bits_per_s / BAUDRATE:.1f} % at 500 kbit/s"
    print(f"{len(database.messages)} messages, {frames_per_s:.0f} frames/s, worst-case load {load}")
    return 0


def add_subparser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("dbc", help="generate or summarise the slave-bus DBC")
    actions = parser.add_subparsers(dest="dbc_command", required=True)

    generate = actions.add_parser("generate", help="write the slave DBC for a topology")
    _add_topology_arguments(generate)
    generate.add_argument("-o", "--output", help="output file (default: standard output)")
    generate.set_defaults(func=_generate)

    show = actions.add_parser("show", help="summary table of the slave messages")
    _add_topology_arguments(show)
    show.add_argument("--file", help="summarise this DBC file instead of a generated topology")
    show.set_defaults(func=_show)
