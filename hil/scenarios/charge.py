"""A full charge through two Elcon chargers on the vehicle bus, driven by the Elcon adapter.

The pack starts at 10 % in a warm, poorly ventilated enclosure (33 degC, 0.5 W/K per
module): the chargers share the CCL at constant current, the pack's own heat brings the
temperature derating in, then the highest cell and the SOC taper the CCL while the chargers
hold the CVL (constant voltage). Once the current has stayed below the termination current
at CVL the adapter ends the charge, the EMS asks for standby and the contactors open.
"""

from __future__ import annotations

import numpy as np

from controller.adapters.elcon import ElconCharger as ElconAdapter
from controller.core import Controller, StepResult
from hil.scenarios.loop import (
    ClosedLoop,
    at,
    compressed,
    compressed_sim,
    scenario_config,
)
from slaves.chemistry import NMC
from slaves.elcon_charger import ChargerConfig, ElconCharger
from slaves.ems import EmsRequest
from slaves.system import SimulatedSystem

FACTOR = 40.0
AMBIENT = 33.0
CONDUCTANCE = 0.5  # W/K per module to the enclosure air
RATED_CURRENT = 12.0  # A per charger, as max_current in hil/charge.toml
START_AT = 1.0  # s: the EMS asks for charge


class Charge(ClosedLoop):
    """``canbms demo --scenario charge``; ``initial_soc`` and ``ambient`` shorten it in tests."""

    title = (
        "charge: 96s NMC pack from 10 % through two Elcon chargers (Elcon adapter, CCL shared), "
        f"time compressed {FACTOR:.0f}x (cells of 50/{FACTOR:.0f} Ah and heat capacity alike; "
        "same currents and voltages), 50 ms control cycle"
    )
    max_duration = 900.0

    def __init__(self, seed: int = 0, initial_soc: float = 0.10, ambient: float = AMBIENT) -> None:
        system = SimulatedSystem(
            chemistry=compressed(NMC, FACTOR),
            seed=seed,
            initial_soc=initial_soc,
            ambient=ambient,
            config=compressed_sim(FACTOR, CONDUCTANCE),
        )
        controller = Controller(scenario_config("charge"))
        super().__init__(system, controller)
        self.adapter_index, self.adapter = next(
            (i, a) for i, a in enumerate(controller.stages) if isinstance(a, ElconAdapter)
        )
        self.chargers = [
            ElconCharger(system.circuit, ChargerConfig(address=a, rated_current=RATED_CURRENT))
            for a in self.adapter.config.addresses
        ]
        for charger in self.chargers:
            system.add_device("vehicle", f"charger_{charger.config.address:02X}", charger)
        self.cvl = controller.config.limits.cvl
        table = controller.config.limits.charge.cell_voltage
        self.max_charge_cell_voltage = float(table.x[np.flatnonzero(table.y <= 0.0)[0]])
        self.charge_cell_voltage = controller.config.limits.charge_cell_voltage_v
        self.request(EmsRequest.STANDBY, "EMS requests standby (with fault reset)", reset=True)
        self.started = False
        self.closed_at: float | None = None
        self.complete_at: float | None = None
        self.open_at: float | None = None
        self.hottest = -np.inf
        self.lowest_thermal_ccl = np.inf

    def observe(self, now: float, result: StepResult) -> None:
        s = result.state
        if not self.started and now >= START_AT:
            self.started = True
            self.request(EmsRequest.CHARGE, "EMS requests charge")
        if self.closed_at is None and s.contactors.state.name == "CLOSED_CHARGE":
            self.closed_at = now
        if self.complete_at is None and s.stages[self.adapter_index].terminated:
            self.complete_at = now
            self.request(EmsRequest.STANDBY, "charge complete: EMS requests standby")
        if self.complete_at is not None and self.open_at is None and not any(s.contactors.commands):
            self.open_at = now
        if self.open_at is not None and s.contactors.state.name == "STANDBY":
            self.finished = True
        self.hottest = max(self.hottest, result.view.temperature_stats.maximum)
        if s.published.charge_limited_by == "temperature":
            self.lowest_thermal_ccl = min(self.lowest_thermal_ccl, s.published.ccl)
        self.record.add(now, result, s.published.ccl, self._phase(result))

    def _phase(self, result: StepResult) -> str:
        """CC while the chargers deliver what the CCL allows; CV once they hold the CVL or
        the highest cell / SOC tapers the CCL."""
        if self.charging_current() < self.adapter.config.termination_current:
            return "idle"
        limited_by = result.state.published.charge_limited_by
        at_cvl = self.system.link_voltage >= self.cvl - 1.0
        return "CV" if at_cvl or limited_by in ("cell_voltage", "soc") else "CC"

    def charging_current(self) -> float:
        return sum(c.current for c in self.chargers)

    def status(self, now: float, result: StepResult) -> str:
        s = result.state
        v, t = result.view.voltage_stats, result.view.temperature_stats
        each = " + ".join(f"{c.current:4.1f}" for c in self.chargers)
        return (
            f"t={now:6.1f}s  {s.contactors.state.name:<14} {self.record.phase[-1]:<4} "
            f"I={result.view.current.value:6.2f} A ({each})  "
            f"CCL={s.published.ccl:5.1f} A [{s.published.charge_limited_by}]  "
            f"link {self.system.link_voltage:5.1f}/{s.published.cvl:5.1f} V  "
            f"cell {v.minimum:.3f}..{v.maximum:.3f} V  T {t.maximum:4.1f} C  "
            f"SOC {self.system.pack.soc.mean() * 100:5.1f} %"
        )

    def summary(self) -> list[str]:
        r = self.record
        controller_soc = self.bench.state.soc.soc_mean
        thermal = (
            f"CCL down to {self.lowest_thermal_ccl:.1f} A"
            if np.isfinite(self.lowest_thermal_ccl)
            else "no temperature derating"
        )
        return [
            f"  time compression                 {FACTOR:.0f}x (a 50 Ah pack at these currents "
            f"takes {FACTOR:.0f} times longer)",
            f"  contactors closed for charge     {at(self.closed_at)}",
            f"  time in CC / CV                  {r.phase_time('CC', self.cycle):.1f} s / "
            f"{r.phase_time('CV', self.cycle):.1f} s",
            r.check(self.adapter.config.period, self.cycle).line("CCL"),
            f"  temperature derating             hottest sensor {self.hottest:.1f} C, {thermal}",
            f"  charge complete                  {at(self.complete_at)}",
            f"  contactors commanded open        {at(self.open_at)}",
            f"  end SOC                          {self.system.pack.soc.mean() * 100:.1f} % "
            f"(controller's estimate {controller_soc:.1f} %)",
            f"  max cell voltage                 {np.nanmax(r.max_cell):.3f} V (no charge "
            f"above {self.max_charge_cell_voltage:.2f} V; CVL {self.charge_cell_voltage:.2f} V "
            "per cell)",
        ]
