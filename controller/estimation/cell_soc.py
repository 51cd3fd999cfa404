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
one new copy of the arrays. State and covariance are rows of one (states + entries, cells)
array, so the prediction is one pass over it and the fresh cells are gathered and written
back at once; cells whose readings arrive together (a slave's frame group, neighbours in
pack order) are moved as contiguous blocks (`Columns`), not cell by cell.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from controller.limits.config import SocConfig

BIAS_HORIZON_S = 3600.0  # a current offset's drift is modelled right over this horizon
T_REF_K = 298.15
KELVIN = 273.15
CAPACITY_ERROR = 0.05  # relative standard deviation of a capacity before it is measured
CAPACITY_MEASURED = 0.01  # ... of a capacity [soh] measured
CAPACITY_DRIFT = 0.01  # relative capacity change the filter allows per sqrt(hour)
HYSTERESIS_DRIFT = 0.1  # hysteresis state change the filter allows per sqrt(hour)
LINEARISED_OVER = 3.0  # % SOC: the OCV curve is linearised over +- the SOC uncertainty, up to this
SOC, V1, CAP, RES, HYS = range(5)  # rows of the state


@dataclass(frozen=True, eq=False)
class Layout:
    """Where each covariance entry (i, j), i <= j, sits in ``cov_packed``: row by row, so
    the SOC row is the first ``states`` entries and (SOC, SOC) entry 0."""

    rows: np.ndarray  # (entries,) i of each entry
    cols: np.ndarray  # (entries,) j of each entry
    full: np.ndarray  # (states, states) the entry of (i, j) and of (j, i)
    diagonal: np.ndarray  # (states,) the entries (i, i)
    off_diagonal: np.ndarray  # the entries i < j

    @classmethod
    @functools.cache
    def of(cls, states: int) -> Layout:
        rows, cols = np.triu_indices(states)
        full = np.zeros((states, states), np.intp)
        full[rows, cols] = full[cols, rows] = np.arange(rows.size)
        return cls(rows, cols, full, full.diagonal().copy(), np.flatnonzero(rows != cols))

    @staticmethod
    def states_of(rows: int) -> int:
        """The states k of a stacked array of k state rows and k (k + 1) / 2 entries."""
        return (math.isqrt(9 + 8 * rows) - 3) // 2


@dataclass(frozen=True, eq=False)
class FilterState:
    """Per-cell estimate and covariance; arrays are replaced, never changed."""

    values: np.ndarray  # (states + entries, cells): the state rows, then the covariance entries
    measured_at: np.ndarray  # s, arrival time of the last reading used; -inf: none
    capacity_in: np.ndarray | None  # Ah, the capacity q was last taken from; None: none yet
    nominal_ah: float  # C_nom
    start_std: float  # % standard deviation a cell's first reading starts from
    last_current: float = 0.0  # A, the last valid current

    @classmethod
    def of(
        cls,
        x: np.ndarray,
        cov_packed: np.ndarray,
        measured_at: np.ndarray,
        capacity_in: np.ndarray | None,
        nominal_ah: float,
        start_std: float,
        last_current: float = 0.0,
    ) -> FilterState:
        """The state from its estimate ``x`` and packed covariance, stacked into one array."""
        values = _frozen(np.concatenate((x, cov_packed)))
        return cls(values, measured_at, capacity_in, nominal_ah, start_std, last_current)

    @property
    def states(self) -> int:
        return Layout.states_of(self.values.shape[0])

    @property
    def x(self) -> np.ndarray:
        """(states, cells): SOC %, V1 V, q, R0 at 25 degC Ohm[, h]."""
        return self.values[: self.states]

    @property
    def cov_packed(self) -> np.ndarray:
        """(entries, cells): the covariance's upper triangle (`Layout`)."""
        return self.values[self.states :]

    @property
    def soc(self) -> np.ndarray:
        """SOC per cell (%), not clipped; NaN: never measured."""
        return self.values[SOC]

    @property
    def v_rc(self) -> np.ndarray:
        return self.values[V1]

    @property
    def capacity_ah(self) -> np.ndarray:
        """The capacity per cell the filter works with (Ah)."""
        return self.nominal_ah / self.values[CAP]

    @property
    def resistance_ohm(self) -> np.ndarray:
        """The ohmic resistance per cell at 25 degC the filter works with (Ohm)."""
        return self.values[RES]

    @property
    def h(self) -> np.ndarray:
        """Hysteresis state per cell, -1 .. +1 (0 for a cell type without hysteresis)."""
        return self.values[HYS] if self.states > HYS else np.zeros(self.values.shape[1])

    @property
    def cov(self) -> np.ndarray:
        """The full covariance, (states, states, cells)."""
        return self.cov_packed[Layout.of(self.states).full]

    @property
    def std(self) -> np.ndarray:
        """SOC standard deviation per cell (%); inf where never measured."""
        variance = self.cov_packed[0]
        return np.where(np.isnan(self.soc), np.inf, np.sqrt(np.maximum(variance, 0.0)))


