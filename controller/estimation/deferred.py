"""The SOC filter's state for a large pack: the prediction applied to a cell when it is
corrected or read, not at every step.

A prediction step is the same linear map for every cell: F = D + m E, D the diagonal
(1, a, 1, 1[, b]) and E = e_SOC e_q^T, plus a process noise Q on the diagonal. Such maps
compose within the family, F2 F1 = D2 D1 + (m1 + m2) E (D's SOC and q entries are 1 and
E E = 0), and V1' = a V1 + u, h' = b h + w compose as affine maps; so what the steps since
a cell was last brought up to date did to it is a handful of numbers, common to every cell
brought up to date at the same step (a group). A step applies to every cell only what is
read every step: SOC, and the (SOC, SOC), (SOC, q), (q, q) covariance entries, which no
other entry enters (q and R0 do not move). V1, h and the other covariance entries are kept
as they were when the cell's group was formed, in `versioned.Columns` (a step writes those
of the cells it corrects and copies nothing else), and brought up to date with the group's
composed map when the cell is corrected or read.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from controller.estimation.cell_estimate import CAP, HYS, RES, SOC, V1, CellEstimate, Layout, frozen
from controller.estimation.versioned import Columns

EAGER_STATES = [SOC, CAP, RES]  # the states a step brings up to date in every cell
SLOTS = 64  # groups at most; with none free every cell is brought up to date at once
# rows of `Groups.maps`: per group, the composed map since the group was formed
GAIN_V1, OFFSET_V1, GAIN_H, OFFSET_H, MOVED, NOISE_V1, NOISE_RES, NOISE_H = range(8)
IDENTITY = np.array([1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0])


class StepMap(NamedTuple):
    """One prediction step, the same for every cell: SOC' = SOC + m q, V1' = a V1 + v1_in,
    h' = b h + h_in, and ``noise`` added to the covariance's diagonal, state by state."""

    m: float
    a: float
    v1_in: float
    b: float
    h_in: float
    noise: tuple[float, ...]


@dataclass(frozen=True, eq=False)
class Entries:
    """Which covariance entries are kept up to date every step (``eager``) and which are
    deferred (``lazy``, kept in `Columns` after V1[ and h]), and what a map does to them."""

    layout: Layout
    eager: np.ndarray  # (SOC, SOC), (SOC, q), (q, q)
    lazy: np.ndarray  # the other entries
    states: list[int]  # the deferred states: V1[, h]
    soc_row: np.ndarray  # the entries (SOC, j), j among V1, R0[, h]
    q_row: np.ndarray  # the entries (q, j), the same j: (SOC, j) gains M times them
    v1_in: np.ndarray  # (entries,) how often V1 is among the entry's two states
    h_in: np.ndarray  # (entries,) how often h is
    diagonal: np.ndarray  # (V1, V1), (R0, R0)[, (h, h)]
    noise_rows: list[int]  # the `Groups.maps` row of each of those entries' noise

    @classmethod
    @functools.cache
    def of(cls, states: int) -> Entries:
        layout = Layout.of(states)
        full = layout.full
        others = [V1, RES, HYS][: states - 2]
        eager = full[[SOC, SOC, CAP], [SOC, CAP, CAP]]
        return cls(
            layout=layout,
            eager=eager,
            lazy=np.setdiff1d(np.arange(layout.rows.size), eager),
            states=[V1, HYS][: states - 3],
            soc_row=full[SOC, others],
            q_row=full[CAP, others],
            v1_in=np.add(layout.rows == V1, layout.cols == V1, dtype=np.float64),
            h_in=np.add(layout.rows == HYS, layout.cols == HYS, dtype=np.float64),
            diagonal=full[others, others],
            noise_rows=[NOISE_V1, NOISE_RES, NOISE_H][: len(others)],
        )

    def rest_of(self, x: np.ndarray, cov: np.ndarray) -> np.ndarray:
        """The deferred part of cells' ``x`` and ``cov``, (width, cells)."""
        return np.concatenate((x[self.states], cov[self.lazy]))

    def eager_of(self, x: np.ndarray, cov: np.ndarray) -> np.ndarray:
        """The part of cells' ``x`` and ``cov`` kept up to date, (6, cells)."""
        return np.concatenate((x[EAGER_STATES], cov[self.eager]))


