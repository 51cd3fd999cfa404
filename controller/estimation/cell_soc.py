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
covariance is a (states x states) matrix per cell. Held as arrays: ``x`` is
(states, cells) and ``cov`` (states, states, cells), so every step is a few NumPy
expressions over all cells, whatever their number.

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
uncertainty. R0 starts from the caller's value (measured or assumed) with
``resistance_accuracy_percent``; q from the first capacity the caller passes, give or take
``CAPACITY_ERROR``; a later change of that capacity (``[soh]`` measured the cell) replaces q
with ``CAPACITY_MEASURED`` as its uncertainty.

Prediction runs over all cells, correction over the cells with a fresh reading; a reading is
used once (``measured_at`` keeps the arrival time of the last one used).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

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
class FilterState:
    """Per-cell estimate and covariance; arrays are replaced, never changed."""

    x: np.ndarray  # (states, cells): SOC %, V1 V, q, R0 at 25 degC Ohm[, h]
    cov: np.ndarray  # (states, states, cells)
    measured_at: np.ndarray  # s, arrival time of the last reading used; -inf: none
    capacity_in: np.ndarray | None  # Ah, the capacity q was last taken from; None: none yet
    nominal_ah: float  # C_nom
    start_std: float  # % standard deviation a cell's first reading starts from
    last_current: float = 0.0  # A, the last valid current

    @property
    def soc(self) -> np.ndarray:
        """SOC per cell (%), not clipped; NaN: never measured."""
        return self.x[SOC]

    @property
    def v_rc(self) -> np.ndarray:
        return self.x[V1]

    @property
    def capacity_ah(self) -> np.ndarray:
        """The capacity per cell the filter works with (Ah)."""
        return self.nominal_ah / self.x[CAP]

    @property
    def resistance_ohm(self) -> np.ndarray:
        """The ohmic resistance per cell at 25 degC the filter works with (Ohm)."""
        return self.x[RES]

    @property
    def h(self) -> np.ndarray:
        """Hysteresis state per cell, -1 .. +1 (0 for a cell type without hysteresis)."""
        return self.x[HYS] if self.x.shape[0] > HYS else np.zeros(self.x.shape[1])

    @property
    def std(self) -> np.ndarray:
        """SOC standard deviation per cell (%); inf where never measured."""
        return np.where(np.isnan(self.soc), np.inf, np.sqrt(np.maximum(self.cov[SOC, SOC], 0.0)))


