"""The protection step: the whole fault table judged and debounced as a few array operations.

`Protection.step` is a pure function of the previous state, this cycle's inputs, the time
and the reset request. The core opens the contactors on `ProtectionState.fault_active`,
derates on `alarm_active` and logs the returned `Event`s: one per check, level, kind and
element kind that changed in the step, with the affected elements as one array.

One step: each check screens its values against its least severe threshold (a max and a
min per measured quantity while everything is valid), the elements found join the ones
already tracked, and one debounce advances every tracked (level, check, element) at once
with the thresholds, hysteresis and delays of the table gathered per entry. Python work
follows the checks that have tracked elements and the events, never the element count.

Elements that have set every level of their check and still violate its most severe one
are at a fixed point of the debounce (counter full, no clear condition): they are kept as
one mask per check and leave it, with exactly the state the debounce would have given
them, when they stop violating. A pack that lost all data costs a few whole-array
comparisons per step, not a debounce over every element.

More generally, a tracked state whose every level is either set, violated and with a full
counter, or unset, not violated and without a counter is left as it is by a step that
violates the same levels (hysteresis is never negative, so a violated level never meets its
clear condition): such a state is kept with its per-entry tables (`_Rest`), and while the
violation pattern holds a step compares it and nothing more.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from types import MappingProxyType

import numpy as np

from controller.adapters.base import Level
from controller.diagnosis.events import Event, Kind
from controller.protection.checks import PLAUSIBILITY, Check, Direction, Window
from controller.protection.config import ProtectionConfig
from controller.protection.debounce import DebounceState, Timing, Transitions, advance
from controller.protection.inputs import ProtectionInputs
from controller.protection.measures import ELEMENTS, Readings, directions, locate, split
from controller.protection.onset import credit_us, sample_ages
from controller.protection.plausibility import (
    PlausibilityState,
    pack_voltage_ratio,
    step_plausibility,
)
from controller.protection.table import ROWS, Layout, Table, build_layout, build_table

SETTLE_MIN = 256  # tracked entries from which fully set ones are kept as masks
_ALL_OK = MappingProxyType(dict.fromkeys(Check, Level.OK))
_NONE: MappingProxyType[Check, tuple[str, int]] = MappingProxyType({})
_EMPTY = np.zeros(0, np.intp)
_QUIET = DebounceState.empty(len(ROWS))


@dataclass(frozen=True)
class ProtectionState:
    time_us: int | None
    table: Table
    layout: Layout | None = None  # None until the first step
    tracked: DebounceState = _QUIET  # over flat entry indices
    settled: tuple[np.ndarray | None, ...] = ()  # per check: elements at the fixed point
    # the active level of every check; per check, the element at the highest active level
    # with the most extreme value
    levels: Mapping[Check, Level] = field(default_factory=lambda: _ALL_OK)
    worst: Mapping[Check, tuple[str, int]] = field(default_factory=lambda: _NONE)
    charging: bool | None = None  # None: direction unknown (current not valid)
    plausibility: PlausibilityState = PlausibilityState()
    highest: Level = Level.OK
    rest: _Rest | None = None  # `tracked` at rest, with its per-entry tables

    @property
    def fault_active(self) -> bool:
        """Open the contactors."""
        return self.highest >= Level.FAULT

    @property
    def alarm_active(self) -> bool:
        """Derate the current limits (also true while a fault is active)."""
        return self.highest >= Level.ALARM

    @property
    def warning_active(self) -> bool:
        return self.highest >= Level.WARNING

    def bits(self, level: Level = Level.FAULT) -> int:
        """Bitfield of the checks at ``level`` or above (bit = `Check.bit`, some shared)."""
        bits = 0
        for check, lv in self.levels.items():
            if lv >= level:
                bits |= 1 << check.bit
        return bits

    @property
    def fault_bits(self) -> int:
        return self.bits(Level.FAULT)

    @cached_property
    def debounce(self) -> MappingProxyType[Check, DebounceState]:
        """Per enabled check, its debounce over its configured levels and own elements (for
        reports and reset decisions; the step itself works on the whole table)."""
        return MappingProxyType(
            {check: self._debounce_of(slot) for slot, check in enumerate(self.table.checks)}
        )

    def _debounce_of(self, slot: int) -> DebounceState:
        table = self.table
        rows = np.flatnonzero(table.configured[:, slot])
        if self.layout is None:
            return DebounceState.empty(rows.size)
        start, end = self.layout.offsets[slot : slot + 2]
        a, b = np.searchsorted(self.tracked.cols, (start, end))
        t = self.tracked
        parts = [
            t.cols[a:b] - start,
            t.counter[rows, a:b],
            t.clear_counter[rows, a:b],
            t.active[rows, a:b],
            t.prev_violated[rows, a:b],
            t.prev_clear_ok[rows, a:b],
        ]
        mask = self.settled[slot]
        if mask is not None:
            fixed = _fixed_point(table, np.full(int(mask.sum()), slot))
            extra = [np.flatnonzero(mask), *(arr[rows] for arr in fixed)]
            cols = np.concatenate((parts[0], extra[0]))
            order = np.argsort(cols, kind="stable")
            parts = [cols[order]] + [
                np.concatenate((p, e), axis=1)[:, order]
                for p, e in zip(parts[1:], extra[1:], strict=True)
            ]
        return DebounceState(*parts)


def _fixed_point(table: Table, slots: np.ndarray) -> tuple[np.ndarray, ...]:
    """Debounce rows (counter, clear counter, active, violated, clear ok) of entries that set
    every configured level of their check and violate its most severe one."""
    configured = table.configured[:, slots]
    return (
        table.set_us[:, slots] * configured,
        np.zeros(configured.shape, np.int64),
        configured,
        configured.copy(),
        np.zeros(configured.shape, bool),
    )


@dataclass(frozen=True)
class _Segments:
    """Sorted entries cut by check: each check's entries are one contiguous run."""

    bounds: np.ndarray  # (C + 1,) where each check's run begins
    slots: np.ndarray  # checks with entries, in order
    sizes: np.ndarray  # their number of entries

    @classmethod
    def of(cls, entries: np.ndarray, layout: Layout) -> _Segments:
        bounds = layout.bounds(entries)
        sizes = np.diff(bounds)
        slots = sizes.nonzero()[0]
        return cls(bounds, slots, sizes[slots])

    def per_entry(self, table: np.ndarray) -> np.ndarray:
        """A per-check table (last axis: checks) laid out per entry: one copy per run."""
        return np.repeat(table[..., self.slots], self.sizes, axis=-1)

    def any(self, mask: np.ndarray) -> np.ndarray:
        """Per check with entries: any of its entries in ``mask``."""
        return np.logical_or.reduceat(mask, self.bounds[self.slots])


