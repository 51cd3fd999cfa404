"""The protection step: measures, debounced levels, transition events and the summary.

`Protection.step` is a pure function of the previous state, this cycle's inputs, the time
and the reset request. The core opens the contactors on `ProtectionState.fault_active`,
derates on `alarm_active` and logs the returned `Event`s: one per check, level, kind and
element kind that changed in the step, with the affected elements as one array.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np

from controller.adapters.base import Level
from controller.diagnosis.events import Event, Kind
from controller.protection.checks import SPECS, Check, Direction, Window
from controller.protection.config import CheckConfig, ProtectionConfig
from controller.protection.debounce import DebounceState, Timing, Transitions, advance, union
from controller.protection.inputs import ProtectionInputs
from controller.protection.measures import Measure, directions, locate, measure, split
from controller.protection.plausibility import (
    PlausibilityState,
    pack_voltage_ratio,
    step_plausibility,
)


@dataclass(frozen=True)
class ProtectionState:
    time_us: int | None
    debounce: MappingProxyType[Check, DebounceState]
    levels: MappingProxyType[Check, Level]  # active level of every check
    worst: MappingProxyType[Check, tuple[str, int]] = field(
        default_factory=lambda: MappingProxyType({})
    )  # element at the highest active level with the most extreme value, per check
    charging: bool | None = None  # None: direction unknown (current not valid)
    plausibility: PlausibilityState = PlausibilityState()

    @property
    def highest(self) -> Level:
        return max(self.levels.values(), default=Level.OK)

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


class _Rule:
    """One enabled check with its thresholds laid out as per-level arrays."""

    def __init__(self, cfg: CheckConfig) -> None:
        self.check = cfg.check
        self.spec = SPECS[cfg.check]
        self.levels = tuple(cfg.levels)
        rows = tuple(cfg.levels.values())
        flag = self.spec.direction is Direction.FLAG
        self.threshold = np.array([np.nan if flag else r.threshold for r in rows])
        self.hysteresis = np.array([r.hysteresis for r in rows])
        if self.spec.direction is Direction.HIGH:
            self.loosest = float(self.threshold.min())
            self.release = (self.threshold - self.hysteresis)[:, None]
        else:
            self.loosest = float(self.threshold.max()) if not flag else np.nan
            self.release = (self.threshold + self.hysteresis)[:, None]
        self.timing = Timing(
            set_us=np.array([round(r.set_delay_ms * 1000) for r in rows], np.int64),
            clear_us=np.array([round(r.clear_delay_ms * 1000) for r in rows], np.int64),
            latch=np.array([lv is Level.FAULT for lv in self.levels]),
        )

    def candidates(self, m: Measure) -> np.ndarray:
        """Elements violating the loosest level now (the only ones that can start a count)."""
        if not m.applies:
            return np.zeros(0, np.intp)
        match self.spec.direction:
            case Direction.HIGH:
                mask = ~(m.value <= self.loosest)
            case Direction.LOW:
                mask = ~(m.value >= self.loosest)
            case Direction.FLAG:
                mask = m.value
        if m.valid is not None:
            mask = mask & m.valid
        return mask.nonzero()[0]

    def judge(self, m: Measure, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(violated, clear_ok), each (levels, len(cols)), at ``cols``."""
        v = m.value[cols][None, :]
        shape = (len(self.levels), cols.size)
        match self.spec.direction:
            case Direction.HIGH:
                violated = ~(v <= self.threshold[:, None])
                clear_ok = v <= self.release
            case Direction.LOW:
                violated = ~(v >= self.threshold[:, None])
                clear_ok = v >= self.release
            case Direction.FLAG:
                violated = np.broadcast_to(v, shape)
                clear_ok = np.broadcast_to(~v, shape)
        valid = np.ones(cols.size, bool) if m.valid is None else m.valid[cols]
        if not m.applies:
            return np.zeros(shape, bool), np.broadcast_to(valid, shape)
        return violated & valid, clear_ok & valid

    def level(self, state: DebounceState) -> tuple[Level, int | None]:
        """Active level and the column of its worst element."""
        rows = np.flatnonzero(state.active.any(axis=1))
        if rows.size == 0:
            return Level.OK, None
        top = int(rows[-1])
        return self.levels[top], top

    def worst(self, m: Measure, state: DebounceState, top: int) -> int:
        idx = state.cols[state.active[top]]
        if self.spec.direction is Direction.FLAG:
            return int(idx[0])
        v = m.value[idx]
        if self.spec.direction is Direction.HIGH:
            return int(idx[np.argmax(np.where(np.isnan(v), np.inf, v))])
        return int(idx[np.argmin(np.where(np.isnan(v), -np.inf, v))])

    def events(
        self, tr: Transitions, m: Measure, inputs: ProtectionInputs, time: float
    ) -> list[Event]:
        """One event per level and kind, its elements an array: cost follows transitions."""
        out: list[Event] = []
        for kind, mask in (("cleared", tr.cleared), ("set", tr.set_now)):
            for row in np.flatnonzero(mask.any(axis=1)).tolist():
                indices = tr.cols[mask[row]]
                out.extend(self._event(time, kind, row, indices, m, inputs))
        return out

    def _event(
        self,
        time: float,
        kind: Kind,
        row: int,
        indices: np.ndarray,
        m: Measure,
        inputs: ProtectionInputs,
    ) -> list[Event]:
        threshold = None if np.isnan(self.threshold[row]) else float(self.threshold[row])
        level = self.levels[row]
        if self.spec.element is None:
            value = float(m.value[indices[0]])
            return [Event(time, self.check.value, level, kind, value, threshold)]
        groups = (
            split(indices, inputs)
            if self.check is Check.INVALID_MEASUREMENT
            else ((self.spec.element, indices, indices),)
        )
        check = self.check.value
        return [
            Event(time, check, level, kind, self._extreme(m, flat), threshold, local, name)
            for name, flat, local in groups
        ]

    def _extreme(self, m: Measure, indices: np.ndarray) -> float:
        """The worst value among ``indices`` (NaN counts as worst)."""
        v = m.value[indices]
        if self.spec.direction is Direction.FLAG:
            return float(v.max())  # 1 on set, 0 on clear
        if np.isnan(v).any():
            return float("nan")
        return float(v.max() if self.spec.direction is Direction.HIGH else v.min())


