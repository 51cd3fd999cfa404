"""Cell ageing: capacity fade and resistance growth with charge throughput and with time.

A cell loses capacity and gains resistance in proportion to its equivalent full cycles
(charge moved in either direction over twice its new capacity) and to the time it has
existed, each cell at its own rate: the chemistry's rates times a factor drawn once per
cell from the seed (`slaves.cells.CellSpread.ageing`). Linear in both, which is the shape a
pack shows over most of its life; accelerated rates are fine for tests.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SECONDS_PER_YEAR = 365.25 * 86_400.0
MIN_CAPACITY = 0.05  # a cell never fades below this fraction of its new capacity


@dataclass(frozen=True)
class Ageing:
    """Rates of one chemistry, as fractions of the new cell's value."""

    capacity_fade_per_efc: float = 0.0  # capacity lost per equivalent full cycle
    resistance_growth_per_efc: float = 0.0  # resistance gained per equivalent full cycle
    capacity_fade_per_year: float = 0.0  # capacity lost per year, cycled or not
    resistance_growth_per_year: float = 0.0

    def __post_init__(self) -> None:
        for name in (
            "capacity_fade_per_efc",
            "resistance_growth_per_efc",
            "capacity_fade_per_year",
            "resistance_growth_per_year",
        ):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"ageing.{name}: {getattr(self, name)} must be in [0, 1)")

    def capacity_factor(self, efc: np.ndarray, age_s: float, rate: np.ndarray) -> np.ndarray:
        """Capacity over the new cell's, per cell."""
        fade = (
            self.capacity_fade_per_efc * efc
            + self.capacity_fade_per_year * age_s / SECONDS_PER_YEAR
        )
        return np.maximum(1.0 - rate * fade, MIN_CAPACITY)

    def resistance_factor(self, efc: np.ndarray, age_s: float, rate: np.ndarray) -> np.ndarray:
        """Resistance over the new cell's, per cell."""
        growth = (
            self.resistance_growth_per_efc * efc
            + self.resistance_growth_per_year * age_s / SECONDS_PER_YEAR
        )
        return 1.0 + rate * growth


# Typical public figures: 20 % of the capacity lost after about 1,000 (NMC), 3,000 (LFP) or
# 10,000 (LTO) full cycles, and a few % per year on the shelf.
TYPICAL_AGEING = {
    "NMC": Ageing(2e-4, 5e-4, 0.02, 0.04),
    "LFP": Ageing(7e-5, 2e-4, 0.015, 0.03),
    "LTO": Ageing(2e-5, 5e-5, 0.01, 0.02),
}
