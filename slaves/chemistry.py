"""Cell chemistries: open-circuit voltage curves and equivalent-circuit parameters.

The curves are typical public shapes of large-format cells (NMC pouch, LFP prismatic, LTO
prismatic), sampled at a few SOC points, and come from ``dbc/chemistry.toml``, the table the
controller's SOC presets read too; they are strictly increasing so a SOC can always be
recovered from a voltage. LFP has a charge/discharge hysteresis: a rested cell sits above the
equilibrium curve after charging and below it after discharging (``hysteresis``).
Beyond 0 % and 100 % the curve is extended with its end slope
times ``overrun_slope_factor`` so an over-charged or over-discharged cell shows it in its
voltage instead of sitting at the table end. A chemistry does not age unless its ``ageing``
says so: ``replace(NMC, ageing=TYPICAL_AGEING["NMC"])`` gives typical rates.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from dbc.chemistry import OcvTable, ocv_table
from slaves.ageing import Ageing

T_REF_K = 298.15  # 25 degC, where the resistances below are given
KELVIN = 273.15


@dataclass(frozen=True)
class Chemistry:
    """One cell type; resistances and capacitance at 25 degC."""

    name: str
    soc_points: tuple[float, ...]
    ocv_points: tuple[float, ...]
    capacity_ah: float
    r0_ohm: float
    r1_ohm: float
    c1_farad: float
    activation_k: float  # Arrhenius E_a / R: resistance grows by exp(E_a/R (1/T - 1/T_ref))
    heat_capacity_j_per_k: float  # per cell
    self_discharge_per_month: float  # fraction of capacity lost per 30 days at rest
    v_min: float
    v_max: float
    overrun_slope_factor: float = 5.0
    hysteresis_points: tuple[float, ...] = ()  # V, half the branch gap; () = none
    hysteresis_rate: float = 50.0  # dh = rate x |dQ| / capacity x (sign(I) - h)
    ageing: Ageing = field(default_factory=Ageing)  # capacity fade and resistance growth
    _soc: np.ndarray = field(init=False, repr=False, compare=False)
    _ocv: np.ndarray = field(init=False, repr=False, compare=False)
    _hysteresis: np.ndarray = field(init=False, repr=False, compare=False)
    has_hysteresis: bool = field(init=False, repr=False, compare=False)
    ages: bool = field(init=False, repr=False, compare=False)  # any ageing rate above zero

    def __post_init__(self) -> None:
        soc = np.asarray(self.soc_points, np.float64)
        ocv = np.asarray(self.ocv_points, np.float64)
        if soc.shape != ocv.shape or soc.size < 2:
            raise ValueError(f"{self.name}: SOC and OCV tables must have the same length >= 2")
        if soc[0] != 0.0 or soc[-1] != 1.0:
            raise ValueError(f"{self.name}: SOC table must span 0..1")
        if np.any(np.diff(soc) <= 0) or np.any(np.diff(ocv) <= 0):
            raise ValueError(f"{self.name}: SOC and OCV tables must be strictly increasing")
        hysteresis = np.asarray(self.hysteresis_points or np.zeros(soc.size), np.float64)
        if hysteresis.shape != soc.shape or np.any(hysteresis < 0.0):
            raise ValueError(f"{self.name}: hysteresis table must match the SOC table, >= 0")
        object.__setattr__(self, "_soc", soc)
        object.__setattr__(self, "_ocv", ocv)
        object.__setattr__(self, "_hysteresis", hysteresis)
        object.__setattr__(self, "has_hysteresis", bool(hysteresis.any()))
        object.__setattr__(self, "ages", self.ageing != Ageing())

    @property
    def capacity_c(self) -> float:
        """Nominal capacity in coulombs."""
        return self.capacity_ah * 3600.0

    @property
    def tau_s(self) -> float:
        """Time constant of the RC pair at 25 degC."""
        return self.r1_ohm * self.c1_farad

    def ocv(self, soc: np.ndarray | float) -> np.ndarray:
        """Open-circuit voltage; linear with a steepened end slope outside 0..1."""
        s = np.asarray(soc, np.float64)
        v = np.interp(s, self._soc, self._ocv)
        if s.size and s.min() >= 0.0 and s.max() <= 1.0:
            return np.asarray(v)  # inside the table: no overrun to extend
        k = self.overrun_slope_factor
        low_slope = (self._ocv[1] - self._ocv[0]) / (self._soc[1] - self._soc[0])
        high_slope = (self._ocv[-1] - self._ocv[-2]) / (self._soc[-1] - self._soc[-2])
        v = np.where(s < 0.0, self._ocv[0] + k * low_slope * s, v)
        return np.where(s > 1.0, self._ocv[-1] + k * high_slope * (s - 1.0), v)

    def hysteresis(self, soc: np.ndarray | float) -> np.ndarray:
        """Half the gap between the charge and the discharge OCV branch (V) at ``soc``."""
        return np.interp(np.asarray(soc, np.float64), self._soc, self._hysteresis)

    def soc_from_ocv(self, volts: np.ndarray | float) -> np.ndarray:
        """Inverse of the table inside 0..1 (clipped at the ends)."""
        return np.interp(np.asarray(volts, np.float64), self._ocv, self._soc)

    def resistance_factor(self, temp_c: np.ndarray | float) -> np.ndarray:
        """Multiplier on R0 and R1 at ``temp_c`` relative to 25 degC."""
        t_k = np.asarray(temp_c, np.float64) + KELVIN
        return np.exp(self.activation_k * (1.0 / t_k - 1.0 / T_REF_K))


def _curve(table: OcvTable) -> dict[str, tuple[float, ...] | float]:
    """The shared OCV table as this model's fields (SOC as a fraction)."""
    return {
        "soc_points": tuple(s / 100.0 for s in table.soc),
        "ocv_points": table.ocv_v,
        "hysteresis_points": table.hysteresis_v,
        "hysteresis_rate": table.hysteresis_rate,
    }


NMC = Chemistry(
    name="NMC",
    **_curve(ocv_table("nmc")),
    capacity_ah=50.0,
    r0_ohm=1.2e-3,
    r1_ohm=0.8e-3,
    c1_farad=37_500.0,  # tau 30 s
    activation_k=3500.0,
    heat_capacity_j_per_k=900.0,
    self_discharge_per_month=0.02,
    v_min=2.8,
    v_max=4.2,
)

LFP = Chemistry(
    name="LFP",
    **_curve(ocv_table("lfp")),
    capacity_ah=100.0,
    r0_ohm=0.5e-3,
    r1_ohm=0.3e-3,
    c1_farad=200_000.0,  # tau 60 s
    activation_k=3000.0,
    heat_capacity_j_per_k=2000.0,
    self_discharge_per_month=0.02,
    v_min=2.5,
    v_max=3.65,
)

LTO = Chemistry(
    name="LTO",
    **_curve(ocv_table("lto")),
    capacity_ah=20.0,
    r0_ohm=0.8e-3,
    r1_ohm=0.4e-3,
    c1_farad=50_000.0,  # tau 20 s
    activation_k=2500.0,
    heat_capacity_j_per_k=550.0,
    self_discharge_per_month=0.01,
    v_min=1.5,
    v_max=2.8,
)

CHEMISTRIES: dict[str, Chemistry] = {c.name: c for c in (NMC, LFP, LTO)}


def get(name: str) -> Chemistry:
    """The chemistry registered under ``name`` (case-insensitive)."""
    try:
        return CHEMISTRIES[name.upper()]
    except KeyError:
        raise ValueError(
            f"unknown chemistry {name!r} (known: {', '.join(sorted(CHEMISTRIES))})"
        ) from None
