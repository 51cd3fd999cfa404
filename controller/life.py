"""Life counters: what the pack and its contactors have been through, kept across restarts.

Energy and charge throughput say how hard the pack has worked (warranty, ageing models);
contactor operations, above all the openings under load and the current they broke, say how
worn the contacts are; resets and latched faults say how the pack has been treated. The
counters only ever grow and are part of `controller.persisted.Persisted`.

Integration is a zero-order hold, as the protection debounce counts time: the pack voltage
and current of one step hold until the next, and an interval counts only when both were
valid at its start. Current is positive when charging.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Any

from controller.config.declare import setting

Triple = tuple[int, int, int]  # one value per contactor: minus, precharge, plus
_NONE: Triple = (0, 0, 0)
_ZERO = (0.0, 0.0, 0.0)
_PRECHARGE, _PLUS = 1, 2


@dataclass(frozen=True)
class LifeConfig:
    """The ``[life]`` table."""

    load_current_a: float = setting(
        1.0, ge=0.0, unit="A", doc="a contactor opening above this current counts as under load"
    )


@dataclass(frozen=True)
class LifeCounters:
    """Totals since the pack was new; per-contactor tuples are (minus, precharge, plus)."""

    charged_kwh: float = 0.0
    discharged_kwh: float = 0.0
    charged_ah: float = 0.0
    discharged_ah: float = 0.0
    contactor_closings: Triple = _NONE
    contactor_openings: Triple = _NONE
    contactor_openings_under_load: Triple = _NONE  # above `LifeConfig.load_current_a`
    contactor_openings_current_unknown: Triple = _NONE  # no valid current at the opening
    contactor_broken_a_sum: tuple[float, float, float] = _ZERO  # |I| of openings under load
    contactor_broken_a_max: tuple[float, float, float] = _ZERO
    resets_accepted: int = 0
    resets_refused: int = 0
    faults_latched: int = 0

    def equivalent_full_cycles(self, capacity_ah: float) -> float:
        """Discharged charge in multiples of the pack's capacity."""
        return self.discharged_ah / capacity_ah if capacity_ah > 0 else math.nan

    def as_fields(self) -> dict[str, Any]:
        """Field by field (tuples kept), to build a record with the same names."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def of(cls, record: Any) -> LifeCounters:
        """The counters held by any object with these attribute names (a `Persisted`)."""
        return cls(**{f.name: getattr(record, f.name) for f in fields(cls)})


@dataclass(frozen=True)
class LifeState:
    """The counters and the last step's measurement (held until the next step)."""

    counters: LifeCounters = LifeCounters()
    time: float | None = None
    voltage: float = math.nan  # V, NaN where not valid
    current: float = math.nan  # A, NaN where not valid


@dataclass(frozen=True)
class LifeInputs:
    """What one step contributes."""

    voltage: float
    voltage_valid: bool
    current: float
    current_valid: bool
    before: tuple[bool, bool, bool]  # coil commands in force before the step
    after: tuple[bool, bool, bool]  # coil commands the step decided
    resets_accepted: int = 0
    resets_refused: int = 0
    faults_latched: int = 0


def _known(value: float, valid: bool) -> float:
    return value if valid and math.isfinite(value) else math.nan


def step_life(config: LifeConfig, state: LifeState, inputs: LifeInputs, now: float) -> LifeState:
    """The counters after one step at ``now`` (a clock stepping back counts no time)."""
    c = state.counters
    dt = 0.0 if state.time is None else max(now - state.time, 0.0)
    v, i = state.voltage, state.current
    if dt > 0.0 and math.isfinite(v) and math.isfinite(i):
        ah, kwh = abs(i) * dt / 3600.0, abs(v * i) * dt / 3.6e6
        if i != 0:
            c = _throughput(c, ah, kwh, i > 0)
    if inputs.before != inputs.after:
        c = _operations(config, c, inputs)
    if inputs.resets_accepted or inputs.resets_refused or inputs.faults_latched:
        c = replace(
            c,
            resets_accepted=c.resets_accepted + inputs.resets_accepted,
            resets_refused=c.resets_refused + inputs.resets_refused,
            faults_latched=c.faults_latched + inputs.faults_latched,
        )
    return LifeState(
        c,
        now if state.time is None else max(now, state.time),
        _known(inputs.voltage, inputs.voltage_valid),
        _known(inputs.current, inputs.current_valid),
    )


def _throughput(c: LifeCounters, ah: float, kwh: float, charging: bool) -> LifeCounters:
    """``c`` with one interval's charge and energy added (built field by field: every step
    with current makes one)."""
    return LifeCounters(
        charged_kwh=c.charged_kwh + kwh if charging else c.charged_kwh,
        discharged_kwh=c.discharged_kwh if charging else c.discharged_kwh + kwh,
        charged_ah=c.charged_ah + ah if charging else c.charged_ah,
        discharged_ah=c.discharged_ah if charging else c.discharged_ah + ah,
        contactor_closings=c.contactor_closings,
        contactor_openings=c.contactor_openings,
        contactor_openings_under_load=c.contactor_openings_under_load,
        contactor_openings_current_unknown=c.contactor_openings_current_unknown,
        contactor_broken_a_sum=c.contactor_broken_a_sum,
        contactor_broken_a_max=c.contactor_broken_a_max,
        resets_accepted=c.resets_accepted,
        resets_refused=c.resets_refused,
        faults_latched=c.faults_latched,
    )


def _operations(config: LifeConfig, c: LifeCounters, inputs: LifeInputs) -> LifeCounters:
    """Closings and openings of this step. An opening breaks the measured pack current,
    except the precharge contactor's while the plus contactor stays closed: that path is
    bridged and carries next to nothing."""
    current = _known(inputs.current, inputs.current_valid)
    closings, openings = list(c.contactor_closings), list(c.contactor_openings)
    loaded, unknown = (
        list(c.contactor_openings_under_load),
        list(c.contactor_openings_current_unknown),
    )
    total, peak = list(c.contactor_broken_a_sum), list(c.contactor_broken_a_max)
    for k, (was, now_closed) in enumerate(zip(inputs.before, inputs.after, strict=True)):
        if now_closed and not was:
            closings[k] += 1
        elif was and not now_closed:
            openings[k] += 1
            bridged = k == _PRECHARGE and inputs.before[_PLUS] and inputs.after[_PLUS]
            broken = 0.0 if bridged else abs(current)
            if math.isnan(broken):
                unknown[k] += 1
            elif broken > config.load_current_a:
                loaded[k] += 1
                total[k] += broken
                peak[k] = max(peak[k], broken)
    return replace(
        c,
        contactor_closings=(closings[0], closings[1], closings[2]),
        contactor_openings=(openings[0], openings[1], openings[2]),
        contactor_openings_under_load=(loaded[0], loaded[1], loaded[2]),
        contactor_openings_current_unknown=(unknown[0], unknown[1], unknown[2]),
        contactor_broken_a_sum=(total[0], total[1], total[2]),
        contactor_broken_a_max=(peak[0], peak[1], peak[2]),
    )
