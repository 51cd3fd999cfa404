"""``canbms eds``: write the CiA 418 battery node's object dictionary as an EDS file."""

from __future__ import annotations

import argparse
import sys
import tomllib
from dataclasses import replace
from pathlib import Path

from controller.canopen_node import build_dictionary, export_eds, load_battery_node_config


def _run(args: argparse.Namespace) -> int:
    data = {}
    if args.config:
        with open(args.config, "rb") as f:
            data = tomllib.load(f).get("canopen", {})
    config = load_battery_node_config(data)
    if args.node_id is not None:
        config = replace(config, node_id=args.node_id)
    od = build_dictionary(config)
    if args.output == "-":
        export_eds(od, sys.stdout, node_id=args.node_id)
        return 0
    path = Path(args.output)
    with path.open("w", encoding="utf-8", newline="\n") as f:
        export_eds(od, f, file_name=path.name, node_id=args.node_id)
    print(f"wrote {path} ({len(od)} objects)", file=sys.stderr)
    return 0


def _node_id(text: str) -> int:
    value = int(text, 0)
    if not 1 <= value <= 127:
        raise argparse.ArgumentTypeError(f"node ID {value} is outside 1..127")
    return value


def add_subparser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "eds",
        help="write the CANopen battery node's EDS",
        description=__doc__.splitlines()[0].split(": ", 1)[1],
    )
    parser.add_argument("-o", "--output", required=True, help="EDS file to write ('-': stdout)")
    parser.add_argument(
        "--node-id",
        type=_node_id,
        help="record this node ID in [DeviceComissioning] (COB-IDs stay $NODEID-relative)",
    )
    parser.add_argument("--config", help="TOML file whose [canopen] table sets the start-up values")
    parser.set_defaults(func=_run)
