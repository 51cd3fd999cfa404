"""Per-cell SOC: one extended Kalman filter per cell, all cells as arrays.

Model of a cell (first-order equivalent circuit, current + = charging, SOC in %):

    SOC'  = SOC + 100 x I dt / (3600 x capacity)
    V1'   = a V1 + R1 (1 - a) I,            a = exp(-dt / tau)
    V     = OCV(SOC) + hysteresis(SOC) h + R0 I + V1

The state is (SOC, V1) with a 2x2 covariance per cell, held as three arrays (``p_ss``,
``p_sv``, ``p_vv``). The hysteresis state h (-1 discharge branch .. +1 charge branch) follows
the measured current with the cell type's rate and is not estimated: what is not known of it
(``h_std``, 1 after a restart, shrinking as charge flows one way) enters the measurement
noise, together with the voltage accuracy and the resistance error times the current.

Process noise comes from the current sensor: an offset of ``current_accuracy_a`` is a bias,
not white noise, so its variance is spread as a random walk that reaches the drift of one
hour after one hour (``BIAS_HORIZON_S``); the capacity error adds the same way in proportion
to the current. A cell never measured has no estimate (NaN): its first reading sets SOC from
the OCV table after the resistive drop (V1 taken as settled at the present current), with the
covariance the caller starts from (``initial_uncertainty_percent`` when nothing is known);
a stored SOC keeps its value and uncertainty. Either way V1 is not known at the first
reading: it is taken as settled at the present current, give or take half of that.

Every operation is one NumPy expression: prediction over all cells, correction over the cells
with a fresh reading; a reading is used once (``measured_at`` keeps the arrival time of the
last one used).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from controller.limits.config import SocConfig

BIAS_HORIZON_S = 3600.0  # a current offset's drift is modelled right over this horizon
T_REF_K = 298.15
KELVIN = 273.15
CAPACITY_ERROR = 0.05  # relative capacity error assumed for the process noise


@dataclass(frozen=True, eq=False)
class FilterState:
    """Per-cell estimate and covariance; arrays are replaced, never changed."""

    soc: np.ndarray  # %, not clipped; NaN: never measured
    v_rc: np.ndarray  # V
    p_ss: np.ndarray  # %^2
    p_sv: np.ndarray  # % V
    p_vv: np.ndarray  # V^2
    h: np.ndarray  # hysteresis state -1 .. +1
    h_std: np.ndarray  # its standard deviation
    measured_at: np.ndarray  # s, arrival time of the last reading used; -inf: none
    start_std: float  # % standard deviation a cell's first reading starts from
    last_current: float = 0.0  # A, the last valid current

    @property
    def std(self) -> np.ndarray:
        """SOC standard deviation per cell (%); inf where never measured."""
        return np.where(np.isnan(self.soc), np.inf, np.sqrt(np.maximum(self.p_ss, 0.0)))


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
        self._rate = float(config.hysteresis_rate)
        self._r1 = config.r1_mohm / 1000.0
        self._r0 = config.r0_mohm / 1000.0
        self._sigma_v2 = (config.voltage_accuracy_mv / 1000.0) ** 2
        self._sigma_r = config.resistance_accuracy_percent / 100.0

    def initial_state(self, soc: np.ndarray | None = None, std: float | None = None) -> FilterState:
        """Nothing known (``soc`` None), or a per-cell SOC a previous run stored, trusted to
        ``std`` (% standard deviation); non-finite stored values count as unknown."""
        cfg = self.config
        n = self.cells
        start = cfg.initial_uncertainty_percent
        values = np.full(n, np.nan)
        if soc is not None and np.size(soc) == n:
            values = np.where(np.isfinite(soc), np.asarray(soc, np.float64), np.nan)
        known = ~np.isnan(values)
        restored_std = cfg.restored_uncertainty_percent if std is None else std
        return FilterState(
            soc=_frozen(values),
            v_rc=_frozen(np.zeros(n)),
            p_ss=_frozen(np.where(known, restored_std**2, start**2)),
            p_sv=_frozen(np.zeros(n)),
            p_vv=_frozen(np.full(n, self._sigma_v2)),  # set again at the first reading
            h=_frozen(np.zeros(n)),
            h_std=_frozen(np.ones(n)),
            measured_at=_frozen(np.full(n, -np.inf)),
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
        """Move every cell by ``current`` (A, + = charging) held for ``dt`` seconds."""
        if dt <= 0.0:
            return replace(s, last_current=current)
        cfg = self.config
        per_a = 100.0 * dt / (3600.0 * capacity_ah)  # % per A over this step
        a = math.exp(-dt / cfg.tau_s)
        r1 = self._r1 * r_factor
        moved = current * per_a
        drift = (100.0 / (3600.0 * capacity_ah)) ** 2 * (
            cfg.current_accuracy_a**2 + (CAPACITY_ERROR * current) ** 2
        )
        toward = np.exp(-self._rate * np.abs(moved) / 100.0)
        return replace(
            s,
            soc=_frozen(s.soc + moved),
            v_rc=_frozen(a * s.v_rc + r1 * (1.0 - a) * current),
            p_ss=_frozen(s.p_ss + drift * BIAS_HORIZON_S * dt),
            p_sv=_frozen(a * s.p_sv),
            p_vv=_frozen(a * a * s.p_vv + self._sigma_v2 * (1.0 - a * a)),
            h=_frozen(s.h * toward + math.copysign(1.0, current) * (1.0 - toward))
            if current != 0.0
            else s.h,
            h_std=_frozen(s.h_std * toward),
            last_current=current,
        )

    def lost_current(self, s: FilterState, dt: float, capacity_ah: np.ndarray) -> FilterState:
        """No valid current for ``dt``: the charge moved is unknown, up to the last current."""
        if dt <= 0.0:
            return s
        unknown = 100.0 * abs(s.last_current) * dt / (3600.0 * capacity_ah)
        return replace(s, p_ss=_frozen(s.p_ss + unknown**2))

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

        ``r0`` is each cell's ohmic resistance at 25 degC (measured or assumed). The work is
        done on the fresh cells only: readings arrive spread over the cycles."""
        idx = np.flatnonzero(fresh & np.isfinite(voltage))
        if idx.size == 0:
            return s
        v = voltage[idx]
        ir0 = current * r_factor * r0[idx]
        soc, v_rc = s.soc[idx], s.v_rc[idx]
        p_ss, p_sv, p_vv = s.p_ss[idx], s.p_sv[idx], s.p_vv[idx]
        h, h_std = s.h[idx], s.h_std[idx]
        first = np.isinf(s.measured_at[idx])
        if first.any():  # V1 taken as settled at the present current, to within half of it
            settled = current * self._r1 * r_factor
            unknown = np.isnan(soc)
            soc = np.where(unknown, self.soc_from_ocv(v - ir0 - settled), soc)
            p_ss = np.where(unknown, s.start_std**2, p_ss)
            v_rc = np.where(first, settled, v_rc)
            p_sv = np.where(first, 0.0, p_sv)
            p_vv = np.where(first, settled**2 / 4.0 + self._sigma_v2, p_vv)
        at = np.clip(soc, self._x[0], self._x[-1])
        segment = np.minimum(np.searchsorted(self._x, at, side="right") - 1, self._slope.size - 1)
        slope = self._slope[segment]
        ocv = self._y[segment] + slope * (soc - self._x[segment])  # the end slopes outside
        noise = self._sigma_v2 + (self._sigma_r * ir0) ** 2
        if self._hy.any():
            half_gap = np.interp(at, self._hx, self._hy)
            ocv = ocv + h * half_gap
            noise = noise + (half_gap * h_std) ** 2
        innovation = v - (ocv + ir0 + v_rc)
        ph_s = slope * p_ss + p_sv  # P H^T, SOC row
        ph_v = slope * p_sv + p_vv  # P H^T, V1 row
        total = slope * ph_s + ph_v + noise
        gain_s, gain_v = ph_s / total, ph_v / total
        return replace(
            s,
            soc=_put(s.soc, idx, soc + gain_s * innovation),
            v_rc=_put(s.v_rc, idx, v_rc + gain_v * innovation),
            p_ss=_put(s.p_ss, idx, p_ss - gain_s * ph_s),
            p_sv=_put(s.p_sv, idx, p_sv - gain_s * ph_v),
            p_vv=_put(s.p_vv, idx, p_vv - gain_v * ph_v),
            measured_at=_put(s.measured_at, idx, updated_at[idx]),
        )


def _put(array: np.ndarray, idx: np.ndarray, values: np.ndarray) -> np.ndarray:
    """A read-only copy of ``array`` with ``values`` at ``idx``."""
    out = array.copy()
    out[idx] = values
    return _frozen(out)


def _frozen(array: np.ndarray) -> np.ndarray:
    """``array`` made read-only: states share arrays, so nothing may write into them."""
    array.flags.writeable = False
    return array
