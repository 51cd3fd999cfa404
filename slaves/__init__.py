"""Simulated battery pack: cells, thermal, slave modules, sensors and fault injection.

`PackSimulator` is the pack and its slave modules on one bus; `SimulatedSystem` adds the
HV side, the IVT-S current sensor, the contactor driver and the EMS on two buses.
"""

from slaves.contactor_driver import ContactorDriver, ContactorDriverConfig
from slaves.current_sensor import CurrentSensor, CurrentSensorConfig, IvtResult, SensorFault
from slaves.device import Device
from slaves.ems import Ems, EmsCommand, EmsRequest
from slaves.faults import Faults
from slaves.hv_circuit import ContactorFault, ContactorId, HvCircuit, HvCircuitConfig
from slaves.profiles import Constant, CurrentProfile, Scripted
from slaves.simulator import PackSimulator, SimConfig
from slaves.system import INTERNAL, ROLES, VEHICLE, SimulatedSystem

__all__ = [
    "INTERNAL",
    "ROLES",
    "VEHICLE",
    "Constant",
    "ContactorDriver",
    "ContactorDriverConfig",
    "ContactorFault",
    "ContactorId",
    "CurrentProfile",
    "CurrentSensor",
    "CurrentSensorConfig",
    "Device",
    "Ems",
    "EmsCommand",
    "EmsRequest",
    "Faults",
    "HvCircuit",
    "HvCircuitConfig",
    "IvtResult",
    "PackSimulator",
    "Scripted",
    "SensorFault",
    "SimConfig",
    "SimulatedSystem",
]