@dataclass(frozen=True, eq=False)
class Groups:
    """Per cell its group; per group the steps composed since it was formed. Arrays are
    replaced, never changed."""

    group: np.ndarray  # (cells,) the group of each cell
    members: np.ndarray  # (SLOTS,) cells per group; 0: the slot is free
    maps: np.ndarray  # (8, SLOTS) rows GAIN_V1 .. NOISE_H

    @classmethod
    def start(cls, cells: int) -> Groups:
        """Every cell up to date, in group 0."""
        members = np.zeros(SLOTS, np.intp)
        members[0] = cells
        return cls(
            frozen(np.zeros(cells, np.uint8)),
            frozen(members),
            frozen(np.repeat(IDENTITY[:, None], SLOTS, axis=1)),
        )

    def advanced(self, step: StepMap) -> Groups:
        """One more step for every group."""
        a, b, noise = step.a, step.b, step.noise
        hys = noise[HYS] if len(noise) > HYS else 0.0
        gain = np.array([a, a, b, b, 1.0, a * a, 1.0, b * b])
        added = np.array([0.0, step.v1_in, 0.0, step.h_in, step.m, noise[V1], noise[RES], hys])
        maps = self.maps * gain[:, None]
        maps += added[:, None]
        return Groups(self.group, self.members, frozen(maps))

    def regrouped(self, cells: np.ndarray) -> Groups | None:
        """``cells`` (indices), once brought up to date, as a new group in a free slot;
        None when no slot would be free."""
        if cells.size == self.group.size:
            return Groups.start(cells.size)
        members = self.members - np.bincount(self.group[cells], minlength=SLOTS)
        free = np.flatnonzero(members == 0)
        if free.size == 0:
            return None
        slot = int(free[0])
        members[slot] = cells.size
        group = self.group.copy()
        group[cells] = slot
        maps = self.maps.copy()
        maps[:, slot] = IDENTITY
        return Groups(frozen(group), frozen(members), frozen(maps))

    def bring_up_to_date(
        self, x: np.ndarray, cov: np.ndarray, cells: np.ndarray | slice, entries: Entries
    ) -> None:
        """Apply, in place, to the state ``x`` (states, n) and packed covariance ``cov``
        (entries, n) of ``cells`` the steps their groups have had since they were up to
        date: P_ij d_i d_j, plus M P_qj for i = SOC, plus the noise composed; the eager
        entries are left as they are. Per group where the cells share one (the usual
        case), else per cell."""
        occupied = np.flatnonzero(self.members)
        if occupied.size == 1:
            group: np.ndarray | int = int(occupied[0])
        else:
            group = self.group[cells]
            if group.size and (group == group[0]).all():
                group = int(group[0])
        maps = self.maps[:, group]
        x[V1] *= maps[GAIN_V1]
        x[V1] += maps[OFFSET_V1]
        if x.shape[0] > HYS:
            x[HYS] *= maps[GAIN_H]
            x[HYS] += maps[OFFSET_H]
        cov[entries.soc_row] += maps[MOVED] * cov[entries.q_row]
        factors = self.maps[GAIN_V1, group] ** entries.v1_in[:, None]  # 1 for the eager
        factors *= self.maps[GAIN_H, group] ** entries.h_in[:, None]
        cov *= factors
        noise = maps[entries.noise_rows]
        cov[entries.diagonal] += noise if noise.ndim > 1 else noise[:, None]


@dataclass(frozen=True, eq=False)
class DeferredState(CellEstimate):
    """A filter state whose V1, h and covariance entries other than (SOC, SOC), (SOC, q),
    (q, q) lack the steps ``groups`` holds; ``x`` and ``cov_packed`` apply them."""

    eager: np.ndarray  # (6, cells) rows SOC, q, R0, then `Entries.eager`: up to date
    rest: Columns  # (width, cells) V1[, h] and the `Entries.lazy` entries, as of each group
    groups: Groups
    states: int
    measured_at: np.ndarray
    capacity_in: np.ndarray | None
    nominal_ah: float
    start_std: float
    last_current: float

    @classmethod
    def of(cls, x: np.ndarray, cov: np.ndarray, like: CellEstimate) -> DeferredState:
        """The state ``x``, ``cov`` (up to date) with the rest of ``like``'s fields."""
        entries = Entries.of(x.shape[0])
        return cls(
            frozen(entries.eager_of(x, cov)),
            Columns(entries.rest_of(x, cov)),
            Groups.start(x.shape[1]),
            x.shape[0],
            like.measured_at,
            like.capacity_in,
            like.nominal_ah,
            like.start_std,
            like.last_current,
        )

    @property
    def soc(self) -> np.ndarray:
        return self.eager[0]

    @property
    def q(self) -> np.ndarray:
        return self.eager[1]

    @property
    def resistance_ohm(self) -> np.ndarray:
        """The ohmic resistance per cell at 25 degC the filter works with (Ohm)."""
        return self.eager[2]

    @property
    def soc_variance(self) -> np.ndarray:
        return self.eager[3]

    @property
    def x(self) -> np.ndarray:
        return self._up_to_date[0]

    @property
    def cov_packed(self) -> np.ndarray:
        return self._up_to_date[1]

    @functools.cached_property
    def _up_to_date(self) -> tuple[np.ndarray, np.ndarray]:
        entries = Entries.of(self.states)
        x, cov = self.gathered(slice(None), entries)[:2]
        self.groups.bring_up_to_date(x, cov, slice(None), entries)
        return frozen(x), frozen(cov)

    def gathered(
        self, cells: np.ndarray | slice, entries: Entries
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """New (states, n) and (entries, n) arrays of ``cells`` as stored (the deferred
        part not yet brought up to date), and their stored `rest` columns (all of them
        read-only: to be copied from at once)."""
        every = isinstance(cells, slice)
        rest = self.rest.read() if every else self.rest.columns(cells)
        eager = self.eager[:, cells] if every else np.take(self.eager, cells, 1)
        x = np.empty((self.states, rest.shape[1]))
        x[EAGER_STATES] = eager[:3]
        width = len(entries.states)
        x[entries.states] = rest[:width]
        cov = np.empty((entries.layout.rows.size, rest.shape[1]))
        cov[entries.eager] = eager[3:]
        cov[entries.lazy] = rest[width:]
        return x, cov, rest