class Protection:
    """The fault table of one pack; stateless itself, all state lives in `ProtectionState`."""

    def __init__(self, config: ProtectionConfig) -> None:
        self.config = config
        self._rules = tuple(_Rule(c) for c in config.checks.values() if c.enabled)

    def initial_state(self) -> ProtectionState:
        return ProtectionState(
            time_us=None,
            debounce=MappingProxyType(
                {r.check: DebounceState.empty(len(r.levels)) for r in self._rules}
            ),
            levels=MappingProxyType(dict.fromkeys(Check, Level.OK)),
        )

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
        applies = {Window.ALWAYS: True, Window.CHARGE: windows[0], Window.DISCHARGE: windows[1]}
        debounce = dict(state.debounce)
        levels = dict.fromkeys(Check, Level.OK)
        worst: dict[Check, tuple[str, int]] = {}
        events: list[Event] = []
        plausibility, found = step_plausibility(
            self.config.plausibility, state.plausibility, inputs, now
        )
        derived = dict(found.values)
        known = inputs.pack_voltage_valid and inputs.all_cells_valid
        ratio = pack_voltage_ratio(self.config.plausibility, inputs) if known else np.nan
        derived[Check.PACK_VOLTAGE_PLAUSIBILITY] = (np.array([ratio]), None)
        for rule in self._rules:
            old = state.debounce[rule.check]
            if old.quiet and rule.check in found.values and rule.check not in found.fresh:
                continue  # a held value that violated nothing still violates nothing
            m = measure(rule.check, applies[rule.spec.window], inputs, derived)
            cand = rule.candidates(m)
            if cand.size == 0 and old.quiet:
                continue
            if old.quiet or np.array_equal(cand, old.cols):
                cols = cand
            elif cand.size == 0:
                cols = old.cols
            else:
                cols = union(old.cols, cand, m.value.size)
            violated, clear_ok = rule.judge(m, cols)
            new, transitions = advance(
                old.aligned(cols), violated, clear_ok, rule.timing, dt_us, reset_requested
            )
            debounce[rule.check] = new
            if transitions.set_now.any() or transitions.cleared.any():
                events.extend(rule.events(transitions, m, inputs, now))
            level, top = rule.level(new)
            levels[rule.check] = level
            if top is not None and rule.spec.element is not None:
                kind, element = locate(
                    rule.check, rule.spec.element, rule.worst(m, new, top), inputs
                )
                assert kind is not None and element is not None
                worst[rule.check] = (kind, element)
        charging = None if windows[0] and windows[1] else windows[0]
        new_state = ProtectionState(
            time_us=now_us,
            debounce=MappingProxyType(debounce),
            levels=MappingProxyType(levels),
            worst=MappingProxyType(worst),
            charging=charging,
            plausibility=plausibility,
        )
        return new_state, tuple(events)
