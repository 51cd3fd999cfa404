"""Equivalent-circuit model of every cell of the pack at once: OCV(SOC) + R0 + one RC pair,
plus the OCV hysteresis of chemistries that have one (LFP).

The hysteresis state h of a cell runs from -1 (it was last discharged: it rests on the lower
OCV branch) to +1 (charged: the upper branch) and moves with the charge through it,
``dh = rate x |dQ| / capacity x (sign(I) - h)``; the rest voltage is the equilibrium OCV plus
h times the chemistry's half gap.

State is kept in coulombs, never clipped: a cell pushed past 100 % keeps the extra charge
(and shows it in its voltage), so the charge books always balance:

    charge_c - initial_charge_c == throughput_c - self_discharged_c

Cells age as they are cycled and as time passes (`slaves.ageing`): capacity fades and
resistance grows, each cell at its own rate. Ageing in a step leaves the charge a cell holds
alone, so the books above still balance (its SOC, charge over the faded capacity, creeps up
instead); `CellArray.age` jumps ahead to an aged pack at the same SOC.

Within a step the inputs are held, so the state at any instant of the step has a closed form:
`CellArray.voltage_at` gives the terminal voltages there (the slave modules sample the cells at
their own send instants, not at the step's end).

Current is positive into the cell (charging). Time is passed in; nothing here reads a clock.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from slaves.ageing import SECONDS_PER_YEAR
from slaves.chemistry import Chemistry

SECONDS_PER_MONTH = 30 * 86_400.0


@dataclass(frozen=True)
class CellSpread:
    """Manufacturing spread, as relative standard deviations drawn once from the seed."""

    capacity: float = 0.01
    resistance: float = 0.05
    self_discharge: float = 0.3
    initial_soc: float = 0.0  # absolute SOC standard deviation
    ageing: float = 0.2  # of each cell's ageing rates

    def __post_init__(self) -> None:
        for name in ("capacity", "resistance", "self_discharge", "initial_soc", "ageing"):
            value = getattr(self, name)
            if not 0.0 <= value < 0.5:
                raise ValueError(f"spread.{name}: {value} must be in [0, 0.5)")


# Rows of the last step's record (`CellArray.voltage_at`): its start state and the inputs
# held over it, per cell, stacked so that sampling gathers them in one go.
SPAN_ROWS = (
    "v_rc",  # V at the start
    "rc_rest",  # V the RC pair settles at: I x R1
    "inv_tau",  # 1/s of the RC pair
    "charge_c",  # C at the start
    "net_a",  # A into the charge: current less self-discharge
    "inv_capacity",  # 1/C
    "ir0",  # V across R0
    "hysteresis",  # at the start
    "target",  # the hysteresis branch the current drives toward: sign(I)
    "hysteresis_rate",  # 1/s toward the branch
)


class CellArray:
    """All cells of the pack as NumPy arrays; ``step`` advances them by ``dt`` seconds."""

    def __init__(
        self,
        chemistry: Chemistry,
        n_cells: int,
        rng: np.random.Generator,
        initial_soc: float | np.ndarray = 0.5,
        spread: CellSpread | None = None,
        initial_hysteresis: float = 0.0,
    ) -> None:
        if n_cells < 1:
            raise ValueError(f"n_cells: {n_cells} must be at least 1")
        spread = spread or CellSpread()
        self.chemistry = chemistry
        self.n = n_cells

        def factor(sigma: float, floor: float) -> np.ndarray:
            return np.maximum(1.0 + sigma * rng.standard_normal(n_cells), floor)

        self.capacity_c = chemistry.capacity_c * factor(spread.capacity, 0.5)
        self.r0_25 = chemistry.r0_ohm * factor(spread.resistance, 0.2)
        self.r1_25 = chemistry.r1_ohm * factor(spread.resistance, 0.2)
        self.c1 = np.full(n_cells, chemistry.c1_farad)
        leak_per_s = chemistry.self_discharge_per_month / SECONDS_PER_MONTH
        self.self_discharge_a = self.capacity_c * leak_per_s * factor(spread.self_discharge, 0.0)

        soc0 = np.broadcast_to(np.asarray(initial_soc, np.float64), (n_cells,))
        soc0 = soc0 + spread.initial_soc * rng.standard_normal(n_cells)
        self.initial_charge_c = soc0 * self.capacity_c
        self.charge_c = self.initial_charge_c.copy()
        self.throughput_c = np.zeros(n_cells)
        self.self_discharged_c = np.zeros(n_cells)
        self.v_rc = np.zeros(n_cells)
        self.hysteresis = np.full(n_cells, float(np.clip(initial_hysteresis, -1.0, 1.0)))
        self.current = np.zeros(n_cells)
        self.temperature = np.full(n_cells, 25.0)
        self._factor = chemistry.resistance_factor(self.temperature)
        self._source: tuple[float, float] | None = None  # cached until the state changes
        self.heat_w = np.zeros(n_cells)
        self.voltage = self.ocv  # terminal voltage with the last step's current flowing
        self._span = np.zeros((len(SPAN_ROWS), n_cells))  # at rest until the first step
        self._span[SPAN_ROWS.index("charge_c")] = self.charge_c
        self._span[SPAN_ROWS.index("inv_capacity")] = 1.0 / self.capacity_c
        self._span[SPAN_ROWS.index("hysteresis")] = self.hysteresis
        # drawn last, so a seed gives the same new cells as before cells aged
        self.ageing_rate = factor(spread.ageing, 0.0)
        self.new_capacity_c = self.capacity_c.copy()
        self.new_r0_25, self.new_r1_25 = self.r0_25.copy(), self.r1_25.copy()
        self.efc = np.zeros(n_cells)  # equivalent full cycles: throughput / 2 new capacities
        self.age_s = 0.0

    def age(self, efc: float = 0.0, years: float = 0.0) -> None:
        """Jump ahead by ``efc`` full cycles and ``years`` of time, at the same SOC."""
        soc = self.soc
        self.efc = self.efc + efc
        self.age_s += years * SECONDS_PER_YEAR
        self._apply_ageing()
        charge = soc * self.capacity_c
        self.initial_charge_c = self.initial_charge_c + (charge - self.charge_c)
        self.charge_c = charge
        self.voltage = self.ocv
        self._source = None

    def _apply_ageing(self) -> None:
        ageing, rate = self.chemistry.ageing, self.ageing_rate
        self.capacity_c = self.new_capacity_c * ageing.capacity_factor(self.efc, self.age_s, rate)
        grown = ageing.resistance_factor(self.efc, self.age_s, rate)
        self.r0_25 = self.new_r0_25 * grown
        self.r1_25 = self.new_r1_25 * grown

    @property
    def soc(self) -> np.ndarray:
        """State of charge, 1.0 = full; not clipped (see module docstring)."""
        return self.charge_c / self.capacity_c

    @property
    def ocv(self) -> np.ndarray:
        """Rest voltage: the equilibrium curve shifted onto the present hysteresis branch."""
        soc = self.soc
        if not self.chemistry.has_hysteresis:
            return self.chemistry.ocv(soc)
        return self.chemistry.ocv(soc) + self.hysteresis * self.chemistry.hysteresis(soc)

    @property
    def r0(self) -> np.ndarray:
        """Series resistance at the cells' temperature now."""
        return self.r0_25 * self._factor

    def source(self) -> tuple[float, float]:
        """The string as one source: the sum of rest and RC voltages, the sum of R0."""
        if self._source is None:
            self._source = (float((self.ocv + self.v_rc).sum()), float(self.r0.sum()))
        return self._source

    def step(self, dt: float, current: np.ndarray | float, temps: np.ndarray | float) -> None:
        """Advance by ``dt`` with ``current`` (A, + = charging) held constant over the step.

        The RC pair is updated with its exact solution for a constant current, so the
        result does not depend on the step size.
        """
        if dt <= 0.0:
            raise ValueError(f"dt: {dt} must be positive")
        i = self._per_cell(current)
        self.temperature = self._per_cell(temps).copy()
        k = self._factor = self.chemistry.resistance_factor(self.temperature)
        r0 = self.r0_25 * k
        r1 = self.r1_25 * k
        start_v_rc, start_charge = self.v_rc, self.charge_c
        inv_tau = 1.0 / (r1 * self.c1)
        rc_rest = i * r1
        self.v_rc = rc_rest + (self.v_rc - rc_rest) * np.exp(-dt * inv_tau)
        moved = i * dt
        leaked = self.self_discharge_a * dt
        self.charge_c = self.charge_c + moved - leaked
        self.throughput_c = self.throughput_c + moved
        self.self_discharged_c = self.self_discharged_c + leaked
        self.efc = self.efc + np.abs(moved) / (2.0 * self.new_capacity_c)
        self.age_s += dt
        hysteresis: list[np.ndarray] = []
        if self.chemistry.has_hysteresis:  # without a gap the branch state moves nothing
            rate = self.chemistry.hysteresis_rate * np.abs(i) / self.capacity_c
            target = np.sign(i)
            hysteresis = [self.hysteresis, target, rate]
            self.hysteresis = target + (self.hysteresis - target) * np.exp(-dt * rate)
        if self.chemistry.ages:
            self._apply_ageing()
        self.current = i.copy()
        ir0 = i * r0
        self.heat_w = i * ir0 + self.v_rc * self.v_rc / r1
        # terminal voltage with this step's current flowing, computed once per step
        ocv = self.ocv
        self.voltage = ocv + ir0 + self.v_rc
        self._source = (float((ocv + self.v_rc).sum()), float(r0.sum()))
        net_a = i - self.self_discharge_a
        rows = [start_v_rc, rc_rest, inv_tau, start_charge, net_a, 1.0 / self.capacity_c, ir0]
        self._span = np.array(rows + hysteresis)  # in the order of SPAN_ROWS

    def _per_cell(self, value: np.ndarray | float) -> np.ndarray:
        array = np.asarray(value, np.float64)
        return array if array.shape == (self.n,) else np.broadcast_to(array, (self.n,))

    def voltage_at(self, elapsed: np.ndarray, blocks: np.ndarray, width: int) -> np.ndarray:
        """``(samples, width)`` terminal voltages ``elapsed`` seconds (``(samples, 1)``) into
        the last step, from its exact solution, of the cells of ``blocks`` (``(samples,)``):
        block ``b`` is cells ``b * width`` up to ``(b + 1) * width`` (a module's cells).

        The current, the temperatures and the ageing are held as over the step, so at the
        step's end this is `voltage` (to rounding).
        """
        span = self._span.reshape(self._span.shape[0], -1, width)
        v_rc, rc_rest, inv_tau, charge, net_a, inv_capacity, ir0, *hysteresis = span.take(
            blocks, axis=1
        )
        v_rc = rc_rest + (v_rc - rc_rest) * np.exp(-elapsed * inv_tau)
        soc = (charge + net_a * elapsed) * inv_capacity
        rest = self.chemistry.ocv(soc)
        if self.chemistry.has_hysteresis:
            h, target, rate = hysteresis
            h = target + (h - target) * np.exp(-elapsed * rate)
            rest = rest + h * self.chemistry.hysteresis(soc)
        return rest + ir0 + v_rc
