"""Scenarios of plant and controller: the scripted demo session and the closed loops.

``session`` is the default ``canbms demo`` tour (precharge, discharge, charge into the
top-of-charge derating, an injected fault).

Each scenario puts a load model on the vehicle bus of the simulated plant (Elcon chargers,
a CAN-BMS storage inverter, a CiA 419 charger on CANopen), lets the controller drive it
through its adapter and records the measured current against the limit in force. ``canbms
demo --scenario NAME`` runs them; ``SCENARIOS`` maps the names to their classes.
"""

from __future__ import annotations

from hil.scenarios.canopen import CanopenCharge
from hil.scenarios.charge import Charge
from hil.scenarios.discharge import Discharge
from hil.scenarios.loop import ClosedLoop
from hil.scenarios.session import DemoSession

SCENARIOS: dict[str, type[ClosedLoop]] = {
    "session": DemoSession,
    "charge": Charge,
    "discharge": Discharge,
    "canopen": CanopenCharge,
}
