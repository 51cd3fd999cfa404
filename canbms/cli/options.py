"""What the commands share about arguments: types that refuse the same bad values everywhere,
and help text free of docstring markup."""

from __future__ import annotations

import argparse
import math
from typing import Any


def seconds(text: str) -> float:
    """A positive, finite number of seconds (``--duration``, ``--every``)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"{text} is not a positive number of seconds")
    return value


class PlainHelpFormatter(argparse.HelpFormatter):
    """Help text without the reStructuredText markup of the docstrings it is taken from
    (``code``, `name`), which a terminal shows literally."""

    def _format_text(self, text: str) -> str:
        return super()._format_text(plain(text))

    def _expand_help(self, action: argparse.Action) -> str:
        return plain(super()._expand_help(action))


class HelpParser(argparse.ArgumentParser):
    """An argument parser, and every subcommand's parser, with `PlainHelpFormatter`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", PlainHelpFormatter)
        super().__init__(*args, **kwargs)


def plain(text: str) -> str:
    """``text`` without the backquotes of reStructuredText literals and references (and of
    python-can's own option help)."""
    return text.replace("`", "")
