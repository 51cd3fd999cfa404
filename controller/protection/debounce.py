"""Time-based occurrence counters for every (level, element) of one check, vectorised.

Time is integer microseconds so that counters add up exactly whatever the step size. An
observation holds until the next one (zero-order hold): the set counter rises by the elapsed
time if the condition was violated at the previous step and falls otherwise, clamped to
``0..set_delay``; a level sets at a step where it is violated and the counter has reached
its set delay, so it never sets earlier than the delay after the condition was first seen.
A violation first seen in a step may bring the time it already lasted before the step
(``onset_us``, the age of the sample that shows it, `controller.protection.onset`).
While set, a level clears once its clear condition (absent beyond the hysteresis) has held
without a break for the clear delay; a latching level (fault) also needs a reset request at
that step.

The state is sparse: only elements with a non-zero counter, a set level or a violation at
the last step are stored (``cols``). In a healthy pack that is none, so a step costs a few
comparisons over the whole array and nothing more.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Timing:
    """Per level (rows of the state arrays)."""

    set_us: np.ndarray  # (L,) or (L, k) int64
    clear_us: np.ndarray  # (L,) or (L, k) int64
    latch: np.ndarray  # (L,) bool


@dataclass(frozen=True)
class DebounceState:
    cols: np.ndarray  # (k,) intp, sorted element indices with non-zero state
    counter: np.ndarray  # (L, k) int64 us, set counter
    clear_counter: np.ndarray  # (L, k) int64 us, time the clear condition has held
    active: np.ndarray  # (L, k) bool, level set
    prev_violated: np.ndarray  # (L, k) bool
    prev_clear_ok: np.ndarray  # (L, k) bool

    @classmethod
    def empty(cls, levels: int) -> DebounceState:
        return cls(
            cols=np.zeros(0, np.intp),
            counter=np.zeros((levels, 0), np.int64),
            clear_counter=np.zeros((levels, 0), np.int64),
            active=np.zeros((levels, 0), bool),
            prev_violated=np.zeros((levels, 0), bool),
            prev_clear_ok=np.zeros((levels, 0), bool),
        )

    @property
    def quiet(self) -> bool:
        return self.cols.size == 0

    def aligned(self, cols: np.ndarray) -> DebounceState:
        """The same state laid out over ``cols`` (a sorted superset of ``self.cols``)."""
        if cols.size == self.cols.size:
            return self
        pos = np.searchsorted(cols, self.cols) if self.cols.size < 4096 else _rank(cols, self.cols)
        shape = (self.counter.shape[0], cols.size)
        out = []
        for arr in (
            self.counter,
            self.clear_counter,
            self.active,
            self.prev_violated,
            self.prev_clear_ok,
        ):
            wide = np.zeros(shape, arr.dtype)
            for row in range(shape[0]):  # per level: a 1-D scatter is ~3x a 2-D one
                wide[row, pos] = arr[row]
            out.append(wide)
        return DebounceState(cols, *out)


def union(a: np.ndarray, b: np.ndarray, size: int) -> np.ndarray:
    """Sorted union of two sorted index arrays below ``size``: one mask, no sort or hash."""
    mask = np.zeros(size, bool)
    mask[a] = True
    mask[b] = True
    return np.flatnonzero(mask)


def _rank(cols: np.ndarray, subset: np.ndarray) -> np.ndarray:
    """Positions of ``subset`` in ``cols`` (both sorted, ``subset`` within ``cols``)."""
    rank = np.zeros(int(cols[-1]) + 1, np.intp)
    rank[cols] = np.arange(cols.size)
    return rank[subset]


@dataclass(frozen=True)
class Transitions:
    """Level changes of one step at ``cols`` (the columns of the pre-pruning state)."""

    cols: np.ndarray
    set_now: np.ndarray  # (L, k) bool
    cleared: np.ndarray  # (L, k) bool


def advance(
    state: DebounceState,
    violated: np.ndarray,
    clear_ok: np.ndarray,
    timing: Timing,
    dt_us: int,
    reset: bool,
    onset_us: np.ndarray | None = None,
) -> tuple[DebounceState, Transitions]:
    """One step; ``state`` is already aligned to the columns of ``violated``/``clear_ok``.

    Delays are per level (L,) or per level and column (L, k) when the columns belong to
    checks with different delays. ``onset_us`` (k,) is added to the set counter of entries
    violated now and not at the previous step, at most ``dt_us`` each.
    """
    set_us = timing.set_us if timing.set_us.ndim == 2 else timing.set_us[:, None]
    clear_us = timing.clear_us if timing.clear_us.ndim == 2 else timing.clear_us[:, None]
    # In-place arithmetic on fresh arrays: this runs over every tracked element each cycle.
    counter = np.where(state.prev_violated, dt_us, -dt_us)
    counter += state.counter
    np.maximum(counter, 0, out=counter)
    if onset_us is not None:
        counter += np.where(state.prev_violated, 0, onset_us) * violated
    np.minimum(counter, set_us, out=counter)
    set_now = counter >= set_us
    set_now &= violated
    set_now &= ~state.active

    held = state.prev_clear_ok & clear_ok
    clear_counter = state.clear_counter + dt_us
    clear_counter *= held
    np.minimum(clear_counter, clear_us, out=clear_counter)
    cleared = clear_counter >= clear_us
    cleared &= state.active
    cleared &= clear_ok
    if not reset and timing.latch.any():
        cleared &= ~timing.latch[:, None]

    active = state.active | set_now
    active ^= cleared  # cleared is a subset of active
    if cleared.any():
        counter *= ~cleared
    clear_counter *= active
    prev_clear_ok = clear_ok & active
    keep = active | violated
    keep |= counter > 0
    keep = np.logical_or.reduce(keep, axis=0)
    transitions = Transitions(state.cols, set_now, cleared)
    if keep.all():
        return DebounceState(
            state.cols, counter, clear_counter, active, violated, prev_clear_ok
        ), transitions
    return DebounceState(
        state.cols[keep],
        counter[:, keep],
        clear_counter[:, keep],
        active[:, keep],
        violated[:, keep],
        prev_clear_ok[:, keep],
    ), transitions
