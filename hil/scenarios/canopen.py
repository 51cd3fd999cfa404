"""A charge on CANopen: the CiA 418 battery node asks, the CiA 419 charger in the plant obeys.

The battery node is a stage of the controller's assembly (configured by ``[canopen]``), so
its frames (heartbeat, TPDOs) go out on the vehicle bus with the controller's, exactly as
under ``canbms run``; the charger node answers on the same bus from the plant side, its
frames handed to a `FrameNetwork` as the bench carries them, so the loop is deterministic in
virtual time. The charge runs into the CCL taper; then a
slave module falls silent, the BMS faults, its request drops to zero and the charger stops.
"""

from __future__ import annotations

import can
import numpy as np

from controller.canopen_node.stage import FrameNetwork
from controller.core import Controller, StepResult
from hil.scenarios.loop import ClosedLoop, at, compressed, compressed_sim, scenario_config
from slaves.chemistry import NMC
from slaves.cia419_charger import ChargerConfig, Cia419Charger
from slaves.ems import EmsRequest
from slaves.faults import ModuleSilent
from slaves.power_stage import DcLink
from slaves.system import SimulatedSystem

FACTOR = 40.0
START_AT = 1.0
FAULT_BELOW = 2.0  # A: once the taper has brought the CCL down to this, a module falls silent
FAULT_MODULE = 3


class Cia419Device:
    """The CiA 419 charger as a plant device on the vehicle bus, driving the DC link."""

    def __init__(self, link: DcLink, config: ChargerConfig) -> None:
        self.link = link
        self.network = FrameNetwork()
        self.charger = Cia419Charger(self.network, config)
        self._share = 0.0  # what this charger put into link.load_current

    @property
    def current(self) -> float:
        return self.charger.output_current

    def receive(self, msg: can.Message) -> None:
        if not msg.is_extended_id:
            self.network.notify(msg.arbitration_id, bytearray(msg.data), msg.timestamp)

    def step(self, t: float, dt: float) -> list[can.Message]:
        share = -self.charger.step(t)  # a charger feeds the link: a negative load
        self.link.load_current += share - self._share
        self._share = share
        return [
            can.Message(arbitration_id=i, data=d, timestamp=t, is_extended_id=False)
            for i, d in self.network.take()
        ]


class CanopenCharge(ClosedLoop):
    """``canbms demo --scenario canopen``; ``initial_soc`` shortens it in tests."""

    max_duration = 600.0

    def __init__(self, seed: int = 0, initial_soc: float = 0.6) -> None:
        system = SimulatedSystem(
            chemistry=compressed(NMC, FACTOR),
            seed=seed,
            initial_soc=initial_soc,
            config=compressed_sim(FACTOR),
        )
        controller = Controller(scenario_config("canopen"))
        super().__init__(system, controller)
        self.title = (
            f"canopen: 96s NMC pack from {initial_soc * 100:.0f} %, CiA 418 battery node "
            "requesting its CCL from a CiA 419 charger in the plant, time compressed "
            f"{FACTOR:.0f}x (cells of 50/{FACTOR:.0f} Ah), 50 ms control cycle"
        )
        node = controller.config.canopen
        assert node is not None, "the canopen scenario configuration has a [canopen] table"
        self.request_period = node.tpdo3_ms / 1000
        self.charger = Cia419Device(
            system.circuit, ChargerConfig(battery_node_id=node.node_id, max_current=20.0)
        )
        system.add_device("vehicle", "cia419_charger", self.charger)
        self.request(EmsRequest.STANDBY, "EMS requests standby (with fault reset)", reset=True)
        self.started = False
        self.closed_at: float | None = None
        self.fault_injected: float | None = None
        self.fault_detected: float | None = None
        self.charger_stopped: float | None = None
        self.open_at: float | None = None
        self.peak_ccl = 0.0

    def observe(self, now: float, result: StepResult) -> None:
        s = result.state
        if not self.started and now >= START_AT:
            self.started = True
            self.request(EmsRequest.CHARGE, "EMS requests charge")
        if self.closed_at is None and s.contactors.state.name == "CLOSED_CHARGE":
            self.closed_at = now
        self.peak_ccl = max(self.peak_ccl, s.published.ccl)
        tapered = s.published.charge_limited_by in ("cell_voltage", "soc")
        falling = self.peak_ccl > 2 * FAULT_BELOW  # not the ramp up from zero
        if self.fault_injected is None and tapered and falling and s.published.ccl < FAULT_BELOW:
            self.fault_injected = now
            self.system.faults.inject(ModuleSilent(FAULT_MODULE))
            self.log.append((now, f"slave module {FAULT_MODULE} falls silent"))
        if self.fault_injected is not None:
            if self.fault_detected is None and s.protection.fault_active:
                self.fault_detected = now
            if self.charger_stopped is None and self.charger.current == 0:
                self.charger_stopped = now
            if self.fault_detected and self.open_at is None and not any(s.contactors.commands):
                self.open_at = now
                self.finished = True
        self.record.add(now, result, s.published.ccl, self._phase(result))

    def _phase(self, result: StepResult) -> str:
        """CC while the request is the full CCL, CV while the highest cell tapers it."""
        if self.charger.current < 0.5:
            return "idle"
        tapered = result.state.published.charge_limited_by in ("cell_voltage", "soc")
        return "CV" if tapered else "CC"

    def status(self, now: float, result: StepResult) -> str:
        s = result.state
        v = result.view.voltage_stats
        charger = self.charger.charger
        status = charger.status.name or "-"
        return (
            f"t={now:6.1f}s  {s.contactors.state.name:<14} {self.record.phase[-1]:<4} "
            f"I={result.view.current.value:6.2f} A  CCL={s.published.ccl:5.1f} A "
            f"[{s.published.charge_limited_by}]  6070h={charger.requested_current:5.2f} A  "
            f"charger {self.charger.current:5.2f} A ({status})  "
            f"cell {v.minimum:.3f}..{v.maximum:.3f} V  "
            f"SOC {self.system.pack.soc.mean() * 100:5.1f} %"
        )

    def summary(self) -> list[str]:
        r = self.record

        def after(t: float | None) -> str:
            if t is None or self.fault_injected is None:
                return "not reached"
            return f"{t - self.fault_injected:.2f} s after the module fell silent"

        return [
            f"  time compression                 {FACTOR:.0f}x (a 50 Ah pack at these currents "
            f"takes {FACTOR:.0f} times longer)",
            f"  contactors closed for charge     {at(self.closed_at)}",
            f"  time in CC / CV                  {r.phase_time('CC', self.cycle):.1f} s / "
            f"{r.phase_time('CV', self.cycle):.1f} s",
            r.check(self.request_period, self.cycle).line("CCL"),
            f"  module silent at                 {at(self.fault_injected)}",
            f"  fault detected                   {after(self.fault_detected)}",
            f"  charger at 0 A                   {after(self.charger_stopped)}",
            f"  contactors commanded open        {after(self.open_at)}",
            f"  end SOC                          {self.system.pack.soc.mean() * 100:.1f} % "
            f"(controller's estimate {self.bench.state.soc.soc_mean:.1f} %)",
            f"  max cell voltage                 {np.nanmax(r.max_cell):.3f} V",
        ]
