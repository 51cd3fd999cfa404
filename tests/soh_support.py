"""An aged, time-compressed pack cycled between rests with the controller in the loop."""

from __future__ import annotations

from dataclasses import replace

import can
import cantools
import numpy as np

from controller.config.loader import parse_config
from controller.core import Controller, StepResult
from dbc.topology import Topology
from hil.bench import VirtualBench
from slaves.ageing import TYPICAL_AGEING
from slaves.chemistry import NMC
from slaves.ems import EmsCommand, EmsRequest
from slaves.simulator import slave_database
from slaves.system import SimulatedSystem

FACTOR = 50.0  # charge stores / 50: 1 Ah cells, the same currents and voltages
CELL_AH = NMC.capacity_ah / FACTOR
REST_S = 20.0  # the controller's rest time; the RC pair settles in 3 s below
LEG_S = 40.0  # one discharge or charge: 1600 As, 45-60 % of an aged cell
TOPOLOGY = Topology(modules=2, cells_per_module=12, sensors_per_module=4)
PULSE_S = 5.0  # the load alternates between two currents this often ...
LOW_A, HIGH_A = 25.0, 55.0  # ... so every cell sees a 30 A step every 5 s


class Tap:
    """A device on the vehicle bus that keeps the BMS_PackValues frames it receives."""

    def __init__(self, frame_id: int) -> None:
        self.frame_id = frame_id
        self.frames: list[can.Message] = []

    def receive(self, msg: can.Message) -> None:
        if msg.arbitration_id == self.frame_id:
            self.frames.append(msg)

    def step(self, t: float, dt: float) -> list[can.Message]:
        return []


class Cycles:
    """Rest, then discharge/rest/charge/rest ... with pulsed currents; the pack is aged by
    ``efc`` full cycles before the first step (each cell at its own seeded rate)."""

    def __init__(self, efc: float, legs: int, seed: int = 3) -> None:
        chemistry = replace(
            NMC,
            capacity_ah=CELL_AH,
            c1_farad=3.0 / NMC.r1_ohm,  # tau 3 s (30 s in the full-size cell)
            ageing=TYPICAL_AGEING["NMC"],
        )
        self.system = SimulatedSystem(TOPOLOGY, chemistry, seed=seed, initial_soc=0.8)
        self.cells = self.system.pack.plant.cells
        self.cells.age(efc=efc)
        self.legs = legs
        grown = chemistry.ageing.resistance_factor(np.array(efc), 0.0, np.array(1.0))
        r0, r1 = float(NMC.r0_ohm * grown), float(NMC.r1_ohm * grown)
        self.system.set_load(self.load)
        self.system.ems.script = (EmsCommand(0.0, EmsRequest.DISCHARGE, False),)
        config = parse_config(
            {
                "cycle_ms": 50,
                "pack": {
                    "capacity_ah": CELL_AH,
                    "modules": TOPOLOGY.modules,
                    "cells_per_module": TOPOLOGY.cells_per_module,
                    "sensors_per_module": TOPOLOGY.sensors_per_module,
                },
                "soc": {"rest_time_s": REST_S},
                "balancing": {"enabled": False},  # bled charge would void the pairs
                # the plausibility checks judge the current against the aged cells' resistance
                "protection": {"plausibility": {"cell_r0_ohm": r0, "cell_r1_ohm": r1}},
            }
        )
        self.controller = Controller(config, slaves_db=slave_database(TOPOLOGY))
        self.master = cantools.database.load_file("dbc/canbms_master.dbc")
        self.tap = Tap(self.master.get_message_by_name("BMS_PackValues").frame_id)
        self.system.add_device("vehicle", "tap", self.tap)
        self.bench = VirtualBench(self.system, self.controller)
        self.result: StepResult | None = None

    @property
    def duration(self) -> float:
        return (REST_S + 1.0) * (self.legs + 1) + LEG_S * self.legs

    def load(self, t: float) -> float:
        """A + = discharging; legs alternate discharge and charge, rests in between."""
        period = LEG_S + REST_S + 1.0
        start = REST_S + 1.0
        if t < start:
            return 0.0
        leg, into = divmod(t - start, period)
        if leg >= self.legs or into >= LEG_S:
            return 0.0
        amps = HIGH_A if int(into // PULSE_S) % 2 else LOW_A
        return amps if int(leg) % 2 == 0 else -amps

    def run(self) -> None:
        steps = round(self.duration / self.bench.cycle)
        for _ in range(steps):
            self.result = self.bench.step()

    def published_soh(self) -> float:
        """BMS_SOH of the last BMS_PackValues that crossed the vehicle bus."""
        last = self.tap.frames[-1]
        return float(self.master.decode_message(last.arbitration_id, last.data)["BMS_SOH"])

    def true_capacity_ah(self) -> np.ndarray:
        return self.cells.capacity_c / 3600.0

    def true_resistance_ohm(self) -> np.ndarray:
        return np.asarray(self.cells.r0)

    def close(self) -> None:
        self.bench.close()
