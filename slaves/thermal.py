"""Lumped thermal model: one temperature per module, heated by its cells, cooled to ambient.

    C dT/dt = P - G (T - T_ambient)

is solved exactly for the heat ``P`` held over the step, so the result does not depend on
the step size, and `ModuleThermal.temperature_at` gives the temperature at any instant inside
the last step. Sensors read the module temperature plus a fixed per-sensor offset.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ThermalParams:
    """Per-module thermal constants."""

    conductance_w_per_k: float = 2.0  # module to ambient
    extra_heat_capacity_j_per_k: float = 2000.0  # housing, busbars, electronics
    sensor_offset_sigma_k: float = 0.3

    def __post_init__(self) -> None:
        if self.conductance_w_per_k <= 0.0:
            raise ValueError(f"thermal.conductance_w_per_k: {self.conductance_w_per_k} must be > 0")
        if self.extra_heat_capacity_j_per_k < 0.0:
            raise ValueError("thermal.extra_heat_capacity_j_per_k: must be >= 0")
        if self.sensor_offset_sigma_k < 0.0:
            raise ValueError("thermal.sensor_offset_sigma_k: must be >= 0")


class ModuleThermal:
    """Temperatures of ``n_modules`` modules and their ``sensors_per_module`` sensors."""

    def __init__(
        self,
        n_modules: int,
        sensors_per_module: int,
        cell_heat_capacity_j_per_k: float,
        cells_per_module: int,
        rng: np.random.Generator,
        ambient: float = 25.0,
        params: ThermalParams | None = None,
    ) -> None:
        params = params or ThermalParams()
        self.params = params
        self.ambient = float(ambient)
        self.heat_capacity = (
            cells_per_module * cell_heat_capacity_j_per_k + params.extra_heat_capacity_j_per_k
        )
        self.temperature = np.full(n_modules, self.ambient)
        self.sensor_offset = params.sensor_offset_sigma_k * rng.standard_normal(
            (n_modules, sensors_per_module)
        )
        self.heat_w = np.zeros(n_modules)
        self._start = self._steady = self.temperature  # of the last step
        self._rate = 0.0  # 1/s toward the steady temperature

    @property
    def time_constant_s(self) -> float:
        return self.heat_capacity / self.params.conductance_w_per_k

    @property
    def sensor_temperatures(self) -> np.ndarray:
        """``(modules, sensors)`` true sensor readings before ADC noise and quantisation."""
        return self.temperature[:, None] + self.sensor_offset

    def step(self, dt: float, heat_w: np.ndarray) -> None:
        """Advance by ``dt`` with ``heat_w`` (per module, W) held over the step."""
        g = self.params.conductance_w_per_k
        self.heat_w = np.asarray(heat_w, np.float64)
        steady = self.ambient + self.heat_w / g
        self._start, self._steady, self._rate = self.temperature, steady, g / self.heat_capacity
        self.temperature = steady + (self.temperature - steady) * np.exp(-dt * self._rate)

    def temperature_at(self, elapsed: np.ndarray, modules: np.ndarray) -> np.ndarray:
        """Temperatures of ``modules`` ``elapsed`` seconds into the last step (same shapes)."""
        steady = self._steady[modules]
        return steady + (self._start[modules] - steady) * np.exp(-elapsed * self._rate)