class CellSocFilter:
    """The filter for one configuration and pack size."""

    def __init__(self, config: SocConfig, cells: int) -> None:
        self.config = config
        self.cells = cells
        self._x = np.asarray(config.ocv.x, np.float64)
        self._y = np.asarray(config.ocv.y, np.float64)
        self._slope = np.diff(self._y) / np.diff(self._x)  # V per % per segment
        self._hx = np.asarray(config.hysteresis.x, np.float64)
        self._hy = np.asarray(config.hysteresis.y, np.float64)
        self._states = HYS + 1 if self._hy.any() else HYS
        self._rate = float(config.hysteresis_rate)
        self._r1 = config.r1_mohm / 1000.0
        self._r0 = config.r0_mohm / 1000.0
        self._sigma_v2 = (config.voltage_accuracy_mv / 1000.0) ** 2
        self._sigma_r = config.resistance_accuracy_percent / 100.0
        self._per_a = 100.0 / (3600.0 * config.capacity_ah)  # % per As at q = 1

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
        cov = np.zeros((k, k, n))
        cov[SOC, SOC] = np.where(known, restored_std**2, start**2)
        cov[V1, V1] = self._sigma_v2  # set again at the first reading
        cov[CAP, CAP] = CAPACITY_ERROR**2
        cov[RES, RES] = (self._sigma_r * self._r0) ** 2
        if k > HYS:
            cov[HYS, HYS] = 1.0
        return FilterState(
            x=_frozen(x),
            cov=_frozen(cov),
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

    # -- the two halves of a step --------------------------------------------------------

    def predict(
        self, s: FilterState, current: float, dt: float, capacity_ah: np.ndarray, r_factor: float
    ) -> FilterState:
        """Move every cell by ``current`` (A, + = charging) held for ``dt`` seconds;
        ``capacity_ah`` is each cell's capacity as ``[soh]`` knows it."""
        x, cov = s.x, s.cov
        if s.capacity_in is None or (
            capacity_ah is not s.capacity_in and not np.array_equal(capacity_ah, s.capacity_in)
        ):
            x, cov = self._new_capacity(s, capacity_ah)
        if dt <= 0.0:
            return replace(s, x=x, cov=cov, capacity_in=capacity_ah, last_current=current)
        cfg = self.config
        m = current * dt * self._per_a  # % moved at q = 1
        a = math.exp(-dt / (cfg.tau_s * r_factor))  # tau = R1 C1, and R1 follows f(T)
        r1 = self._r1 * r_factor
        x, cov = x.copy(), cov.copy()
        q = x[CAP]
        x[SOC] += m * q
        x[V1] = a * x[V1] + r1 * (1.0 - a) * current
        hysteresis = self._states > HYS and abs(current) > cfg.current_accuracy_a
        # F P F^T entry by entry: F is the identity but for dSOC/dq = m, dV1/dV1 = a and
        # dh/dh = b, so only the entries of these rows change
        if m:
            soc_q = cov[SOC, CAP] + m * cov[CAP, CAP]
            cov[SOC, SOC] += m * (cov[SOC, CAP] + soc_q)
            for j in range(V1, self._states):
                if j != CAP:
                    cov[SOC, j] += m * cov[CAP, j]
            cov[SOC, CAP] = soc_q
        cov[V1, V1:] *= a
        cov[SOC : V1 + 1, V1] *= a  # with the entry just scaled: a squared on the diagonal
        if hysteresis:
            toward = math.exp(-self._rate * abs(m) / 100.0)  # at the nominal capacity
            x[HYS] = x[HYS] * toward + math.copysign(1.0, current) * (1.0 - toward)
            cov[:, HYS] *= toward
            cov[HYS, HYS] *= toward
        for j in range(1, self._states):  # the lower triangle mirrors the upper
            cov[j, :j] = cov[:j, j]
        # process noise, for the nominal cell: it need not be exact per cell
        offset = self._per_a * cfg.current_accuracy_a
        cov[SOC, SOC] += offset * offset * BIAS_HORIZON_S * dt
        cov[V1, V1] += (1.0 - a * a) * (self._sigma_v2 + (self._sigma_r * r1 * current) ** 2)
        cov[CAP, CAP] += CAPACITY_DRIFT**2 * dt / 3600.0
        cov[RES, RES] += (self._sigma_r * self._r0) ** 2 * dt / BIAS_HORIZON_S
        if self._states > HYS:
            cov[HYS, HYS] += HYSTERESIS_DRIFT**2 * dt / 3600.0
        return replace(
            s, x=_frozen(x), cov=_frozen(cov), capacity_in=capacity_ah, last_current=current
        )

    def _new_capacity(
        self, s: FilterState, capacity_ah: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """q taken from the cells whose capacity changed (all of them the first time)."""
        changed = (
            np.ones(self.cells, bool) if s.capacity_in is None else capacity_ah != s.capacity_in
        )
        std = CAPACITY_ERROR if s.capacity_in is None else CAPACITY_MEASURED
        x, cov = s.x.copy(), s.cov.copy()
        q = s.nominal_ah / capacity_ah[changed]
        x[CAP, changed] = q
        cov[CAP, :, changed] = 0.0
        cov[:, CAP, changed] = 0.0
        cov[CAP, CAP, changed] = (std * q) ** 2
        return _frozen(x), _frozen(cov)

    def lost_current(self, s: FilterState, dt: float) -> FilterState:
        """No valid current for ``dt``: the charge moved is unknown, up to the last current."""
        if dt <= 0.0:
            return s
        unknown = abs(s.last_current) * dt * self._per_a * s.x[CAP]
        cov = s.cov.copy()
        cov[SOC, SOC] += unknown**2
        return replace(s, cov=_frozen(cov))

    def update(
        self,
        s: FilterState,
        voltage: np.ndarray,
        fresh: np.ndarray,
        updated_at: np.ndarray,
        current: float,
        r0: np.ndarray,
        r_factor: float,
    ) -> FilterState:
        """Correct the cells with a ``fresh`` reading; a cell's first reading initialises it.

        ``r0`` is each cell's ohmic resistance at 25 degC (measured or assumed), where the
        filter's own estimate starts. The work is done on the fresh cells only: readings
        arrive spread over the cycles."""
        idx = np.flatnonzero(fresh & np.isfinite(voltage))
        if idx.size == 0:
            return s
        every = idx.size == self.cells  # then whole copies: cheaper than gathering
        cells = slice(None) if every else idx
        v = voltage[cells]
        x, cov = s.x[:, cells].copy(), s.cov[:, :, cells].copy()
        first = np.isinf(s.measured_at[cells])
        if first.any():  # V1 taken as settled at the present current, to within half of it
            settled = current * self._r1 * r_factor
            x[RES] = np.where(first, r0[cells], x[RES])
            unknown = np.isnan(x[SOC])
            soc0 = self.soc_from_ocv(v - current * r_factor * x[RES] - settled)
            x[SOC] = np.where(unknown, soc0, x[SOC])
            x[V1] = np.where(first, settled, x[V1])
            cov[:, :, first] = _diagonal(cov[:, :, first])
            cov[SOC, SOC] = np.where(unknown, s.start_std**2, cov[SOC, SOC])
            cov[V1, V1] = np.where(first, settled**2 / 4.0 + self._sigma_v2, cov[V1, V1])
            cov[RES, RES] = np.where(first, (self._sigma_r * x[RES]) ** 2, cov[RES, RES])
        soc = x[SOC]
        at = np.clip(soc, self._x[0], self._x[-1])
        segment = np.minimum(np.searchsorted(self._x, at, side="right") - 1, self._slope.size - 1)
        ocv = self._y[segment] + self._slope[segment] * (soc - self._x[segment])
        spread = np.clip(np.sqrt(np.maximum(cov[SOC, SOC], 0.0)), 0.1, LINEARISED_OVER)
        slope = (self.ocv(soc + spread) - self.ocv(soc - spread)) / (2.0 * spread)
        jacobian = {SOC: slope, V1: 1.0, RES: current * r_factor}  # dV/dstate; 0 for q
        if self._states > HYS:
            half_gap = np.interp(at, self._hx, self._hy)
            ocv = ocv + x[HYS] * half_gap
            jacobian[HYS] = half_gap
        innovation = v - (ocv + current * r_factor * x[RES] + x[V1])
        # loops over the few states, each step a vector over the cells: broadcasting the
        # (states, states, cells) products costs several times more
        states = range(self._states)
        ph = [sum(cov[i, j] * h for j, h in jacobian.items()) for i in states]  # P H^T
        total = sum(ph[j] * h for j, h in jacobian.items()) + self._sigma_v2
        gain = [p / total for p in ph]
        for i in states:
            x[i] += gain[i] * innovation
            for j in range(i, self._states):
                cov[i, j] -= gain[i] * ph[j]
                cov[j, i] = cov[i, j]
        if self._states > HYS:
            x[HYS] = np.clip(x[HYS], -1.0, 1.0)
        if every:
            return replace(
                s, x=_frozen(x), cov=_frozen(cov), measured_at=_frozen(updated_at.copy())
            )
        return replace(
            s,
            x=_put(s.x, (slice(None), idx), x),
            cov=_put(s.cov, (slice(None), slice(None), idx), cov),
            measured_at=_put(s.measured_at, idx, updated_at[idx]),
        )


def _diagonal(cov: np.ndarray) -> np.ndarray:
    """Only the variances of a (states, states, cells) covariance."""
    k = cov.shape[0]
    return cov * np.eye(k)[:, :, None]


def _put(array: np.ndarray, idx: object, values: np.ndarray) -> np.ndarray:
    """A read-only copy of ``array`` with ``values`` at ``idx``."""
    out = array.copy()
    out[idx] = values
    return _frozen(out)


def _frozen(array: np.ndarray) -> np.ndarray:
    """``array`` made read-only: states share arrays, so nothing may write into them."""
    array.flags.writeable = False
    return array
