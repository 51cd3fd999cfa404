"""The sensor model behind the plausibility checks: nominal cell resistance, noise, windows.

The levels of each plausibility check are set in its own table like every other check;
this section holds what the checks need to predict a reading from its neighbours: how
much a cell's voltage must move for a current step, how much a sensor may scatter at rest,
and over which windows changes are compared. Values are per chemistry (presets).
"""

from __future__ import annotations

from dataclasses import dataclass

from controller.config.declare import setting
from controller.errors import ConfigError


@dataclass(frozen=True)
class PlausibilityConfig:
    """The sensor model of the plausibility checks (levels are in each check's table)."""

    cell_r0_ohm: float = setting(
        gt=0.0, unit="ohm",
        doc="nominal ohmic resistance of one cell at 25 degC, until an estimate replaces it",
    )  # fmt: skip
    cell_r1_ohm: float = setting(
        ge=0.0, unit="ohm", doc="nominal polarisation resistance of one cell at 25 degC"
    )
    activation_k: float = setting(
        ge=0.0, unit="K", doc="resistance grows by exp(activation_k (1/T - 1/298.15 K))"
    )
    cell_voltage_accuracy_v: float = setting(
        gt=0.0, unit="V", doc="accuracy of one cell voltage measurement"
    )
    pack_voltage_accuracy_v: float = setting(
        ge=0.0, unit="V", doc="accuracy of the pack voltage (U1): fixed part"
    )
    pack_voltage_accuracy_fraction: float = setting(
        ge=0.0, lt=1.0, doc="accuracy of the pack voltage (U1): share of the reading"
    )

    min_resistance_share: float = setting(
        0.8, gt=0.0, le=1.0,
        doc="a first measured cell resistance below this share of the nominal one is not "
        "taken at once (the nominal is followed from instead)",
    )  # fmt: skip
    resistance_follow_per_hour: float = setting(
        0.1, gt=0.0, le=10.0, unit="1/h",
        doc="the learnt cell resistance the checks use moves by at most this share per hour",
    )  # fmt: skip
    counter_window_s: float = setting(
        5.0, gt=0.0, le=600.0, unit="s",
        doc="the sensor's charge counter and the integrated readings are compared over "
        "half to one such window",
    )  # fmt: skip
    counter_accuracy_a: float = setting(
        2.0, gt=0.0, unit="A",
        doc="mean disagreement of the two integrals allowed at any current (offset, the "
        "counter's resolution, frame timing over the window)",
    )  # fmt: skip
    counter_accuracy_fraction: float = setting(
        0.01, ge=0.0, lt=1.0, doc="... plus this share of the mean current"
    )
    evaluation_period_s: float = setting(
        0.1, gt=0.0, le=10.0, unit="s",
        doc="per-cell and per-sensor plausibility is evaluated at this period (held between)",
    )  # fmt: skip
    step_window_s: float = setting(
        2.0, gt=0.0, le=60.0, unit="s",
        doc="current and cell voltage steps are compared over half to one such window",
    )  # fmt: skip
    settle_s: float = setting(
        0.3, ge=0.0, le=10.0, unit="s",
        doc="a reference for the step comparison is taken only after this long steady",
    )  # fmt: skip
    steady_band_a: float = setting(
        2.0, ge=0.0, unit="A", doc="steady: current and cells (as current through R0) within this"
    )
    min_step_a: float = setting(
        30.0, gt=0.0, unit="A", doc="current steps smaller than this are not judged"
    )
    current_noise_a: float = setting(
        0.5, ge=0.0, unit="A", doc="the current reading scatters this much when healthy"
    )
    rest_current_a: float = setting(
        2.0, ge=0.0, unit="A", doc="below this current the pack is at rest"
    )
    rest_settle_s: float = setting(
        60.0, ge=0.0, unit="s", doc="cell deviation is judged after this long at rest"
    )
    temperature_window_s: float = setting(
        60.0, gt=0.0, le=3600.0, unit="s",
        doc="temperature changes are compared over half to one such window",
    )  # fmt: skip
    temperature_band_k: float = setting(
        0.3, ge=0.0, unit="K", doc="a sensor moving less than this over the window stood still"
    )
    module_heat_capacity_j_per_k: float | None = setting(
        None, gt=0.0, unit="J/K",
        doc="heat capacity of one module (cells, housing, busbars) for the heat model; "
        "with module_time_constant_s, stuck sensors are judged against it too",
    )  # fmt: skip
    module_time_constant_s: float | None = setting(
        None, gt=0.0, unit="s",
        doc="a module's thermal time constant (heat capacity over conductance to its coolant)",
    )  # fmt: skip
    thermal_rest_s: float = setting(
        3600.0, ge=0.0, unit="s",
        doc="the heat model starts after a rest this long (the modules at coolant temperature)",
    )  # fmt: skip
    rate_window_s: float = setting(
        10.0, gt=0.0, le=600.0, unit="s", doc="temperature rates are taken over such a window"
    )

    def validate(self, path: str) -> None:
        if (self.module_heat_capacity_j_per_k is None) != (self.module_time_constant_s is None):
            raise ConfigError(
                f"{path}.module_time_constant_s",
                "the heat model needs both module_heat_capacity_j_per_k and "
                "module_time_constant_s, or neither",
            )
        if self.evaluation_period_s >= self.step_window_s / 2.0:
            raise ConfigError(
                f"{path}.evaluation_period_s",
                f"{self.evaluation_period_s} must be below half of step_window_s "
                f"({self.step_window_s})",
            )
