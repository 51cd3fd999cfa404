"""Compile-time resolution of a mapping against DBC slots: which column feeds which element.

Everything here runs once when the decoder is built; the result is a set of ``(K, S)``
tables indexed by slot, so the per-batch work is pure array indexing.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from controller.errors import MappingError
from controller.ingest.layout import MessageLayout, SignalLayout, Slot, SlotTable
from controller.ingest.mapping import MappingConfig, Rule


@dataclass(frozen=True)
class Routes:
    """Per slot and column of ``table``: element, flag and index columns, scale, flag value."""

    table: SlotTable
    element: np.ndarray  # (K, S) int64 flat element index (before any index signal), -1 unmapped
    flag: np.ndarray  # (K, S) intp column of the validity flag, -1 where none
    unit_scale: np.ndarray  # (K, S) float64
    invalid_value: np.ndarray  # (K, S) float64
    index: np.ndarray  # (K, S) intp column of the index signal, -1 where none
    stride: np.ndarray  # (K, S) int64 multiplier of the index signal's value
    bounds: np.ndarray  # (K, S, 2) int64 flat [start, end) of the column's target
    has_mapped: np.ndarray  # (K,) bool: the slot feeds at least one element
    slot_exclusive: bool  # no element is fed from two slots or frames of one slot
    available: frozenset[str]  # targets some signal feeds
    # Derived once for the per-batch scatter: per slot its mapped columns first, padded
    # to the widest slot (W), so a batch gathers whole rows instead of masking (N, S).
    column: np.ndarray = field(init=False)  # (K, W) intp: mapped column, 0 in padding
    target: np.ndarray = field(init=False)  # (K, W) int64: its element, -1 in padding
    flag_column: np.ndarray = field(init=False)  # (K, W) intp: its flag's column, or 0
    has_flag: np.ndarray = field(init=False)  # (K, W) bool: it has a validity flag
    flag_invalid: np.ndarray = field(init=False)  # (K, W) float64: the flag's invalid value
    scale: np.ndarray = field(init=False)  # (K, W) float64: its unit scale
    index_column: np.ndarray = field(init=False)  # (K, W) intp: its index signal's column, or 0
    has_index: np.ndarray = field(init=False)  # (K, W) bool: its element moves with the frame
    index_stride: np.ndarray = field(init=False)  # (K, W) int64
    low: np.ndarray = field(init=False)  # (K, W) int64: first element of its target
    high: np.ndarray = field(init=False)  # (K, W) int64: end of its target (0 in padding)
    padded: bool = field(init=False)  # some slot maps fewer columns than W
    scaled: bool = field(init=False)  # some column has a unit scale other than 1
    indexed: bool = field(init=False)  # some column takes its index from the frame

    def __post_init__(self) -> None:
        mapped = self.element >= 0
        mapped |= self.index >= 0  # an indexed column may start below element 0
        count = mapped.sum(axis=1)
        width = max(int(count.max(initial=0)), 1)
        column = np.argsort(~mapped, axis=1, kind="stable")[:, :width]
        pad = np.arange(width) >= count[:, None]
        rows = np.arange(self.element.shape[0])[:, None]
        flag = self.flag[rows, column]
        index = self.index[rows, column]
        bounds = self.bounds[rows, column]
        derived = {
            "column": np.where(pad, 0, column),
            "target": np.where(pad, -1, self.element[rows, column]),
            "flag_column": np.where(pad | (flag < 0), 0, flag),
            "has_flag": ~pad & (flag >= 0),
            "flag_invalid": self.invalid_value[rows, column],
            "scale": self.unit_scale[rows, column],
            "index_column": np.where(pad | (index < 0), 0, index),
            "has_index": ~pad & (index >= 0),
            "index_stride": self.stride[rows, column],
            "low": bounds[..., 0],
            "high": np.where(pad, 0, bounds[..., 1]),
            "padded": bool(pad.any()),
            "scaled": bool((self.unit_scale[mapped] != 1).any()),
            "indexed": bool((self.index >= 0).any()),
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


def _index_values(sig: SignalLayout) -> tuple[float, float]:
    """Lowest and highest physical value the index signal can carry."""
    low, high = (
        (-(2 ** (sig.length - 1)), 2 ** (sig.length - 1) - 1)
        if sig.signed
        else (
            0,
            2**sig.length - 1,
        )
    )
    ends = sorted((low * sig.scale + sig.offset, high * sig.scale + sig.offset))
    return ends[0], ends[1]


def _reach(base: int, stride: int, size: int, sig: SignalLayout | None) -> np.ndarray:
    """Elements of a target of ``size`` a column can feed: ``base`` plus the index term."""
    if sig is None:
        return np.array([base] if 0 <= base < size else [], np.int64)
    low, high = _index_values(sig)
    first = max(math.ceil(low), -((base) // stride))  # smallest value landing at >= 0
    last = min(math.floor(high), (size - 1 - base) // stride)
    return base + stride * np.arange(first, last + 1, dtype=np.int64)


@dataclass
class _Coverage:
    """Which signal feeds each flat element and from which slot, judged once at the end."""

    total: int
    ids: dict[str, int] = field(default_factory=dict)
    claims: list[tuple[np.ndarray, int, int, tuple[str, str, int]]] = field(default_factory=list)
    moving: bool = False

    def claim(
        self,
        elements: np.ndarray,
        feeder: str,
        slot: int,
        moving: bool,
        where: tuple[str, str, int],
    ) -> None:
        """``where``: rule key, target name and target start, for the error message."""
        self.claims.append((elements, self.ids.setdefault(feeder, len(self.ids)), slot, where))
        self.moving |= moving

    def owners(self) -> tuple[np.ndarray, bool]:
        """Feeder id per element (-1 where none) and whether every element has one slot."""
        owner = np.full(self.total, -1, np.int64)
        if not self.claims:
            return owner, True
        sizes = [c[0].size for c in self.claims]
        elem = np.concatenate([c[0] for c in self.claims])
        feeder = np.repeat([c[1] for c in self.claims], sizes)
        slot = np.repeat([c[2] for c in self.claims], sizes)
        claim = np.repeat(np.arange(len(self.claims)), sizes)
        order = np.lexsort((claim, elem))
        elem, feeder, slot, claim = elem[order], feeder[order], slot[order], claim[order]
        same = elem[1:] == elem[:-1]
        clash = np.flatnonzero(same & (feeder[1:] != feeder[:-1]))
        if clash.size:
            names = list(self.ids)
            first, second = clash[0], clash[0] + 1
            key, target, start = self.claims[claim[second]][3]
            raise MappingError(
                f"{key}: {target}[{elem[second] - start}] is fed by both "
                f"{names[feeder[first]]} and {names[feeder[second]]} "
                f"(check per_module, offset and index_stride)"
            )
        owner[elem] = feeder
        exclusive = not self.moving and not bool((same & (slot[1:] != slot[:-1])).any())
        return owner, exclusive


def _named(
    template: str, what: str, rule: Rule, names: Mapping[str, str], slot: Mapping[str, SignalLayout]
) -> SignalLayout:
    """The signal a validity or index template names, in the same frame."""
    name = template.format(**names)
    if name not in slot:
        raise MappingError(
            f"{rule.key}.{what}: {names['message']} has no signal {name!r} "
            f"in the frame carrying {names['signal']}"
        )
    return slot[name]


def route_slots(
    layouts: Sequence[MessageLayout],
    slots: Sequence[tuple[int, Slot]],
    mapping: MappingConfig,
    offsets: Mapping[str, tuple[int, int]],
    optional: Collection[str] = (),
) -> Routes:
    """Resolve every mapped signal of every (message index, slot) to its elements.

    A target in ``optional`` that no signal feeds is left out of ``available``; any other
    target must be fed completely.
    """
    for rule in mapping.rules:
        if rule.target not in offsets:
            known = ", ".join(offsets) or "none"
            raise MappingError(f"{rule.key}.target: {rule.target!r} is not a target ({known})")
    coverage = _Coverage(sum(size for _, size in offsets.values()))
    rows: list[list[SignalLayout]] = []
    entries: list[list[tuple]] = []
    for slot_index, (msg_index, slot) in enumerate(slots):
        message = layouts[msg_index].name
        by_name = {s.name: s for s in slot.signals}
        columns: dict[str, int] = {}
        row: list[SignalLayout] = []
        found: list[tuple] = []

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
            base = (
                rule.offset
                + _number(groups, "module", rule, sig.name) * rule.per_module
                + _number(groups, "index", rule, sig.name)
            )
            mux = "" if slot.mux_value is None else str(slot.mux_value)
            names = {**groups, "signal": sig.name, "message": message, "mux": mux}
            index_sig = (
                _named(rule.index_signal, "index_signal", rule, names, by_name)
                if rule.index_signal
                else None
            )
            reach = _reach(base, rule.index_stride, size, index_sig)
            if reach.size == 0:
                continue  # a signal for more cells than the pack has
            flag_col = -1
            if rule.validity is not None:
                flag_col = column(_named(rule.validity, "validity", rule, names, by_name))
            index_col = -1 if index_sig is None else column(index_sig)
            found.append(
                (column(sig), start + base, flag_col, rule.unit_scale, rule.invalid_value)
                + (index_col, rule.index_stride, start, start + size)
            )
            coverage.claim(
                start + reach,
                f"{message}.{sig.name}",
                slot_index,
                index_sig is not None,
                (rule.key, rule.target, start),
            )
        rows.append(row)
        entries.append(found)
    owner, exclusive = coverage.owners()
    available = set()
    for name, (start, size) in offsets.items():
        fed = owner[start : start + size] >= 0
        if not fed.any() and name in optional:
            continue
        missing = np.flatnonzero(~fed)
        if missing.size:
            raise MappingError(
                f"target {name}: element {int(missing[0])} of {size} is fed by no signal "
                f"({missing.size} elements uncovered)"
            )
        available.add(name)
    return _tables(rows, entries, exclusive, frozenset(available))


def _tables(
    rows: list[list[SignalLayout]], entries: list[list[tuple]], exclusive: bool, available
) -> Routes:
    table = SlotTable(rows)
    k, s = len(rows) or 1, table.width
    element = np.full((k, s), -1, np.int64)
    flag = np.full((k, s), -1, np.intp)
    unit_scale = np.ones((k, s))
    invalid_value = np.ones((k, s))
    index = np.full((k, s), -1, np.intp)
    stride = np.ones((k, s), np.int64)
    bounds = np.zeros((k, s, 2), np.int64)
    for r, found in enumerate(entries):
        for col, elem, flag_col, scale, invalid, index_col, step, low, high in found:
            element[r, col] = elem
            flag[r, col] = flag_col
            unit_scale[r, col] = scale
            invalid_value[r, col] = invalid
            index[r, col] = index_col
            stride[r, col] = step
            bounds[r, col] = (low, high)
    has_mapped = ((element >= 0) | (index >= 0)).any(axis=1)
    return Routes(
        table,
        element,
        flag,
        unit_scale,
        invalid_value,
        index,
        stride,
        bounds,
        has_mapped,
        exclusive,
        available,
    )


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
