"""``canbms config``: check a configuration file, or write its JSON Schema.

``check FILE`` prints the effective configuration after presets and defaults (TOML, or JSON
with ``--json``), the warnings and the notices of building the assembly from it (frames
ignored, measured quantities not available); the exit code is non-zero with the error
naming the key.
``schema`` writes the JSON Schema (draft 2020-12) editors validate ``canbms.toml`` with.
``reference`` prints the key tables of docs/configuration.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from controller.config.declare import dump
from controller.errors import CanbmsError


def _check(args: argparse.Namespace) -> int:
    """Load the file and build the whole assembly from it, as ``canbms run`` would."""
    from controller.config.loader import load_config
    from controller.config.review import warnings
    from controller.config.safety import warnings as override_warnings
    from controller.core import Controller

    try:
        config = load_config(args.file)
        controller = Controller(config)
    except CanbmsError as exc:
        print(f"{args.file}: error: {exc}", file=sys.stderr)
        return 2
    effective = dump(config)
    print(json.dumps(effective, indent=2) if args.json else toml_text(effective), end="")
    for text in [*override_warnings(controller.overrides), *warnings(config)]:
        print(f"warning: {text}", file=sys.stderr)
    for text in controller.notices:
        print(f"notice: {text}", file=sys.stderr)
    return 0


def _schema(args: argparse.Namespace) -> int:
    from controller.config.schema import write_schema

    text = write_schema(None if args.output == "-" else args.output)
    if args.output == "-":
        print(text, end="")
    else:
        print(f"wrote {args.output}", file=sys.stderr)
    return 0


def _reference(args: argparse.Namespace) -> int:
    from controller.config.schema import reference

    print(reference(), end="")
    return 0


def toml_text(table: dict[str, Any], path: str = "") -> str:
    """A TOML rendering of plain tables, arrays and scalars (what `dump` returns)."""
    lines, tables = [], []
    for key, value in table.items():
        if isinstance(value, dict):
            tables.append((key, value))
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            tables.extend((key, [v]) for v in value)
        else:
            lines.append(f"{_key(key)} = {_value(value)}")
    text = "\n".join(lines) + ("\n" if lines else "")
    for key, value in tables:
        name = f"{path}.{_key(key)}" if path else _key(key)
        if isinstance(value, list):
            text += f"\n[[{name}]]\n" + toml_text(value[0], name)
        else:
            text += f"\n[{name}]\n" + toml_text(value, name)
    return text


def _key(key: str) -> str:
    return key if key.replace("_", "").replace("-", "").isalnum() else json.dumps(key)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items()) + "}"
    return json.dumps(value)


def add_subparser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "config", help="check a configuration file or write its JSON Schema", description=__doc__
    )
    commands = parser.add_subparsers(dest="config_command", required=True)
    check = commands.add_parser("check", help="validate FILE and print the effective configuration")
    check.add_argument("file", metavar="FILE")
    check.add_argument("--json", action="store_true", help="print JSON instead of TOML")
    check.set_defaults(func=_check)
    schema = commands.add_parser("schema", help="write the JSON Schema of canbms.toml")
    schema.add_argument("-o", "--output", default="-", help="file to write ('-': stdout)")
    schema.set_defaults(func=_schema)
    reference = commands.add_parser("reference", help="print the reference tables of the keys")
    reference.set_defaults(func=_reference)
