"""State of health per cell: capacity from the charge between two rests, resistance from
current steps; the pack's SOH is its weakest cell's.

Capacity. At a rest (|I| below ``[soc] rest_current_a`` for ``[soc] rest_time_s``, the rule
of the SOC estimate) a cell's voltage is its open-circuit voltage and the OCV table gives its
SOC: a *rest point*, taken once per rest. From there the charge through the pack is counted
(Ah, + = charging). At the next rest point every cell whose SOC moved by at least
``min_soc_swing_percent`` gives capacity = counted Ah / SOC change; the first such
measurement of a cell replaces the assumed value, later ones are blended in with
``capacity_weight``. Current that is invalid at any time in between voids the pair for every
cell; a cell that the balancer bled in between, that was invalid at either rest point or that
sat at an end of the OCV table (its SOC there is clipped, not measured) gets nothing from it.

Resistance. A cell reading that arrives while the current has stayed within a fifth of
``min_current_step_a`` of one value for ``settle_ms`` is kept with that current. When the
cell's next such reading comes at most ``max_sample_interval_ms`` later with a current at
least ``min_current_step_a`` away, R = dV / dI of the two; non-positive results are dropped,
the first one replaces the unknown value (NaN) and later ones are blended in with
``resistance_weight``. Waiting for a steady current keeps a reading from being paired with a
current measured before or after a step it did not see. Invalid current forgets the kept
readings.

SOH. Per cell, capacity / nominal capacity (``[soc] capacity_ah``), where a cell not measured
yet counts with ``initial_soh_percent`` (or what a previous run stored); the pack's SOH is
the lowest of them, clipped to 0..100 %: the weakest cell ends every discharge and every
charge, so it is the capacity the pack delivers. It is always a finite number.

Every per-cell operation is one NumPy expression over the pack; a step without a rest point
and without fresh readings under a steady current costs a few scalar comparisons. Readings
kept under the present steady current are within two fifths of ``min_current_step_a`` of it,
so only those kept before it can pair; while the present current is within
``min_current_step_a`` of every one of them (their lowest and highest current, taken when
the current settled), no cell is looked at for a pair.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import cached_property

import numpy as np

from controller.estimation.config import SohConfig
from controller.limits.config import SocConfig

SECONDS_PER_HOUR = 3600.0


@dataclass(frozen=True, eq=False)
class CellHealth:
    """The estimate: measured capacity (Ah) and resistance (Ohm) of every cell, NaN where a
    cell has not been measured yet. Replaced, never changed, when a measurement arrives."""

    capacity_ah: np.ndarray
    resistance_ohm: np.ndarray
    assumed_capacity_ah: float  # what an unmeasured cell counts with
    nominal_capacity_ah: float
    reference_resistance_ohm: float  # NaN: no growth is reported

    @cached_property
    def cell_capacity_ah(self) -> np.ndarray:
        """Measured capacity, or the assumed one where none is measured yet."""
        return np.where(np.isnan(self.capacity_ah), self.assumed_capacity_ah, self.capacity_ah)

    @cached_property
    def cell_soh(self) -> np.ndarray:
        """% of nominal capacity per cell (not clipped: a cell may beat its rating)."""
        return 100.0 * self.cell_capacity_ah / self.nominal_capacity_ah

    @cached_property
    def weakest_cell(self) -> int:
        return int(np.argmin(self.cell_capacity_ah))

    @cached_property
    def pack_soh(self) -> float:
        """The weakest cell's SOH in 0..100 %: what goes on the bus."""
        return float(np.clip(self.cell_soh[self.weakest_cell], 0.0, 100.0))

    @cached_property
    def capacity_measured(self) -> int:
        """Cells whose capacity has been measured at least once."""
        return int(np.count_nonzero(~np.isnan(self.capacity_ah)))

    @cached_property
    def resistance_growth(self) -> np.ndarray:
        """Resistance over the new-cell reference per cell; NaN where unknown."""
        return self.resistance_ohm / self.reference_resistance_ohm

    @cached_property
    def highest_resistance_cell(self) -> int:
        """The cell with the highest measured resistance; -1 before any is measured."""
        known = ~np.isnan(self.resistance_ohm)
        if not known.any():
            return -1
        return int(np.argmax(np.where(known, self.resistance_ohm, -np.inf)))

    @cached_property
    def stored(self) -> dict[str, tuple[float, ...]]:
        """The fields of `controller.persisted.Persisted` that carry the estimate; 0 stands
        for "not measured" (JSON has no NaN, and no measurement is 0)."""
        return {
            "cell_capacity_ah": tuple(np.nan_to_num(self.capacity_ah, nan=0.0).tolist()),
            "cell_resistance_ohm": tuple(np.nan_to_num(self.resistance_ohm, nan=0.0).tolist()),
        }


