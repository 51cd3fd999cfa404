"""Per-cell SOC: one extended Kalman filter per cell, all cells as arrays.

Model of a cell (first-order equivalent circuit, current + = charging, SOC in %):

    SOC'  = SOC + 100 x I dt / (3600 x C_nom) x q,     q = C_nom / C (the cell's capacity)
    V1'   = a V1 + R1 f(T) (1 - a) I,                    a = exp(-dt / (tau f(T)))
    h'    = b h + sign(I) (1 - b),                       b = exp(-rate x |dSOC| / 100)
    V     = OCV(SOC) + H(SOC) h + R0 f(T) I + V1

f(T) is the resistances' temperature factor; the time constant R1 C1 grows with R1. The OCV
curve is linearised over +- the SOC's standard deviation (up to ``LINEARISED_OVER``), not at
one point: near a knee of the curve a point slope would claim more than a reading tells.

The state of a cell is (SOC, V1, q, R0) and, for a cell type with hysteresis, h; its
covariance is a symmetric (states x states) matrix per cell, of which only the upper
triangle is kept. Held as arrays: ``x`` is (states, cells) and ``cov_packed`` (entries,
cells), the entries row by row (`Layout`), so a step is a fixed number of NumPy expressions
over all cells, whatever their number and whatever the number of states: the model's
Jacobian is the same for every cell (the identity but for dSOC/dq = m, dV1/dV1 = a and
dh/dh = b), so the prediction scales the entries by constants and adds the q row times m to
the SOC row; the correction is one gain per cell from the stacked matrices.

Why each state: a cell's capacity (q) and ohmic resistance (R0) differ from what is assumed
and stay so; an error that persists is a bias, and a filter that counted it as white noise
would average many readings with the same error into a wrong SOC (a low-resistance cell
read as fuller under load, a small cell as drifting). As states the filter learns them from
its own innovations: the resistance from readings at different currents, the capacity from
the SOC the readings show against the charge counted. The hysteresis state h (-1 discharge
branch .. +1 charge branch) follows the charge like the plant's and is corrected by the
readings too; unknown after a restart (h = 0 give or take 1), it is learnt as charge flows
one way. A current within ``current_accuracy_a`` does not move it: a sensor's offset at rest
is no charge through the cell, and would walk h to one branch.

Process noise: an offset of ``current_accuracy_a`` is a bias, not white noise, so its
variance is spread as a random walk that reaches the drift of one hour after one hour
(``BIAS_HORIZON_S``); the polarisation voltage may differ from the model by the voltage
accuracy plus ``resistance_accuracy_percent`` of R1 I; capacity, resistance and hysteresis
may drift slowly. The measurement noise is ``voltage_accuracy_mv``.

Start: a cell never measured has no estimate (NaN); its first reading sets SOC from the OCV
table after the resistive drop (V1 taken as settled at the present current, give or take
half of that) with the covariance the caller starts from; a stored SOC keeps its value and
uncertainty. R0 starts from the resistance ``[soh]`` measured (else ``r0_mohm``) with
``resistance_accuracy_percent``; q from the first capacity the caller passes, give or take
``CAPACITY_ERROR``; a later change of that capacity (``[soh]`` measured the cell) replaces q
with ``CAPACITY_MEASURED`` as its uncertainty.

Prediction runs over all cells, correction over the cells with a fresh reading; a reading is
used once (``measured_at`` keeps the arrival time of the last one used). A step does both on
one new copy of the arrays. A large pack (from ``DEFER_FROM_CELLS`` cells) applies to every
cell at each step only SOC and its variance, and the rest of the prediction to a cell when
it is corrected or read (`controller.estimation.deferred`); it reads the same.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from controller.estimation.cell_estimate import (
    CAP,
    HYS,
    RES,
    SOC,
    V1,
    CellEstimate,
    Layout,
    frozen,
)
from controller.estimation.deferred import DeferredState, Entries, StepMap
from controller.limits.config import SocConfig

BIAS_HORIZON_S = 3600.0  # a current offset's drift is modelled right over this horizon
T_REF_K = 298.15
KELVIN = 273.15
CAPACITY_ERROR = 0.05  # relative standard deviation of a capacity before it is measured
CAPACITY_MEASURED = 0.01  # ... of a capacity [soh] measured
CAPACITY_DRIFT = 0.01  # relative capacity change the filter allows per sqrt(hour)
HYSTERESIS_DRIFT = 0.1  # hysteresis state change the filter allows per sqrt(hour)
LINEARISED_OVER = 3.0  # % SOC: the OCV curve is linearised over +- the SOC uncertainty, up to this
DEFER_FROM_CELLS = 50_000  # packs from this size defer the prediction (`DeferredState`)


@dataclass(frozen=True, eq=False)
class FilterState(CellEstimate):
    """Per-cell estimate and covariance; arrays are replaced, never changed."""

    x: np.ndarray  # (states, cells): SOC %, V1 V, q, R0 at 25 degC Ohm[, h]
    cov_packed: np.ndarray  # (entries, cells): the covariance's upper triangle (`Layout`)
    measured_at: np.ndarray  # s, arrival time of the last reading used; -inf: none
    capacity_in: np.ndarray | None  # Ah, the capacity q was last taken from; None: none yet
    nominal_ah: float  # C_nom
    start_std: float  # % standard deviation a cell's first reading starts from
    last_current: float = 0.0  # A, the last valid current

    @property
    def soc(self) -> np.ndarray:
        return self.x[SOC]

    @property
    def soc_variance(self) -> np.ndarray:
        return self.cov_packed[0]

    @property
    def q(self) -> np.ndarray:
        return self.x[CAP]

    @property
    def resistance_ohm(self) -> np.ndarray:
        """The ohmic resistance per cell at 25 degC the filter works with (Ohm)."""
        return self.x[RES]


class CellSocFilter:
    """The filter for one configuration and pack size. ``deferred``: whether its states are
    `DeferredState`; by default from ``DEFER_FROM_CELLS`` cells, where that saves more than
    its bookkeeping costs."""

    def __init__(self, config: SocConfig, cells: int, deferred: bool | None = None) -> None:
        self.config = config
        self.cells = cells
        self.deferred = cells >= DEFER_FROM_CELLS if deferred is None else deferred
        self._x = np.asarray(config.ocv.x, np.float64)
        self._y = np.asarray(config.ocv.y, np.float64)
        slope = np.diff(self._y) / np.diff(self._x)  # V per % per segment
        self._ends = float(self._x[0]), float(self._x[-1])
        self._end_slopes = float(slope[0]), float(slope[-1])  # continued beyond the table
        self._around = np.array([[-1.0], [0.0], [1.0]])  # the points the slope is taken over
        self._hx = np.asarray(config.hysteresis.x, np.float64)
        self._hy = np.asarray(config.hysteresis.y, np.float64)
        self._states = HYS + 1 if self._hy.any() else HYS
        self._layout = Layout.of(self._states)
        self._entries = Entries.of(self._states)
        self._diagonal = self._layout.diagonal.tolist()
        # how often V1 and h are among the two states of each covariance entry
        rows, cols = self._layout.rows, self._layout.cols
        self._v1_in_entry = np.add(rows == V1, cols == V1, dtype=np.float64)
        self._hys_in_entry = np.add(rows == HYS, cols == HYS, dtype=np.float64)
        self._rate = float(config.hysteresis_rate)
        self._r1 = config.r1_mohm / 1000.0
        self._r0 = config.r0_mohm / 1000.0
        self._sigma_v2 = (config.voltage_accuracy_mv / 1000.0) ** 2
        self._sigma_r = config.resistance_accuracy_percent / 100.0
        self._per_a = 100.0 / (3600.0 * config.capacity_ah)  # % per As at q = 1
        # d(measured voltage)/d(state) per cell, copied per step: rows V1 (1) and q (0) stay
        self._jacobian = np.zeros((self._states, cells))
        self._jacobian[V1] = 1.0
        frozen(self._jacobian)

    def initial_state(self, soc: np.ndarray | None = None, std: float | None = None) -> FilterState:
        """Nothing known (``soc`` None), or a per-cell SOC a previous run stored, trusted to
        ``std`` (% standard deviation); non-finite stored values count as unknown."""
        cfg = self.config
        n, k = self.cells, self._states
        start = cfg.initial_uncertainty_percent
        values = np.full(n, np.nan)
        if soc is not None and np.size(soc) == n:
            values = np.where(np.isfinite(soc), np.asarray(soc, np.float64), np.nan)
        known = ~np.isnan(values)
        restored_std = cfg.restored_uncertainty_percent if std is None else std
        x = np.zeros((k, n))
        x[SOC], x[CAP], x[RES] = values, 1.0, self._r0
        cov = np.zeros((self._layout.rows.size, n))
        diagonal = self._layout.diagonal
        cov[diagonal[SOC]] = np.where(known, restored_std**2, start**2)
        cov[diagonal[V1]] = self._sigma_v2  # set again at the first reading
        cov[diagonal[CAP]] = CAPACITY_ERROR**2
        cov[diagonal[RES]] = (self._sigma_r * self._r0) ** 2
        if k > HYS:
            cov[diagonal[HYS]] = 1.0
        return FilterState(
            x=frozen(x),
            cov_packed=frozen(cov),
            measured_at=frozen(np.full(n, -np.inf)),
            capacity_in=None,
            nominal_ah=cfg.capacity_ah,
            start_std=start,
        )

    # -- model ---------------------------------------------------------------------------

    def ocv(self, soc: np.ndarray, h: np.ndarray | float = 0.0) -> np.ndarray:
        """Rest voltage at ``soc`` (%) on hysteresis branch ``h``."""
        return np.interp(soc, self._x, self._y) + h * np.interp(soc, self._hx, self._hy)

    def soc_from_ocv(self, voltage: np.ndarray) -> np.ndarray:
        """SOC (%) of a rest voltage on the equilibrium curve, clamped to the table."""
        return np.interp(voltage, self._y, self._x)

    def resistance_factor(self, temperature_c: float) -> float:
        """R(T) / R(25 degC); 1 when the temperature is unknown."""
        if not math.isfinite(temperature_c):
            return 1.0
        return math.exp(self.config.activation_k * (1.0 / (temperature_c + KELVIN) - 1.0 / T_REF_K))

    # -- a step and its two halves -------------------------------------------------------

    def step(
        self,
        s: CellEstimate,
        current: float,
        dt: float,
        capacity_ah: np.ndarray,
        r_factor: float,
        voltage: np.ndarray,
        fresh: np.ndarray,
        updated_at: np.ndarray,
        resistance_ohm: np.ndarray,
    ) -> CellEstimate:
        """`predict`, then `update` with the readings, on one copy of the arrays."""
        reading = (voltage, fresh, updated_at, resistance_ohm)
        if self.deferred:
            d = self._deferred_predicted(s, current, dt, capacity_ah, r_factor)
            return self._sealed(self._deferred_corrected(d, *reading, current, r_factor))
        x, cov = self._predicted(s, current, dt, capacity_ah, r_factor)
        measured_at = self._correct(s, x, cov, *reading, current, r_factor)
        return self._with(s, x, cov, measured_at, capacity_ah, current)

    def predict(
        self, s: CellEstimate, current: float, dt: float, capacity_ah: np.ndarray, r_factor: float
    ) -> CellEstimate:
        """Move every cell by ``current`` (A, + = charging) held for ``dt`` seconds;
        ``capacity_ah`` is each cell's capacity as ``[soh]`` knows it."""
        if self.deferred:
            return self._sealed(self._deferred_predicted(s, current, dt, capacity_ah, r_factor))
        x, cov = self._predicted(s, current, dt, capacity_ah, r_factor)
        return self._with(s, x, cov, s.measured_at, capacity_ah, current)

    def update(
        self,
        s: CellEstimate,
        voltage: np.ndarray,
        fresh: np.ndarray,
        updated_at: np.ndarray,
        current: float,
        resistance_ohm: np.ndarray,
        r_factor: float,
    ) -> CellEstimate:
        """Correct the cells with a ``fresh`` reading; a cell's first reading initialises it.

        ``resistance_ohm`` is each cell's ohmic resistance as ``[soh]`` measured it at the
        present temperature (NaN: not measured, ``r0_mohm`` then), where the filter's own
        estimate starts."""
        reading = (voltage, fresh, updated_at, resistance_ohm)
        if self.deferred:
            d = self._as_deferred(s)
            return self._sealed(self._deferred_corrected(d, *reading, current, r_factor))
        x, cov = s.x.copy(), s.cov_packed.copy()
        measured_at = self._correct(s, x, cov, *reading, current, r_factor)
        return self._with(s, x, cov, measured_at, s.capacity_in, s.last_current)

    def lost_current(self, s: CellEstimate, dt: float) -> CellEstimate:
        """No valid current for ``dt``: the charge moved is unknown, up to the last current."""
        if dt <= 0.0:
            return s
        unknown = abs(s.last_current) * dt * self._per_a * s.q
        if isinstance(s, DeferredState):
            eager = s.eager.copy()
            eager[3] += unknown**2  # (SOC, SOC)
            return replace(s, eager=frozen(eager))
        cov = s.cov_packed.copy()
        cov[0] += unknown**2
        return self._with(s, s.x, cov, s.measured_at, s.capacity_in, s.last_current)

    # -- the work ------------------------------------------------------------------------

    def _step_map(self, current: float, dt: float, r_factor: float) -> StepMap:
        """The model's map for ``dt`` (> 0) at ``current``, the same for every cell."""
        cfg = self.config
        m = current * dt * self._per_a  # % moved at q = 1
        a = math.exp(-dt / (cfg.tau_s * r_factor))  # tau = R1 C1, and R1 follows f(T)
        r1 = self._r1 * r_factor
        offset = self._per_a * cfg.current_accuracy_a
        noise = [  # process noise, for the nominal cell: it need not be exact per cell
            offset * offset * BIAS_HORIZON_S * dt,
            (1.0 - a * a) * (self._sigma_v2 + (self._sigma_r * r1 * current) ** 2),
            CAPACITY_DRIFT**2 * dt / 3600.0,
            (self._sigma_r * self._r0) ** 2 * dt / BIAS_HORIZON_S,
        ]
        b, h_in = 1.0, 0.0
        if self._states > HYS:
            noise.append(HYSTERESIS_DRIFT**2 * dt / 3600.0)
            if abs(current) > cfg.current_accuracy_a:
                b = math.exp(-self._rate * abs(m) / 100.0)  # at the nominal capacity
                h_in = math.copysign(1.0, current) * (1.0 - b)
        return StepMap(m, a, r1 * (1.0 - a) * current, b, h_in, tuple(noise))

    def _renewed(self, s: CellEstimate, capacity_ah: np.ndarray) -> bool:
        return s.capacity_in is None or (
            capacity_ah is not s.capacity_in and not np.array_equal(capacity_ah, s.capacity_in)
        )

    def _predicted(
        self, s: CellEstimate, current: float, dt: float, capacity_ah: np.ndarray, r_factor: float
    ) -> tuple[np.ndarray, np.ndarray]:
        """New (writable) state and covariance arrays after ``dt`` at ``current``."""
        renewed = self._renewed(s, capacity_ah)
        x, cov = self._new_capacity(s, capacity_ah) if renewed else (s.x, s.cov_packed)
        if dt <= 0.0:
            return (x, cov) if renewed else (x.copy(), cov.copy())
        step = self._step_map(current, dt, r_factor)
        m = step.m
        x = x.copy()
        x[V1] *= step.a
        x[V1] += step.v1_in
        x[SOC] += m * x[CAP]
        # F P F^T with F = D + m e_SOC e_q^T, D the diagonal (1, a, 1, 1[, b]): D P D, then m
        # times the q row (of D P D) added to the SOC row, and to (SOC, SOC) again m P_q,SOC
        # + m^2 P_qq
        scale = step.a**self._v1_in_entry
        if step.b != 1.0:
            x[HYS] *= step.b
            x[HYS] += step.h_in
            scale *= step.b**self._hys_in_entry
        cov = cov * scale[:, None]
        if m:
            q_row = cov[self._layout.full[CAP]]
            cov[: self._states] += m * q_row
            cov[0] += m * (q_row[SOC] + m * q_row[CAP])
        for entry, variance in zip(self._diagonal, step.noise, strict=True):
            cov[entry] += variance
        return x, cov

    def _new_capacity(
        self, s: CellEstimate, capacity_ah: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """q taken from the cells whose capacity changed (all of them the first time)."""
        changed = (
            np.ones(self.cells, bool) if s.capacity_in is None else capacity_ah != s.capacity_in
        )
        std = CAPACITY_ERROR if s.capacity_in is None else CAPACITY_MEASURED
        x, cov = s.x.copy(), s.cov_packed.copy()
        cells = changed.nonzero()[0]
        q = s.nominal_ah / capacity_ah[cells]
        x[CAP, cells] = q
        cov[self._layout.full[CAP][:, None], cells] = 0.0
        cov[self._layout.diagonal[CAP], cells] = (std * q) ** 2
        return x, cov

    def _correct(
        self,
        s: CellEstimate,
        x: np.ndarray,
        cov: np.ndarray,
        voltage: np.ndarray,
        fresh: np.ndarray,
        updated_at: np.ndarray,
        resistance_ohm: np.ndarray,
        current: float,
        r_factor: float,
    ) -> np.ndarray:
        """Correct ``x`` and ``cov`` in place where a reading is fresh; the new
        ``measured_at``. The work is done on the fresh cells only: readings arrive spread
        over the cycles."""
        idx = (fresh & np.isfinite(voltage)).nonzero()[0]
        if idx.size == 0:
            return s.measured_at
        every = idx.size == self.cells  # then views of the whole arrays: no gathering
        cells = slice(None) if every else idx
        xs, ps = x[:, cells], cov[:, cells]
        first = np.isinf(s.measured_at[cells])
        self._correct_cells(
            s, xs, ps, first, voltage[cells], resistance_ohm[cells], current, r_factor
        )
        if every:
            return frozen(updated_at.copy())
        x[:, idx], cov[:, idx] = xs, ps
        measured_at = s.measured_at.copy()
        measured_at[idx] = updated_at[idx]
        return frozen(measured_at)

    def _correct_cells(
        self,
        s: CellEstimate,
        xs: np.ndarray,
        ps: np.ndarray,
        first: np.ndarray,
        v: np.ndarray,
        resistance_ohm: np.ndarray,
        current: float,
        r_factor: float,
    ) -> None:
        """Correct the cells' state ``xs`` and covariance ``ps`` in place by readings ``v``;
        the cells read ``first`` are initialised first."""
        if first.any():
            self._first_reading(s, xs, ps, first, v, current, resistance_ohm, r_factor)
        layout, jacobian = self._layout, self._jacobian[:, : v.size].copy()
        soc = xs[SOC]
        spread = np.maximum(ps[0], 0.0)
        np.sqrt(spread, out=spread)
        np.maximum(spread, 0.1, out=spread)
        np.minimum(spread, LINEARISED_OVER, out=spread)
        around = self._around * spread  # SOC - spread, SOC, SOC + spread
        around += soc
        curve = np.interp(around, self._x, self._y)
        ocv = curve[1]
        low, high = self._ends
        if soc.min() < low or soc.max() > high:  # the end segments continue
            ocv += self._end_slopes[0] * np.minimum(soc - low, 0.0)
            ocv += self._end_slopes[1] * np.maximum(soc - high, 0.0)
        np.subtract(curve[2], curve[0], out=jacobian[SOC])
        jacobian[SOC] /= 2.0 * spread
        jacobian[RES] = current * r_factor
        if self._states > HYS:
            jacobian[HYS] = np.interp(soc, self._hx, self._hy)  # half the branches' gap
            ocv += xs[HYS] * jacobian[HYS]
        innovation = v - (ocv + current * r_factor * xs[RES] + xs[V1])
        ph = np.einsum("ijc,jc->ic", ps[layout.full], jacobian)  # P H^T
        total = np.einsum("ic,ic->c", ph, jacobian)
        total += self._sigma_v2
        gain = ph / total
        xs += gain * innovation
        ps -= gain[layout.rows] * ph[layout.cols]
        if self._states > HYS:
            np.minimum(np.maximum(xs[HYS], -1.0, out=xs[HYS]), 1.0, out=xs[HYS])

    # -- the same for a `DeferredState` --------------------------------------------------

    def _as_deferred(self, s: CellEstimate) -> DeferredState:
        return s if isinstance(s, DeferredState) else DeferredState.of(s.x, s.cov_packed, s)

    def _deferred_predicted(
        self, s: CellEstimate, current: float, dt: float, capacity_ah: np.ndarray, r_factor: float
    ) -> DeferredState:
        """`_predicted` for every cell's SOC and its variance, the rest composed per group;
        the new arrays left writable for `_deferred_corrected`."""
        if self._renewed(s, capacity_ah):  # rare: every cell brought up to date
            d = DeferredState.of(*self._new_capacity(s, capacity_ah), s)
        else:
            d = self._as_deferred(s)
        d = replace(d, capacity_in=capacity_ah, last_current=current)
        if dt <= 0.0:
            return d
        step = self._step_map(current, dt, r_factor)
        m = step.m
        # SOC += m q; of F P F^T + Q the entries no deferred entry enters, as `_predicted`
        soc, q, resistance, ss, sq, qq = d.eager
        eager = np.empty_like(d.eager)
        np.multiply(q, m, out=eager[0])
        eager[0] += soc
        eager[1:3] = q, resistance
        if m:
            np.add(sq, m * qq, out=eager[4])
            np.add(ss, m * sq, out=eager[3])
            eager[3] += m * eager[4]
        else:
            eager[3:5] = ss, sq
        eager[3] += step.noise[SOC]
        np.add(qq, step.noise[CAP], out=eager[5])
        return replace(d, eager=eager, groups=d.groups.advanced(step))

    def _deferred_corrected(
        self,
        d: DeferredState,
        voltage: np.ndarray,
        fresh: np.ndarray,
        updated_at: np.ndarray,
        resistance_ohm: np.ndarray,
        current: float,
        r_factor: float,
    ) -> DeferredState:
        """`_correct` on the fresh cells brought up to date, then made a new group; only
        their rows are written."""
        idx = (fresh & np.isfinite(voltage)).nonzero()[0]
        if idx.size == 0:
            return d
        entries = self._entries
        groups = d.groups.regrouped(idx)
        if groups is None:  # rare: no group free, every cell brought up to date
            d = DeferredState.of(d.x, d.cov_packed, d)
            groups = d.groups.regrouped(idx)
        every = idx.size == self.cells
        cells = slice(None) if every else idx
        xs, ps, were = d.gathered(cells, entries)
        d.groups.bring_up_to_date(xs, ps, cells, entries)
        first = np.isinf(d.measured_at[cells])
        self._correct_cells(
            d, xs, ps, first, voltage[cells], resistance_ohm[cells], current, r_factor
        )
        if every:
            return replace(DeferredState.of(xs, ps, d), measured_at=frozen(updated_at.copy()))
        eager = _writable(d.eager)
        eager[:, idx] = entries.eager_of(xs, ps)
        measured_at = d.measured_at.copy()
        measured_at[idx] = updated_at[idx]
        return replace(
            d,
            eager=eager,
            rest=d.rest.replaced(idx, entries.rest_of(xs, ps), were),
            groups=groups,
            measured_at=frozen(measured_at),
        )

    @staticmethod
    def _sealed(d: DeferredState) -> DeferredState:
        frozen(d.eager)
        return d

    def _first_reading(
        self,
        s: CellEstimate,
        x: np.ndarray,
        cov: np.ndarray,
        first: np.ndarray,
        v: np.ndarray,
        current: float,
        resistance_ohm: np.ndarray,
        r_factor: float,
    ) -> None:
        """Cells read for the first time, in place: R0 from the measured resistance (else
        ``r0_mohm``), V1 taken as settled at the present current to within half of it, SOC
        from the OCV after both drops where unknown; the covariance reduced to variances."""
        diagonal = self._layout.diagonal
        settled = current * self._r1 * r_factor
        r0 = np.where(np.isnan(resistance_ohm), self._r0, resistance_ohm / r_factor)
        x[RES] = np.where(first, r0, x[RES])
        unknown = np.isnan(x[SOC])
        soc0 = self.soc_from_ocv(v - current * r_factor * x[RES] - settled)
        x[SOC] = np.where(unknown, soc0, x[SOC])
        x[V1] = np.where(first, settled, x[V1])
        off = self._layout.off_diagonal
        cov[off] = np.where(first, 0.0, cov[off])
        cov[diagonal[SOC]] = np.where(unknown, s.start_std**2, cov[diagonal[SOC]])
        v1 = settled**2 / 4.0 + self._sigma_v2
        cov[diagonal[V1]] = np.where(first, v1, cov[diagonal[V1]])
        res = (self._sigma_r * x[RES]) ** 2
        cov[diagonal[RES]] = np.where(first, res, cov[diagonal[RES]])

    @staticmethod
    def _with(
        s: CellEstimate,
        x: np.ndarray,
        cov: np.ndarray,
        measured_at: np.ndarray,
        capacity_in: np.ndarray | None,
        current: float,
    ) -> FilterState:
        return FilterState(
            frozen(x), frozen(cov), measured_at, capacity_in, s.nominal_ah, s.start_std, current
        )


def _writable(array: np.ndarray) -> np.ndarray:
    """``array`` if this step made it, else a copy."""
    return array if array.flags.writeable else array.copy()
