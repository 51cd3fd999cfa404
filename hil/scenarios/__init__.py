"""Closed-loop scenarios: the controller's charger and inverter protocols end to end.

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

SCENARIOS: dict[str, type[ClosedLoop]] = {
    "charge": Charge,
    "discharge": Discharge,
    "canopen": CanopenCharge,
}