@dataclass(frozen=True)
class SohState:
    """The estimate and the estimator's working memory; arrays are replaced, never changed."""

    health: CellHealth
    time: float | None
    rest_since: float | None  # start of the present rest; None under current
    rest_taken: bool  # this rest's rest point is taken
    anchor_soc: np.ndarray  # % per cell at the last rest point
    anchor_ok: np.ndarray  # the cell's pair from that rest point is still intact
    counted_ah: float  # charge since the last rest point, + = charging
    sample_voltage: np.ndarray  # V, the cell's last reading under steady current
    sample_current: np.ndarray  # A, the current at that reading
    sample_time: np.ndarray  # s, when it arrived; -inf: none kept
    steady_current: float  # A, where the current settled; NaN: unknown
    steady_since: float  # s
    # A, lowest and highest current of the readings kept when the current settled (NaN: none)
    earlier_low: float = math.nan
    earlier_high: float = math.nan


class SohEstimator:
    """The estimate for one configuration and pack size."""

    def __init__(self, config: SohConfig, soc: SocConfig, cells: int) -> None:
        self.config = config
        self.soc = soc
        self.cells = cells
        self._ocv_v, self._ocv_soc = soc.ocv.y, soc.ocv.x
        self._none = _frozen(np.zeros(cells, bool))
        self._never = _frozen(np.full(cells, -np.inf))
        self._unknown = _frozen(np.full(cells, np.nan))

    def initial_state(
        self, capacity_ah: Sequence[float] = (), resistance_ohm: Sequence[float] = ()
    ) -> SohState:
        """Nothing measured, or the estimates a previous run stored (ignored when stored for
        another number of cells; stored values that are not positive count as unmeasured)."""
        cfg = self.config
        nominal = self.soc.capacity_ah
        health = CellHealth(
            capacity_ah=self._restored(capacity_ah),
            resistance_ohm=self._restored(resistance_ohm),
            assumed_capacity_ah=nominal * cfg.initial_soh_percent / 100.0,
            nominal_capacity_ah=nominal,
            reference_resistance_ohm=math.nan
            if cfg.reference_resistance_mohm is None
            else cfg.reference_resistance_mohm / 1000.0,
        )
        return SohState(
            health=health,
            time=None,
            rest_since=None,
            rest_taken=False,
            anchor_soc=self._unknown,
            anchor_ok=self._none,
            counted_ah=0.0,
            sample_voltage=self._unknown,
            sample_current=self._unknown,
            sample_time=self._never,
            steady_current=math.nan,
            steady_since=-math.inf,
        )

    def step(
        self,
        state: SohState,
        voltage: np.ndarray,
        voltage_valid: np.ndarray,
        updated_at: np.ndarray,
        current: float,
        current_valid: bool,
        bleeding: np.ndarray,
        now: float,
    ) -> SohState:
        """One cycle: ``voltage``/``voltage_valid`` the cell readings and whether they are
        usable now, ``updated_at`` when each arrived, ``current`` the pack current (A,
        + = charging), ``bleeding`` the cells the balancer bled since the last step."""
        if not (current_valid and math.isfinite(current)):
            return replace(
                state,
                time=now,
                rest_since=None,
                rest_taken=False,
                anchor_ok=self._none,
                counted_ah=0.0,
                sample_time=self._never,
                steady_current=math.nan,
            )
        dt = 0.0 if state.time is None else max(0.0, now - state.time)
        anchor_ok = state.anchor_ok
        if bleeding.any():
            anchor_ok = anchor_ok & ~bleeding
        counted_ah = state.counted_ah + current * dt / SECONDS_PER_HOUR
        health, anchor_soc = state.health, state.anchor_soc
        rest_since, rest_taken = state.rest_since, state.rest_taken
        if abs(current) >= self.soc.rest_current_a:
            rest_since, rest_taken = None, False
        else:
            rest_since = now if rest_since is None else rest_since
            rested = now - rest_since >= self.soc.rest_time_s
            if not rest_taken and rested and voltage_valid.any():  # the rest point
                soc = np.interp(voltage, self._ocv_v, self._ocv_soc)
                usable = voltage_valid & (soc > self._ocv_soc[0]) & (soc < self._ocv_soc[-1])
                health = self._capacity(health, soc - anchor_soc, anchor_ok & usable, counted_ah)
                anchor_soc, anchor_ok, counted_ah = _frozen(soc), _frozen(usable), 0.0
                rest_taken = True
        s = SohState(
            health,
            now,
            rest_since,
            rest_taken,
            anchor_soc,
            anchor_ok,
            counted_ah,
            state.sample_voltage,
            state.sample_current,
            state.sample_time,
            state.steady_current,
            state.steady_since,
            state.earlier_low,
            state.earlier_high,
        )
        return self._resistance(s, voltage, voltage_valid, updated_at, current, now)

    # -- capacity -----------------------------------------------------------------------

    def _capacity(
        self, health: CellHealth, swing: np.ndarray, intact: np.ndarray, counted_ah: float
    ) -> CellHealth:
        """``health`` with the capacities of the cells whose pair swung far enough."""
        pair = intact & (np.abs(swing) >= self.config.min_soc_swing_percent)
        if not pair.any():
            return health
        cells = np.flatnonzero(pair)
        measured = counted_ah * 100.0 / swing[cells]
        agreeing = measured > 0.0  # charge and SOC moved the same way
        cells, measured = cells[agreeing], measured[agreeing]
        if cells.size == 0:
            return health
        capacity = _blend(health.capacity_ah, cells, measured, self.config.capacity_weight)
        return replace(health, capacity_ah=capacity)

    # -- resistance ---------------------------------------------------------------------

    def _resistance(
        self,
        s: SohState,
        voltage: np.ndarray,
        valid: np.ndarray,
        updated_at: np.ndarray,
        current: float,
        now: float,
    ) -> SohState:
        """Keep readings taken under a steady current; pair them across current steps."""
        cfg = self.config
        if math.isnan(s.steady_current) or abs(current - s.steady_current) > cfg.steady_band_a:
            kept = s.sample_current[s.sample_time > -np.inf]
            low, high = (kept.min(), kept.max()) if kept.size else (math.nan, math.nan)
            return replace(
                s, steady_current=current, steady_since=now, earlier_low=low, earlier_high=high
            )
        if now - s.steady_since < cfg.settle_s:
            return s
        fresh = updated_at > s.sample_time
        fresh &= valid
        if not fresh.any():
            return s
        health = s.health
        if (
            current - s.earlier_low >= cfg.min_current_step_a
            or s.earlier_high - current >= cfg.min_current_step_a
        ):
            health = self._paired(health, s, voltage, fresh, updated_at, current)
        return SohState(
            health,
            s.time,
            s.rest_since,
            s.rest_taken,
            s.anchor_soc,
            s.anchor_ok,
            s.counted_ah,
            _frozen(np.where(fresh, voltage, s.sample_voltage)),
            _frozen(np.where(fresh, current, s.sample_current)),
            _frozen(np.where(fresh, updated_at, s.sample_time)),
            s.steady_current,
            s.steady_since,
            s.earlier_low,
            s.earlier_high,
        )

    def _paired(
        self,
        health: CellHealth,
        s: SohState,
        voltage: np.ndarray,
        fresh: np.ndarray,
        updated_at: np.ndarray,
        current: float,
    ) -> CellHealth:
        """``health`` with the resistances of the fresh cells a current step away from the
        reading kept before."""
        cfg = self.config
        step = current - s.sample_current
        pair = (
            fresh
            & (np.abs(step) >= cfg.min_current_step_a)
            & (updated_at <= s.sample_time + cfg.max_sample_interval_s)  # -inf - -inf is NaN
        )
        if not pair.any():
            return health
        cells = np.flatnonzero(pair)
        measured = (voltage[cells] - s.sample_voltage[cells]) / step[cells]
        positive = measured > 0.0
        if not positive.any():
            return health
        resistance = _blend(
            health.resistance_ohm, cells[positive], measured[positive], cfg.resistance_weight
        )
        return replace(health, resistance_ohm=resistance)

    def _restored(self, values: Sequence[float]) -> np.ndarray:
        array = np.array(values, np.float64).reshape(-1)
        if array.size != self.cells:
            return self._unknown
        return _frozen(np.where(np.isfinite(array) & (array > 0.0), array, np.nan))


def _blend(
    estimate: np.ndarray, cells: np.ndarray, measured: np.ndarray, weight: float
) -> np.ndarray:
    """A copy of ``estimate`` with ``measured`` blended in at ``cells``; a cell still unknown
    (NaN) takes its first measurement as it is."""
    out = estimate.copy()
    old = out[cells]
    out[cells] = np.where(np.isnan(old), measured, old + weight * (measured - old))
    out.flags.writeable = False
    return out


def _frozen(array: np.ndarray) -> np.ndarray:
    """``array`` made read-only: states share arrays, so nothing may write into them."""
    array.flags.writeable = False
    return array
