"""A discharge through a CAN-BMS storage inverter following a load profile, clamped to DCL.

The inverter model (`slaves.inverter`) wants the profile's current but obeys the last 0x351
it received: its current stays within the DCL and its voltage loop holds the DC link at the
DVL. As the pack empties, the SOC and the lowest cell derate the DCL; once it is down to
``STOP_BELOW`` the discharge is over, the EMS asks for standby and the contactors open.
"""

from __future__ import annotations

import numpy as np

from controller.adapters.canbms_inverter import CanBmsInverter
from controller.core import Controller, StepResult
from hil.scenarios.loop import (
    ClosedLoop,
    at,
    compressed,
    compressed_sim,
    scenario_config,
)
from slaves.chemistry import NMC
from slaves.ems import EmsRequest
from slaves.inverter import Inverter, InverterConfig
from slaves.power_stage import PowerStageConfig
from slaves.profiles import Scripted
from slaves.system import SimulatedSystem

FACTOR = 40.0
START_AT = 1.0  # s: the EMS asks for discharge
STOP_BELOW = 1.0  # A: a DCL derated below this ends the discharge
# One minute of site load, repeated (battery current, negative = discharging): the 45 A peak
# is more than the 40 A DCL allows, so the inverter is clamped there from the start.
LOAD_CYCLE = ((0.0, -25.0), (20.0, -45.0), (30.0, -15.0), (50.0, -35.0))
LOAD_PERIOD = 60.0
# The plant steps at the 50 ms cycle: a voltage loop of 100 A/s per V keeps
# gain x pack resistance x step (about 0.6) well inside its stability bound of 2.
STAGE = PowerStageConfig(ramp_up=200.0, ramp_down=1000.0, voltage_gain=100.0)


class SiteLoad:
    """``LOAD_CYCLE`` repeated every ``LOAD_PERIOD`` seconds from ``start``."""

    def __init__(self, start: float) -> None:
        self.start = start
        self.cycle = Scripted(LOAD_CYCLE)

    def __call__(self, t: float) -> float:
        return 0.0 if t < self.start else self.cycle((t - self.start) % LOAD_PERIOD)


class Discharge(ClosedLoop):
    """``canbms demo --scenario discharge [--variant V]``; ``initial_soc`` shortens it."""

    max_duration = 600.0

    def __init__(self, seed: int = 0, variant: str = "victron", initial_soc: float = 0.5) -> None:
        system = SimulatedSystem(
            chemistry=compressed(NMC, FACTOR),
            seed=seed,
            initial_soc=initial_soc,
            config=compressed_sim(FACTOR),
        )
        controller = Controller(scenario_config("discharge", variant=variant))
        super().__init__(system, controller)
        self.title = (
            f"discharge: 96s NMC pack from {initial_soc * 100:.0f} % through a CAN-BMS storage "
            f"inverter ({variant}) following a site load profile, time compressed "
            f"{FACTOR:.0f}x (cells of 50/{FACTOR:.0f} Ah), 50 ms control cycle"
        )
        self.adapter = next(a for a in controller.stages if isinstance(a, CanBmsInverter))
        self.inverter = Inverter(
            system.circuit, SiteLoad(START_AT), config=InverterConfig(variant=variant, stage=STAGE)
        )
        system.add_device("vehicle", "inverter", self.inverter)
        self.dvl = controller.config.limits.dvl
        self.request(EmsRequest.STANDBY, "EMS requests standby (with fault reset)", reset=True)
        self.started = False
        self.closed_at: float | None = None
        self.stopped_at: float | None = None
        self.stopped_by = ""
        self.open_at: float | None = None
        self.peak = 0.0

    def observe(self, now: float, result: StepResult) -> None:
        s = result.state
        p = s.published
        if not self.started and now >= START_AT:
            self.started = True
            self.request(EmsRequest.DISCHARGE, "EMS requests discharge; the site load starts")
        if self.closed_at is None and s.contactors.state.name == "CLOSED_DISCHARGE":
            self.closed_at = now
        derated = p.discharge_limited_by in ("soc", "cell_voltage")
        if self.closed_at is not None and self.stopped_at is None and derated:
            if p.dcl < STOP_BELOW:
                self.stopped_at, self.stopped_by = now, p.discharge_limited_by
                self.request(EmsRequest.STANDBY, "DCL derated to nothing: EMS requests standby")
        if self.stopped_at is not None and self.open_at is None and not any(s.contactors.commands):
            self.open_at = now
        if self.open_at is not None and s.contactors.state.name == "STANDBY":
            self.finished = True
        self.peak = max(self.peak, -result.view.current.value)
        self.record.add(now, result, p.dcl, self._phase(result))

    def _phase(self, result: StepResult) -> str:
        """CC while the inverter draws a set current (profile or DCL); CV while its voltage
        loop holds the link at the DVL."""
        if -self.inverter.current < 0.5:
            return "idle"
        return "CV" if self.system.link_voltage <= self.dvl + 1.0 else "CC"

    def status(self, now: float, result: StepResult) -> str:
        s = result.state
        v = result.view.voltage_stats
        return (
            f"t={now:6.1f}s  {s.contactors.state.name:<16} {self.inverter.state.value:<8} "
            f"I={result.view.current.value:7.2f} A (wants {self.inverter.profile(now):6.1f})  "
            f"DCL={s.published.dcl:5.1f} A [{s.published.discharge_limited_by}]  "
            f"link {self.system.link_voltage:5.1f}/{s.published.dvl:5.1f} V  "
            f"cell {v.minimum:.3f}..{v.maximum:.3f} V  "
            f"SOC {self.system.pack.soc.mean() * 100:5.1f} %"
        )

    def summary(self) -> list[str]:
        r = self.record
        stop = (
            f"{at(self.stopped_at)} ({self.stopped_by} derating)"
            if self.stopped_at is not None
            else "not reached"
        )
        table = self.bench.controller.config.limits.discharge.cell_voltage
        floor = float(table.x[np.flatnonzero(table.y <= 0.0)[-1]])
        return [
            f"  time compression                 {FACTOR:.0f}x (a 50 Ah pack at these currents "
            f"takes {FACTOR:.0f} times longer)",
            f"  contactors closed for discharge  {at(self.closed_at)}",
            f"  peak discharge current           {self.peak:.1f} A (profile peak "
            f"{-min(a for _, a in LOAD_CYCLE):.0f} A)",
            f"  time in CC / CV (at DVL)         {r.phase_time('CC', self.cycle):.1f} s / "
            f"{r.phase_time('CV', self.cycle):.1f} s",
            r.check(self.adapter.config.period, self.cycle, sign=-1.0).line("DCL"),
            f"  discharge stopped                {stop}",
            f"  contactors commanded open        {at(self.open_at)}",
            f"  end SOC                          {self.system.pack.soc.mean() * 100:.1f} % "
            f"(controller's estimate {self.bench.state.soc.soc_mean:.1f} %)",
            f"  min cell voltage                 {np.nanmin(r.min_cell):.3f} V (DVL "
            f"{self.dvl / self.bench.controller.config.pack.cells:.2f} V per cell, no discharge "
            f"at or below {floor:.2f} V)",
        ]