@dataclass(frozen=True, eq=False)
class Columns:
    """The cells a step corrects (``cells``, ascending), gathered and written back in
    aligned blocks of ``width`` neighbouring cells where the cells come in such runs:
    a block is one contiguous copy, where a cell-by-cell gather costs per cell."""

    cells: np.ndarray
    width: int
    blocks: np.ndarray  # the block numbers, in cells of ``width``

    @classmethod
    def of(cls, cells: np.ndarray, total: int) -> Columns:
        """``cells`` of ``total``, in the widest blocks every run of them is made of."""
        breaks = (cells[1:] - cells[:-1] != 1).nonzero()[0]
        edges = np.concatenate((cells[[0, -1]], cells[breaks], cells[breaks + 1], [total]))
        edges[1] += 1  # a run's end is past its last cell
        edges[2 : 2 + breaks.size] += 1
        width = int(np.gcd.reduce(edges))
        return cls(cells, width, cells[::width] // width)

    def take(self, array: np.ndarray) -> np.ndarray:
        """The columns of ``array`` (..., total), as a new (..., cells) array."""
        if self.width == 1:
            return array.take(self.cells, axis=-1)
        lead = array.shape[:-1]
        grouped = array.reshape(*lead, -1, self.width).take(self.blocks, axis=-2)
        return grouped.reshape(*lead, self.cells.size)

    def put(self, array: np.ndarray, values: np.ndarray) -> None:
        """Write ``values`` (..., cells) into the columns of ``array``, in place."""
        if self.width == 1:
            array[..., self.cells] = values
            return
        lead = array.shape[:-1]
        grouped = array.reshape(*lead, -1, self.width)
        grouped[..., self.blocks, :] = values.reshape(*lead, -1, self.width)


class CellSocFilter:
    """The filter for one configuration and pack size."""

    def __init__(self, config: SocConfig, cells: int) -> None:
        self.config = config
        self.cells = cells
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
        _frozen(self._jacobian)

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
        return FilterState.of(
            x=x,
            cov_packed=cov,
            measured_at=_frozen(np.full(n, -np.inf)),
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
        s: FilterState,
        current: float,
        dt: float,
        capacity_ah: np.ndarray,
        r_factor: float,
        voltage: np.ndarray,
        fresh: np.ndarray,
        updated_at: np.ndarray,
        resistance_ohm: np.ndarray,
    ) -> FilterState:
        """`predict`, then `update` with the readings, on one copy of the arrays."""
        values = self._predicted(s, current, dt, capacity_ah, r_factor)
        measured_at = self._correct(
            s, values, voltage, fresh, updated_at, current, resistance_ohm, r_factor
        )
        return self._with(s, values, measured_at, capacity_ah, current)

    def predict(
        self, s: FilterState, current: float, dt: float, capacity_ah: np.ndarray, r_factor: float
    ) -> FilterState:
        """Move every cell by ``current`` (A, + = charging) held for ``dt`` seconds;
        ``capacity_ah`` is each cell's capacity as ``[soh]`` knows it."""
        values = self._predicted(s, current, dt, capacity_ah, r_factor)
        return self._with(s, values, s.measured_at, capacity_ah, current)

    def update(
        self,
        s: FilterState,
        voltage: np.ndarray,
        fresh: np.ndarray,
        updated_at: np.ndarray,
        current: float,
        resistance_ohm: np.ndarray,
        r_factor: float,
    ) -> FilterState:
        """Correct the cells with a ``fresh`` reading; a cell's first reading initialises it.

        ``resistance_ohm`` is each cell's ohmic resistance as ``[soh]`` measured it at the
        present temperature (NaN: not measured, ``r0_mohm`` then), where the filter's own
        estimate starts."""
        values = s.values.copy()
        measured_at = self._correct(
            s, values, voltage, fresh, updated_at, current, resistance_ohm, r_factor
        )
        return self._with(s, values, measured_at, s.capacity_in, s.last_current)

    def lost_current(self, s: FilterState, dt: float) -> FilterState:
        """No valid current for ``dt``: the charge moved is unknown, up to the last current."""
        if dt <= 0.0:
            return s
        unknown = abs(s.last_current) * dt * self._per_a * s.x[CAP]
        values = s.values.copy()
        values[self._states] += unknown**2  # (SOC, SOC)
        return self._with(s, values, s.measured_at, s.capacity_in, s.last_current)

    # -- the work ------------------------------------------------------------------------

    def _predicted(
        self, s: FilterState, current: float, dt: float, capacity_ah: np.ndarray, r_factor: float
    ) -> np.ndarray:
        """New (writable) stacked state and covariance after ``dt`` at ``current``."""
        values = s.values
        renewed = s.capacity_in is None or (
            capacity_ah is not s.capacity_in and not np.array_equal(capacity_ah, s.capacity_in)
        )
        if renewed:
            values = self._new_capacity(s, capacity_ah)
        if dt <= 0.0:
            return values if renewed else values.copy()
        cfg = self.config
        k = self._states
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
        # F P F^T with F = D + m e_SOC e_q^T, D the diagonal (1, a, 1, 1[, b]): D x and D P D
        # as one scaling of the rows, then m times the q row (of D P D) added to the SOC row,
        # and to (SOC, SOC) again m P_q,SOC + m^2 P_qq
        scale = np.concatenate((np.ones(k), a**self._v1_in_entry))
        scale[V1] = a
        toward = 1.0
        if k > HYS:
            noise.append(HYSTERESIS_DRIFT**2 * dt / 3600.0)
            if abs(current) > cfg.current_accuracy_a:
                toward = math.exp(-self._rate * abs(m) / 100.0)  # at the nominal capacity
                scale[HYS] = toward
                scale[k:] *= toward**self._hys_in_entry
        new = np.multiply(values, scale[:, None], out=np.empty_like(values))
        x, cov = new[:k], new[k:]
        x[V1] += r1 * (1.0 - a) * current
        if toward != 1.0:
            x[HYS] += math.copysign(1.0, current) * (1.0 - toward)
        if m:
            x[SOC] += m * x[CAP]
            q_row = cov[self._layout.full[CAP]]
            cov[:k] += m * q_row
            cov[0] += m * (q_row[SOC] + m * q_row[CAP])
        for entry, variance in zip(self._diagonal, noise, strict=True):
            cov[entry] += variance
        return new

    def _new_capacity(self, s: FilterState, capacity_ah: np.ndarray) -> np.ndarray:
        """q taken from the cells whose capacity changed (all of them the first time)."""
        changed = (
            np.ones(self.cells, bool) if s.capacity_in is None else capacity_ah != s.capacity_in
        )
        std = CAPACITY_ERROR if s.capacity_in is None else CAPACITY_MEASURED
        values = s.values.copy()
        x, cov = values[: self._states], values[self._states :]
        cells = changed.nonzero()[0]
        q = s.nominal_ah / capacity_ah[cells]
        x[CAP, cells] = q
        cov[self._layout.full[CAP][:, None], cells] = 0.0
        cov[self._layout.diagonal[CAP], cells] = (std * q) ** 2
        return values

    def _correct(
        self,
        s: FilterState,
        values: np.ndarray,
        voltage: np.ndarray,
        fresh: np.ndarray,
        updated_at: np.ndarray,
        current: float,
        resistance_ohm: np.ndarray,
        r_factor: float,
    ) -> np.ndarray:
        """Correct the stacked ``values`` in place where a reading is fresh; the new
        ``measured_at``. The work is done on the fresh cells only: readings arrive spread
        over the cycles."""
        usable = np.isfinite(voltage)
        usable &= fresh
        idx = usable.nonzero()[0]
        if idx.size == 0:
            return s.measured_at
        every = idx.size == self.cells  # then views of the whole arrays: no gathering
        columns = None if every else Columns.of(idx, self.cells)
        gathered = values if columns is None else columns.take(values)
        xs, ps = gathered[: self._states], gathered[self._states :]
        v = voltage if columns is None else columns.take(voltage)
        first = np.isinf(s.measured_at if columns is None else columns.take(s.measured_at))
        if first.any():
            resistance = resistance_ohm if columns is None else columns.take(resistance_ohm)
            self._first_reading(s, xs, ps, first, v, current, resistance, r_factor)
        layout, jacobian = self._layout, self._jacobian[:, : idx.size].copy()
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
        change = gain[layout.rows]
        change *= ph[layout.cols]
        ps -= change
        if self._states > HYS:
            np.minimum(np.maximum(xs[HYS], -1.0, out=xs[HYS]), 1.0, out=xs[HYS])
        if columns is None:
            return _frozen(updated_at.copy())
        columns.put(values, gathered)
        measured_at = s.measured_at.copy()
        columns.put(measured_at, columns.take(updated_at))
        return _frozen(measured_at)

    def _first_reading(
        self,
        s: FilterState,
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
        s: FilterState,
        values: np.ndarray,
        measured_at: np.ndarray,
        capacity_in: np.ndarray | None,
        current: float,
    ) -> FilterState:
        return FilterState(
            _frozen(values), measured_at, capacity_in, s.nominal_ah, s.start_std, current
        )


def _frozen(array: np.ndarray) -> np.ndarray:
    """``array`` made read-only: states share arrays, so nothing may write into them."""
    array.flags.writeable = False
    return array
