"""Readable lines from a step's events: one line per event.

Each `controller.diagnosis.Event` already folds every element of one transition into one
array, so a module that falls silent is one line naming its cells as ranges, not a line
per cell.
"""

from __future__ import annotations

from collections.abc import Iterable


def event_lines(events: Iterable[object]) -> list[str]:
    return [str(event) for event in events]