@dataclass(frozen=True, eq=False)
class _Rest:
    """A tracked state at the debounce's fixed point for its own violation pattern, with
    the tables a step needs to see whether that pattern still holds."""

    tracked: DebounceState
    segments: _Segments
    threshold: np.ndarray  # per entry
    configured: np.ndarray  # per entry
    applying: Mapping[tuple[bool, bool], np.ndarray]  # per current direction, per entry
    settled: tuple[np.ndarray | None, ...]  # the settled masks ``tops`` was found with
    tops: Mapping[int, tuple[int, np.ndarray]]  # see `Protection._tops`
    levels: tuple[Mapping[Check, Level], Level]  # see `Protection._levels`


def _at_rest(state: DebounceState, set_us: np.ndarray) -> bool:
    """Every level set, violated and with a full counter, or none of these, and no clear
    condition held: a step that violates the same levels changes nothing."""
    return (
        not state.prev_clear_ok.any()
        and not state.clear_counter.any()
        and bool((state.active == state.prev_violated).all())
        and bool((state.counter == set_us * state.active).all())
    )


def _merge(a: DebounceState, b: DebounceState) -> DebounceState:
    """Two states over disjoint entries as one, sorted by entry."""
    if b.quiet:
        return a
    if a.quiet:
        return b
    cols = np.concatenate((a.cols, b.cols))
    order = np.argsort(cols, kind="stable")
    arrays = (
        np.concatenate((x, y), axis=1)[:, order]
        for x, y in zip(
            (a.counter, a.clear_counter, a.active, a.prev_violated, a.prev_clear_ok),
            (b.counter, b.clear_counter, b.active, b.prev_violated, b.prev_clear_ok),
            strict=True,
        )
    )
    return DebounceState(cols[order], *arrays)


