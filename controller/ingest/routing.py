"""Compile-time resolution of a mapping against DBC slots: which column feeds which element.

Everything here runs once when the decoder is built; the result is a set of ``(K, S)``
tables indexed by slot, so the per-batch work is pure array indexing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from controller.errors import MappingError
from controller.ingest.layout import MessageLayout, SignalLayout, Slot, SlotTable
from controller.ingest.mapping import MappingConfig, Rule


@dataclass(frozen=True)
class Routes:
    """Per slot and column of ``table``: element, flag column, unit scale, invalid value."""

    table: SlotTable
    element: np.ndarray  # (K, S) int64 flat element index, -1 where not mapped
    flag: np.ndarray  # (K, S) intp column of the validity flag, -1 where none
    unit_scale: np.ndarray  # (K, S) float64
    invalid_value: np.ndarray  # (K, S) float64
    has_mapped: np.ndarray  # (K,) bool: the slot feeds at least one element
    slot_exclusive: bool  # no element is fed from two slots (e.g. a root signal of a mux)
    # Derived once for the per-batch scatter: per slot its mapped columns first, padded
    # to the widest slot (W), so a batch gathers whole rows instead of masking (N, S).
    column: np.ndarray = field(init=False)  # (K, W) intp: mapped column, 0 in padding
    target: np.ndarray = field(init=False)  # (K, W) int64: its element, -1 in padding
    flag_column: np.ndarray = field(init=False)  # (K, W) intp: its flag's column, or 0
    has_flag: np.ndarray = field(init=False)  # (K, W) bool: it has a validity flag
    flag_invalid: np.ndarray = field(init=False)  # (K, W) float64: the flag's invalid value
    scale: np.ndarray = field(init=False)  # (K, W) float64: its unit scale
    padded: bool = field(init=False)  # some slot maps fewer columns than W
    scaled: bool = field(init=False)  # some column has a unit scale other than 1

    def __post_init__(self) -> None:
        mapped = self.element >= 0
        count = mapped.sum(axis=1)
        width = max(int(count.max(initial=0)), 1)
        column = np.argsort(~mapped, axis=1, kind="stable")[:, :width]
        pad = np.arange(width) >= count[:, None]
        rows = np.arange(self.element.shape[0])[:, None]
        flag = self.flag[rows, column]
        derived = {
            "column": np.where(pad, 0, column),
            "target": np.where(pad, -1, self.element[rows, column]),
            "flag_column": np.where(pad | (flag < 0), 0, flag),
            "has_flag": ~pad & (flag >= 0),
            "flag_invalid": self.invalid_value[rows, column],
            "scale": self.unit_scale[rows, column],
            "padded": bool(pad.any()),
            "scaled": bool((self.unit_scale[mapped] != 1).any()),
        }
        for name, value in derived.items():
            object.__setattr__(self, name, value)


def _groups(rule: Rule, message: str, signal: str) -> dict[str, str] | None:
    """Named groups when ``rule`` selects ``signal`` of ``message``, else None."""
    found: dict[str, str] = {}
    if rule.message is not None:
        match = rule.message.fullmatch(message)
        if match is None:
            return None
        found.update(match.groupdict())
    match = rule.signal.fullmatch(signal)
    if match is None:
        return None
    found.update(match.groupdict())
    return found


def _number(groups: Mapping[str, str], name: str, rule: Rule, signal: str) -> int:
    text = groups.get(name)
    if text is None:
        return 0
    if not re.fullmatch(r"\d+", text):
        raise MappingError(f"{rule.key}: group {name!r} of {signal} is {text!r}, not a number")
    return int(text)


def route_slots(
    layouts: Sequence[MessageLayout],
    slots: Sequence[tuple[int, Slot]],
    mapping: MappingConfig,
    offsets: Mapping[str, tuple[int, int]],
) -> Routes:
    """Resolve every mapped signal of every (message index, slot) to a flat element."""
    for rule in mapping.rules:
        if rule.target not in offsets:
            known = ", ".join(offsets) or "none"
            raise MappingError(f"{rule.key}.target: {rule.target!r} is not a target ({known})")
    total = sum(size for _, size in offsets.values())
    feeder: dict[int, str] = {}  # element -> the one signal allowed to feed it
    home: dict[int, int] = {}  # element -> the first slot feeding it
    exclusive = True
    rows: list[list[SignalLayout]] = []
    entries: list[list[tuple[int, int, int, float, float]]] = []  # col, element, flag col, ...
    for slot_index, (msg_index, slot) in enumerate(slots):
        message = layouts[msg_index].name
        by_name = {s.name: s for s in slot.signals}
        columns: dict[str, int] = {}
        row: list[SignalLayout] = []
        found: list[tuple[int, int, int, float, float]] = []

        def column(sig: SignalLayout, row=row, columns=columns) -> int:
            if sig.name not in columns:
                columns[sig.name] = len(row)
                row.append(sig)
            return columns[sig.name]

        for sig in slot.signals:
            rule, groups = next(
                ((r, g) for r in mapping.rules if (g := _groups(r, message, sig.name)) is not None),
                (None, None),
            )
            if rule is None or groups is None:
                continue
            start, size = offsets[rule.target]
            index = (
                rule.offset
                + _number(groups, "module", rule, sig.name) * rule.per_module
                + _number(groups, "index", rule, sig.name)
            )
            if not 0 <= index < size:
                continue  # a signal for more cells than the pack has
            flag_col = -1
            if rule.validity is not None:
                flag_name = rule.validity.format(signal=sig.name, message=message, **groups)
                if flag_name not in by_name:
                    raise MappingError(
                        f"{rule.key}.validity: {message} has no signal {flag_name!r} "
                        f"in the frame carrying {sig.name}"
                    )
                flag_col = column(by_name[flag_name])
            found.append(
                (column(sig), start + index, flag_col, rule.unit_scale, rule.invalid_value)
            )
            here = f"{message}.{sig.name}"
            if feeder.setdefault(start + index, here) != here:
                raise MappingError(
                    f"{rule.key}: {rule.target}[{index}] is fed by both "
                    f"{feeder[start + index]} and {here} (check per_module and offset)"
                )
            exclusive &= home.setdefault(start + index, slot_index) == slot_index
        rows.append(row)
        entries.append(found)
    covered = np.zeros(total, bool)
    covered[list(feeder)] = True
    for name, (start, size) in offsets.items():
        missing = np.flatnonzero(~covered[start : start + size])
        if missing.size:
            raise MappingError(
                f"target {name}: element {int(missing[0])} of {size} is fed by no signal "
                f"({missing.size} elements uncovered)"
            )
    table = SlotTable(rows)
    k, s = len(rows) or 1, table.width
    element = np.full((k, s), -1, np.int64)
    flag = np.full((k, s), -1, np.intp)
    unit_scale = np.ones((k, s))
    invalid_value = np.ones((k, s))
    for r, found in enumerate(entries):
        for col, elem, flag_col, scale, invalid in found:
            element[r, col] = elem
            flag[r, col] = flag_col
            unit_scale[r, col] = scale
            invalid_value[r, col] = invalid
    has_mapped = (element >= 0).any(axis=1)
    return Routes(table, element, flag, unit_scale, invalid_value, has_mapped, exclusive)


def source_names(layouts: Sequence[MessageLayout], mapping: MappingConfig) -> list[str]:
    """Source name of every message: first matching source rule, else the default."""
    names = []
    for layout in layouts:
        name = mapping.default_source
        for rule in mapping.sources:
            match = rule.message.fullmatch(layout.name)
            if match is not None:
                name = rule.name.format(message=layout.name, **match.groupdict())
                break
        names.append(name)
    return names
