"""Readable lines from a step's events: one line per kind of transition, not per cell.

A module that falls silent invalidates all of its cells in the same step; logging one line
per cell would bury the cause. Fault events of one step that share check, level and kind
are folded into one line naming the element range; other events pass through as they are.
"""

from __future__ import annotations

from collections.abc import Iterable

from controller.protection import FaultEvent


def _ranges(elements: list[int]) -> str:
    """``[3, 4, 5, 9]`` -> ``"3-5, 9"``."""
    parts: list[str] = []
    start = prev = elements[0]
    for e in elements[1:]:
        if e != prev + 1:
            parts.append(f"{start}-{prev}" if prev > start else str(start))
            start = e
        prev = e
    parts.append(f"{start}-{prev}" if prev > start else str(start))
    return ", ".join(parts)


def event_lines(events: Iterable[object]) -> list[str]:
    order: list[object] = []  # a folded group's key, or an event shown as it is
    groups: dict[tuple[object, ...], list[FaultEvent]] = {}
    for event in events:
        if isinstance(event, FaultEvent) and event.element is not None:
            key = (event.check, event.level, event.kind, event.element_kind)
            if key not in groups:
                groups[key] = []
                order.append(key)
            groups[key].append(event)
        else:
            order.append(event)
    lines = []
    for item in order:
        group = groups.get(item) if isinstance(item, tuple) else None
        if group is None:
            lines.append(str(item))
        elif len(group) == 1:
            lines.append(str(group[0]))
        else:
            first = group[0]
            elements = sorted(e.element for e in group if e.element is not None)
            lines.append(
                f"{first.check.value} {first.level.name.lower()} {first.kind} "
                f"{first.element_kind}s {_ranges(elements)} ({len(group)} elements)"
            )
    return lines
