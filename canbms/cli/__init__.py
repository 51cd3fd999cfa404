"""``canbms`` entry point.

Each subcommand is a module of this package with ``add_subparser(subparsers)`` that sets
``func`` on its parser. Modules are imported one by one and a module that fails to import
only disables its own command, as in cantools' CLI. A command line that names a command
imports that command's module alone: ``canbms run`` restarted by a supervisor after a crash
does not wait for the plant simulator and the HIL tools to import before the pack has its
master again.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from canbms.cli.options import HelpParser

SUBCOMMANDS = (
    "sim", "run", "reset", "monitor", "replay", "plot", "demo", "dbc", "eds", "bench", "config",
    "hil",
)  # fmt: skip


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser of every command, or of ``command`` alone where it is one that is built in."""
    parser = HelpParser(prog="canbms", description="canbms: battery management system master")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging")
    subparsers = parser.add_subparsers(dest="command", required=True, parser_class=HelpParser)
    for name in (command,) if command in SUBCOMMANDS else SUBCOMMANDS:
        try:
            module = importlib.import_module(f"canbms.cli.{name}")
        except ImportError as exc:
            if exc.name and exc.name.startswith(f"canbms.cli.{name}"):
                continue  # command not built into this installation
            raise
        module.add_subparser(subparsers)
    if not subparsers.choices:  # the command named is not built in: list those that are
        return build_parser()
    return parser


def named_command(argv: list[str]) -> str | None:
    """The command of a command line: its first word that is not an option (the options
    before the command take no value)."""
    return next((word for word in argv if not word.startswith("-")), None)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(named_command(argv))
    args = parser.parse_args(argv)
    level = (logging.WARNING, logging.INFO, logging.DEBUG)[min(args.verbose, 2)]
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001 - the CLI reports, --debug shows the trace
        if args.debug:
            raise
        print(f"canbms {args.command}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
