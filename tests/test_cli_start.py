"""What a start of ``canbms run`` imports: its own command and the controller, not the plant
simulator, the HIL tools or protocols the configuration does not use, so a supervisor that
restarts the controller after a crash gets the pack its master back sooner."""

from __future__ import annotations

import subprocess
import sys

import pytest

from canbms.cli import SUBCOMMANDS, build_parser, named_command

IMPORTED = """
import sys
from canbms.cli import build_parser, named_command
from controller.config.loader import default_config
from controller.core import Controller
args = build_parser(named_command(sys.argv[1:])).parse_args(sys.argv[1:])
Controller(default_config())
print(" ".join(sorted(sys.modules)))
"""


def _imported_by(argv: list[str]) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", IMPORTED, *argv], capture_output=True, text=True, check=True
    )
    return set(out.stdout.split())


def test_a_run_imports_neither_the_plant_nor_the_tools_nor_unused_protocols() -> None:
    imported = _imported_by(["-v", "run", "--duration", "1"])
    assert "canbms.cli.run" in imported and "controller.core" in imported
    for absent in ("slaves", "canbms.cli.sim", "hil.replay", "controller.adapters.registry"):
        assert absent not in imported, absent


@pytest.mark.parametrize(
    ("argv", "command"),
    [
        (["run", "--config", "x.toml"], "run"),
        (["--debug", "-vv", "sim", "--load", "-5"], "sim"),
        (["-h"], None),
        ([], None),
    ],
)
def test_the_command_is_the_first_word_that_is_no_option(argv: list[str], command) -> None:  # noqa: ANN001
    assert named_command(argv) == command


def test_a_named_command_parses_alone_and_any_other_line_sees_every_command() -> None:
    alone = build_parser("run")._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    assert list(alone) == ["run"]
    for line in (None, "no-such-command"):
        every = build_parser(line)._subparsers._group_actions[0].choices  # type: ignore[union-attr]
        assert list(every) == list(SUBCOMMANDS)