def _union(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Sorted union of two sorted entry arrays (a merge of two runs, linear)."""
    if b.size == 0 or (a.size == b.size and bool((a == b).all())):
        return a
    if a.size == 0:
        return b
    both = np.sort(np.concatenate((a, b)), kind="stable")
    first = np.ones(both.size, bool)
    np.not_equal(both[1:], both[:-1], out=first[1:])
    return both[first]


class Protection:
    """The fault table of one pack; stateless itself, all state lives in `ProtectionState`."""

    def __init__(self, config: ProtectionConfig) -> None:
        self.config = config
        self.table = build_table(config)
        table = self.table
        self._scalar_slots = np.array(
            [s for s, spec in enumerate(table.specs) if spec.element is None], np.intp
        )
        self._scalar_checks = tuple(table.checks[s] for s in self._scalar_slots.tolist())
        self._per_element = np.array([spec.element is not None for spec in table.specs], bool)
        self._element_slots = tuple(np.flatnonzero(self._per_element).tolist())
        self._unknown = np.full(table.size, np.nan)
        self._everywhere = np.ones(table.size, bool)
        self._scalar_index = {slot: i for i, slot in enumerate(self._scalar_slots.tolist())}
        # a plausibility value that cannot be computed is not judged; any other violates
        self._nan_violates = np.array(
            [
                check is Check.PACK_VOLTAGE_PLAUSIBILITY or check not in PLAUSIBILITY
                for check in self._scalar_checks
            ]
        )
        windows = [spec.window for spec in table.specs]
        self._applies = {
            (charge, discharge): np.array(
                [
                    w is Window.ALWAYS
                    or (w is Window.CHARGE and charge)
                    or (w is Window.DISCHARGE and discharge)
                    for w in windows
                ]
            )
            for charge in (False, True)
            for discharge in (False, True)
        }
        self._layouts: dict[tuple[int, int, int], Layout] = {}
        self._element_slot = {table.checks[slot]: slot for slot in self._element_slots}
        # screening: per measured quantity one check, its (max, -min) picked per element check
        screened = [s for s in self._element_slots if table.checks[s] in ELEMENTS]
        first: dict[object, Check] = {}  # measured quantity: the first check screening it
        for slot in screened:
            first.setdefault(ELEMENTS[table.checks[slot]], table.checks[slot])
        sources = list(first)
        self._screened = tuple(first.values())
        self._screened_slots = np.array(screened, np.intp)
        self._screened_ends = np.array(
            [2 * sources.index(ELEMENTS[table.checks[s]]) + (table.sign[s] < 0) for s in screened],
            np.intp,
        )

    def initial_state(self) -> ProtectionState:
        return ProtectionState(time_us=None, table=self.table)

    def _layout(self, inputs: ProtectionInputs) -> Layout:
        key = (inputs.cell_voltage.size, inputs.cell_temperature.size, inputs.module_age.size)
        layout = self._layouts.get(key)
        if layout is None:
            layout = self._layouts[key] = build_layout(self.table, *key)
        return layout

    def step(
        self,
        state: ProtectionState,
        inputs: ProtectionInputs,
        now: float,
        reset_requested: bool = False,
    ) -> tuple[ProtectionState, tuple[Event, ...]]:
        """Advance every check to ``now`` (seconds); return the new state and transitions."""
        now_us = round(now * 1_000_000)
        if state.time_us is not None:
            now_us = max(now_us, state.time_us)  # a clock stepping back counts no time
        dt_us = 0 if state.time_us is None else now_us - state.time_us
        windows = directions(inputs, self.config.charge_detect_current)
        applies = self._applies[windows]
        plausibility, found = step_plausibility(
            self.config.plausibility, state.plausibility, inputs, now
        )
        known = inputs.pack_voltage_valid and inputs.all_cells_valid
        ratio = pack_voltage_ratio(self.config.plausibility, inputs) if known else np.nan
        pack = {**found.pack, Check.PACK_VOLTAGE_PLAUSIBILITY: ratio}
        readings = Readings(inputs, found.elements, pack)
        stale = () if found.fresh else found.elements.keys()  # held: as in the last step
        scalars = self._scalars(readings)
        layout = self._layout(inputs)
        tracked, settled = state.tracked, state.settled
        if state.layout is not layout:  # first step (or another pack): nothing tracked
            tracked, settled = _QUIET, (None,) * self.table.size

        settled, returning = self._unsettle(settled, readings, applies, stale, layout)
        tracked = _merge(tracked, returning)
        candidates = self._candidates(readings, scalars, applies, settled, stale, layout)
        cols = _union(tracked.cols, candidates)
        events: list[Event] = []
        rest = None
        if cols.size:
            aligned = tracked.aligned(cols)
            if state.rest is not None and state.rest.tracked is aligned:
                rest = state.rest
            (tracked, settled, rest), events = self._advance(
                aligned,
                settled,
                rest,
                readings,
                scalars,
                windows,
                layout,
                dt_us,
                reset_requested,
                now,
            )
        else:
            tracked = _QUIET
        if rest is not None and rest.settled is settled:
            tops, (levels, highest) = rest.tops, rest.levels
        else:
            tops = self._tops(tracked, settled, layout)
            levels, highest = self._levels(tops)
        worst = self._worst_elements(tops, settled, readings)

        charging = None if windows[0] and windows[1] else windows[0]
        new_state = ProtectionState(
            time_us=now_us,
            table=self.table,
            layout=layout,
            tracked=tracked,
            settled=settled,
            levels=levels,
            worst=MappingProxyType(worst) if worst else _NONE,
            charging=charging,
            plausibility=plausibility,
            highest=highest,
            rest=rest,
        )
        return new_state, tuple(events)

    # -- screening ------------------------------------------------------------------------

    def _violating(
        self, slot: int, readings: Readings, applies: np.ndarray, limit: float
    ) -> np.ndarray | None:
        """Mask of the elements of check ``slot`` above ``limit`` (common form) and judged
        now; None when none is, found from the extremes alone where it can be."""
        if not applies[slot]:
            return None
        check = self.table.checks[slot]
        sign = self.table.sign[slot]
        extremes = readings.extremes(check)
        if extremes is not None:
            highest = extremes[0] if sign > 0 else -extremes[1]
            if highest <= limit:
                return None
        value, valid = readings.values(check)
        mask = ~(value <= limit) if sign > 0 else ~(value >= -limit)
        if valid is not None:
            mask &= valid
        return mask

    def _candidates(
        self,
        readings: Readings,
        scalars: tuple[np.ndarray, np.ndarray],
        applies: np.ndarray,
        settled: tuple[np.ndarray | None, ...],
        stale: Collection[Check],
        layout: Layout,
    ) -> np.ndarray:
        """Entries violating their check's least severe level now and not settled: one
        comparison of every check's most extreme value, then the elements of those over."""
        table = self.table
        highest = self._unknown.copy()  # NaN: look at every element
        judged = self._everywhere.copy()
        highest[self._scalar_slots], judged[self._scalar_slots] = scalars
        ends: list[float] = []  # per measured quantity: its max and its negated min
        for check in self._screened:
            extremes = readings.extremes(check)
            ends.extend((np.nan, np.nan) if extremes is None else (extremes[0], -extremes[1]))
        highest[self._screened_slots] = np.array(ends)[self._screened_ends]
        for check in stale:
            slot = self._element_slot.get(check)
            if slot is not None:
                highest[slot] = -np.inf  # a held value: what it violates is tracked already
        over = ~(highest <= table.loosest)
        over &= judged
        over &= applies
        found: list[np.ndarray] = []
        for slot in over.nonzero()[0].tolist():
            start = layout.offsets[slot]
            if not self._per_element[slot]:
                found.append(layout.offsets[slot : slot + 1])
                continue
            mask = self._violating(slot, readings, applies, float(table.loosest[slot]))
            if mask is None:
                continue
            if settled[slot] is not None:
                mask &= ~settled[slot]
            hit = mask.nonzero()[0]
            if hit.size:
                found.append(hit + start)
        if not found:
            return _EMPTY
        return found[0] if len(found) == 1 else np.concatenate(found)

    # -- the debounce of every tracked entry -------------------------------------------------

    def _scalars(self, readings: Readings) -> tuple[np.ndarray, np.ndarray]:
        """(value, judged) of every pack-level check, in table order."""
        value = np.array(readings.pack_values(self._scalar_checks), np.float64)
        return value, ~np.isnan(value) | self._nan_violates

    def _gather(
        self,
        cols: np.ndarray,
        segments: _Segments,
        readings: Readings,
        scalars: tuple[np.ndarray, np.ndarray],
        layout: Layout,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(value in common form, judged) of every entry in ``cols`` (cut by ``segments``)."""
        touched = segments.slots
        values, judged = [], []
        for slot in touched.tolist():
            local = cols[segments.bounds[slot] : segments.bounds[slot + 1]] - layout.offsets[slot]
            check = self.table.checks[slot]
            if not self._per_element[slot]:
                at = self._scalar_index[slot]
                values.append(scalars[0][at : at + 1])
                judged.append(scalars[1][at : at + 1])
                continue
            value, valid = readings.values(check)
            values.append(value[local] * self.table.sign[slot])
            judged.append(np.ones(local.size, bool) if valid is None else valid[local])
        if touched.size == 1:
            return values[0], judged[0]
        return np.concatenate(values), np.concatenate(judged)

    def _advance(
        self,
        state: DebounceState,
        settled: tuple[np.ndarray | None, ...],
        rest: _Rest | None,
        readings: Readings,
        scalars: tuple[np.ndarray, np.ndarray],
        windows: tuple[bool, bool],
        layout: Layout,
        dt_us: int,
        reset: bool,
        now: float,
    ) -> tuple[tuple[DebounceState, tuple[np.ndarray | None, ...], _Rest | None], list[Event]]:
        """One debounce step of every tracked entry; entries that reached the fixed point
        in a step that set a level move to the settled masks. A state at rest (``rest``,
        found for ``state``) whose violation pattern holds is returned as it is."""
        table = self.table
        if rest is not None:
            segments, threshold, configured = rest.segments, rest.threshold, rest.configured
            applying = rest.applying[windows]
        else:
            segments = _Segments.of(state.cols, layout)
            threshold = segments.per_entry(table.threshold)
            configured = segments.per_entry(table.configured)
            applying = segments.per_entry(self._applies[windows])
        x, judged = self._gather(state.cols, segments, readings, scalars, layout)
        violated = ~(x <= threshold)
        violated &= configured
        violated &= judged & applying
        if rest is not None and bool((violated == state.prev_violated).all()):
            return (state, settled, rest), []
        per = segments.per_entry
        clear_ok = x <= per(table.release)
        clear_ok |= ~applying
        clear_ok &= judged
        timing = Timing(per(table.set_us), per(table.clear_us), table.latch)
        onset = np.logical_or.reduce(violated & ~state.prev_violated, axis=0)
        credit = None
        if dt_us and onset.any():
            credit = self._onset_credit(
                state.cols, onset, segments, readings.inputs, layout, now, dt_us
            )
        new, transitions = advance(state, violated, clear_ok, timing, dt_us, reset, credit)
        events: list[Event] = []
        if transitions.set_now.any() or transitions.cleared.any():
            events = self._events(transitions, x, segments, readings, layout, now)
        if transitions.set_now.any() and new.cols.size >= SETTLE_MIN:
            kept, settled = self._settle(new, settled, layout)
            if kept is not new:
                return (kept, settled, None), events
        if new.cols is state.cols and _at_rest(new, timing.set_us):
            tops = MappingProxyType(self._tops(new, settled, layout))
            rest = _Rest(
                tracked=new,
                segments=segments,
                threshold=threshold,
                configured=configured,
                applying={key: per(applies) for key, applies in self._applies.items()},
                settled=settled,
                tops=tops,
                levels=self._levels(tops),
            )
            return (new, settled, rest), events
        return (new, settled, None), events

    def _onset_credit(
        self,
        cols: np.ndarray,
        onset: np.ndarray,
        segments: _Segments,
        inputs: ProtectionInputs,
        layout: Layout,
        now: float,
        dt_us: int,
    ) -> np.ndarray:
        """Per entry, the microseconds its violation lasted before this step (`onset`)."""
        credit = np.zeros(cols.size, np.int64)
        for slot in segments.slots.tolist():
            a, b = segments.bounds[slot], segments.bounds[slot + 1]
            if not onset[a:b].any():
                continue
            local = cols[a:b] - layout.offsets[slot]
            ages = sample_ages(self.table.checks[slot], inputs, local, now)
            if ages is not None:
                credit[a:b] = credit_us(ages, dt_us)
        return credit

    def _settle(
        self, state: DebounceState, settled: tuple[np.ndarray | None, ...], layout: Layout
    ) -> tuple[DebounceState, tuple[np.ndarray | None, ...]]:
        """Move per-element entries at the debounce's fixed point into the settled masks."""
        table = self.table
        segments = _Segments.of(state.cols, layout)
        per = segments.per_entry
        at_rest = state.active & state.prev_violated
        at_rest &= state.counter >= per(table.set_us)
        at_rest |= ~per(table.configured)
        fixed = np.logical_and.reduce(at_rest, axis=0)
        fixed &= per(self._per_element)
        if not fixed.any():
            return state, settled
        masks = list(settled)
        entries = state.cols[fixed]
        for slot in segments.slots[segments.any(fixed)].tolist():
            start, end = layout.offsets[slot : slot + 2]
            mine = entries[(entries >= start) & (entries < end)] - start
            mask = np.zeros(end - start, bool) if masks[slot] is None else masks[slot].copy()
            mask[mine] = True
            masks[slot] = mask
        keep = ~fixed
        kept = DebounceState(
            state.cols[keep],
            state.counter[:, keep],
            state.clear_counter[:, keep],
            state.active[:, keep],
            state.prev_violated[:, keep],
            state.prev_clear_ok[:, keep],
        )
        return kept, tuple(masks)

    def _unsettle(
        self,
        settled: tuple[np.ndarray | None, ...],
        readings: Readings,
        applies: np.ndarray,
        stale: Collection[Check],
        layout: Layout,
    ) -> tuple[tuple[np.ndarray | None, ...], DebounceState]:
        """Settled elements that no longer violate their most severe level, returned to the
        debounce with the state it would have given them."""
        table = self.table
        masks = list(settled)
        leaving = []
        for slot, mask in enumerate(settled):
            if mask is None or table.checks[slot] in stale:
                continue
            top = int(table.top[slot])
            holding = self._violating(slot, readings, applies, float(table.threshold[top, slot]))
            still = mask & holding if holding is not None else np.zeros_like(mask)
            if np.array_equal(still, mask):
                continue
            leaving.append(np.flatnonzero(mask & ~still) + layout.offsets[slot])
            masks[slot] = still if still.any() else None
        if not leaving:
            return settled, _QUIET
        entries = np.concatenate(leaving)
        return tuple(masks), DebounceState(entries, *_fixed_point(table, layout.slots_of(entries)))

    # -- events, levels and the worst element ------------------------------------------------

    def _events(
        self,
        tr: Transitions,
        x: np.ndarray,
        segments: _Segments,
        readings: Readings,
        layout: Layout,
        now: float,
    ) -> list[Event]:
        """One event per check, level and kind, its elements an array: cost follows
        transitions."""
        changed = np.logical_or.reduce(tr.set_now | tr.cleared, axis=0)
        bounds = segments.bounds
        out: list[Event] = []
        for slot in segments.slots[segments.any(changed)].tolist():
            a, b = int(bounds[slot]), int(bounds[slot + 1])
            for kind, mask in (("cleared", tr.cleared), ("set", tr.set_now)):
                part = mask[:, a:b]
                for row in np.flatnonzero(part.any(axis=1)).tolist():
                    at = np.flatnonzero(part[row])
                    local = tr.cols[a:b][at] - layout.offsets[slot]
                    out.extend(self._event(now, kind, slot, row, local, x[a:b][at], readings))
        return out

    def _event(
        self,
        time: float,
        kind: Kind,
        slot: int,
        row: int,
        local: np.ndarray,
        x: np.ndarray,
        readings: Readings,
    ) -> list[Event]:
        table = self.table
        check, spec = table.checks[slot], table.specs[slot]
        shown = table.shown[row, slot]
        threshold = None if np.isnan(shown) else float(shown)
        level = ROWS[row]
        sign = table.sign[slot]
        if spec.element is None:
            return [Event(time, check.value, level, kind, float(x[0] * sign), threshold)]
        if check is Check.INVALID_MEASUREMENT:
            return [
                Event(time, check.value, level, kind, float(x[at].max()), None, idx, name)
                for name, at, idx in split(local, readings.inputs)
            ]
        value = float("nan") if np.isnan(x).any() else float(x.max() * sign)
        return [Event(time, check.value, level, kind, value, threshold, local, spec.element)]

    def _tops(
        self, state: DebounceState, settled: tuple[np.ndarray | None, ...], layout: Layout
    ) -> dict[int, tuple[int, np.ndarray]]:
        """Per check with an active level: (its most severe active row, the tracked elements
        there); settled elements are at the most severe level."""
        table = self.table
        tops: dict[int, tuple[int, np.ndarray]] = {}
        if state.active.any():
            bounds = layout.bounds(state.cols)
            for slot in np.flatnonzero(np.diff(bounds)).tolist():
                a, b = int(bounds[slot]), int(bounds[slot + 1])
                rows = np.flatnonzero(state.active[:, a:b].any(axis=1))
                if rows.size:
                    top = int(rows[-1])
                    at = state.cols[a:b][state.active[top, a:b]] - layout.offsets[slot]
                    tops[slot] = (top, at)
        for slot, mask in enumerate(settled):
            if mask is not None:
                top = int(table.top[slot])
                tracked = tops.get(slot)
                at = tracked[1] if tracked is not None and tracked[0] == top else _EMPTY
                tops[slot] = (top, at)
        return tops

    def _levels(
        self, tops: Mapping[int, tuple[int, np.ndarray]]
    ) -> tuple[Mapping[Check, Level], Level]:
        """The level of every check (OK where none is active) and the highest of them."""
        if not tops:
            return _ALL_OK, Level.OK
        active = {self.table.checks[slot]: ROWS[top] for slot, (top, _) in tops.items()}
        return MappingProxyType({**_ALL_OK, **active}), max(active.values())

    def _worst_elements(
        self,
        tops: Mapping[int, tuple[int, np.ndarray]],
        settled: tuple[np.ndarray | None, ...],
        readings: Readings,
    ) -> dict[Check, tuple[str, int]]:
        """Per element check with an active level, its worst element there."""
        table = self.table
        worst: dict[Check, tuple[str, int]] = {}
        for slot in sorted(tops):
            if self._per_element[slot]:
                check = table.checks[slot]
                index = self._worst(slot, tops[slot][1], settled[slot], readings)
                kind, element = locate(check, table.specs[slot].element, index, readings.inputs)
                assert kind is not None and element is not None
                worst[check] = (kind, element)
        return worst

    def _worst(
        self, slot: int, local: np.ndarray, mask: np.ndarray | None, readings: Readings
    ) -> int:
        """The most extreme element among ``local`` and ``mask`` (NaN first, then the lowest
        index among equals; a flag check's first element)."""
        table = self.table
        if table.specs[slot].direction is Direction.FLAG:
            first = [int(local.min())] if local.size else []
            if mask is not None:
                first.append(int(np.argmax(mask)))
            return min(first)
        value, _ = readings.values(table.checks[slot])
        best: tuple[float, int] | None = None
        if local.size:
            key = value[local] * table.sign[slot]
            at = int(np.argmax(np.where(np.isnan(key), np.inf, key)))
            best = (float(np.where(np.isnan(key[at]), np.inf, key[at])), int(local[at]))
        if mask is not None:
            key = value * table.sign[slot]
            key = np.where(np.isnan(key), np.inf, key)
            at = int(np.argmax(np.where(mask, key, -np.inf)))
            if best is None or key[at] > best[0] or (key[at] == best[0] and at < best[1]):
                best = (float(key[at]), at)
        assert best is not None
        return best[1]
