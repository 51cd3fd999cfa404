"""The controller's own frames (dbc/canbms_master.dbc): status, limits, statistics, contactors.

Values come from the step's snapshot; encoding saturates at the DBC field limits, so an
invalid (NaN) statistic goes out as 0 rather than stopping the step, except the SOC: an
unknown SOC goes out as the DBC's ``NotAvailable`` value, never as 0 %. The safety frames
(``BMS_Status``, ``BMS_Limits``, ``ContactorCommand``) carry the E2E Profile 11 header of
``dbc.master_e2e``; the limits are rounded to their safe side (currents and CVL down, DVL up).
"""

from __future__ import annotations

import math
from typing import Any

from cantools.database.can import Database

from controller.adapters.base import BmsSnapshot, Level
from controller.adapters.framing import FrameEncoder
from controller.contactors import (
    Cause,
    Commands,
    Contactor,
    ContactorState,
    ContactorStatus,
    Feedback,
)
from controller.frames import OutFrame, frame_key
from controller.protection import ProtectionState
from dbc import master_e2e

VEHICLE_FRAMES = ("BMS_Status", "BMS_Limits", "BMS_CellStats", "BMS_TempStats", "BMS_PackValues")

# BMS_ContactorState values
_SEQUENCE = {
    ContactorState.STANDBY: 0,
    ContactorState.PRECHARGE: 1,
    ContactorState.CLOSED_DISCHARGE: 2,
    ContactorState.CLOSED_CHARGE: 2,
    ContactorState.OPENING: 3,
    ContactorState.FAULT: 4,
}

# Bits 16.. of BMS_ActiveFaults: contactor faults (bits 0..15 are the protection checks).
CONTACTOR_FAULT_BITS = {
    Cause.FAILED_TO_CLOSE: 16,
    Cause.WELDED: 17,
    Cause.PRECHARGE_FAILED: 18,
    Cause.PRECHARGE_OVERCURRENT: 18,
    Cause.FEEDBACK_LOST: 19,
}


def active_fault_bits(protection: ProtectionState, contactors: ContactorStatus) -> int:
    bits = protection.fault_bits
    for fault in contactors.faults:
        bit = CONTACTOR_FAULT_BITS.get(fault.cause)
        if bit is not None:
            bits |= 1 << bit
    return bits


def _contact_state(closed: bool | None, faulty: bool) -> float:
    """BMS_*Contactor value: 0 open, 1 closed, 2 fault, 3 unknown (no fresh feedback)."""
    if faulty:
        return 2.0
    if closed is None:
        return 3.0
    return 1.0 if closed else 0.0


def _not_available(signal: Any) -> int:
    """The raw value the DBC names ``NotAvailable`` (else all ones, out of the 0..100 % range)."""
    for raw, name in (signal.choices or {}).items():
        if str(name) == "NotAvailable":
            return int(raw)
    return (1 << signal.length) - 1


def _counter(counters: dict[str, int], name: str) -> int:
    """The next Profile 11 counter of ``name`` (0..14), kept in ``counters``."""
    counters[name] = master_e2e.next_counter(counters.get(name))
    return counters[name]


def _sealed(frame: OutFrame, counter: int) -> OutFrame:
    """``frame`` with its E2E header: the counter and the CRC over the encoded bytes."""
    data = master_e2e.seal(frame.arbitration_id, frame.data, counter)
    return OutFrame(frame.arbitration_id, data, frame.bus, frame.is_extended_id, frame.is_fd)


class StatusFrames:
    """Encoders for the master DBC frames the controller sends."""

    def __init__(self, master: Database) -> None:
        self._vehicle = {
            name: FrameEncoder(master.get_message_by_name(name), "vehicle")
            for name in VEHICLE_FRAMES
        }
        self._command = FrameEncoder(master.get_message_by_name("ContactorCommand"), "internal")
        self._soc_not_available = _not_available(
            master.get_message_by_name("BMS_PackValues").get_signal_by_name("BMS_SOC")
        )
        dvl = master.get_message_by_name("BMS_Limits").get_signal_by_name(
            "BMS_DischargeVoltageLimit"
        )
        self._dvl_step, self._dvl_max = float(dvl.scale), (1 << dvl.length) - 1
        self.periods = {
            name: (master.get_message_by_name(name).cycle_time or 100) / 1000.0
            for name in (*VEHICLE_FRAMES, "ContactorCommand")
        }

    def produced(self) -> dict[str, frozenset[int]]:
        """Frame keys sent per bus: the status frames outside, the contactor command inside."""
        return {
            "vehicle": frozenset(
                frame_key(e.frame_id, e.is_extended) for e in self._vehicle.values()
            ),
            "internal": frozenset((frame_key(self._command.frame_id, self._command.is_extended),)),
        }

    def contactor_command(self, commands: Commands, counters: dict[str, int]) -> OutFrame:
        frame = self._command.encode(
            {
                "ContactorCmd_MinusClose": float(commands.minus),
                "ContactorCmd_PrechargeClose": float(commands.precharge),
                "ContactorCmd_PlusClose": float(commands.plus),
            }
        )
        return _sealed(frame, _counter(counters, "ContactorCommand"))

    def limits(
        self, ccl: float, dcl: float, cvl: float, dvl: float, counters: dict[str, int]
    ) -> OutFrame:
        """Limits rounded to their safe side: never more current or a wider voltage window."""
        encoder = self._vehicle["BMS_Limits"]
        dvl_raw = encoder.raw("BMS_DischargeVoltageLimit", dvl, down=True)
        if math.isfinite(dvl) and dvl_raw * self._dvl_step < dvl - 1e-9:
            dvl_raw += 1  # saturates in the DBC range below
        raw = {
            "BMS_ChargeCurrentLimit": encoder.raw("BMS_ChargeCurrentLimit", ccl, down=True),
            "BMS_DischargeCurrentLimit": encoder.raw("BMS_DischargeCurrentLimit", dcl, down=True),
            "BMS_ChargeVoltageLimit": encoder.raw("BMS_ChargeVoltageLimit", cvl, down=True),
            "BMS_DischargeVoltageLimit": min(dvl_raw, self._dvl_max),
        }
        return _sealed(encoder.encode_raw(raw), _counter(counters, "BMS_Limits"))

    def encode(
        self,
        name: str,
        snap: BmsSnapshot,
        protection: ProtectionState,
        contactors: ContactorStatus,
        feedback: Feedback,
        counters: dict[str, int],
    ) -> OutFrame:
        encoder = self._vehicle[name]
        if name == "BMS_Status":
            faulty = {f.contactor for f in contactors.faults if f.contactor is not None}
            states = [
                _contact_state(closed, which in faulty)
                for which, closed in zip(Contactor, feedback, strict=False)
            ]
            frame = encoder.encode(
                {
                    "BMS_State": float(contactors.state.value),
                    "BMS_ContactorState": float(_SEQUENCE[contactors.state]),
                    "BMS_MinusContactor": states[Contactor.MINUS],
                    "BMS_PrechargeContactor": states[Contactor.PRECHARGE],
                    "BMS_PlusContactor": states[Contactor.PLUS],
                    "BMS_FaultLevel": float(min(snap.fault_level, Level.FAULT)),
                    "BMS_ActiveFaults": float(active_fault_bits(protection, contactors)),
                }
            )
            return _sealed(frame, _counter(counters, name))
        if name == "BMS_Limits":
            return self.limits(snap.ccl, snap.dcl, snap.cvl, snap.dvl, counters)
        if name == "BMS_CellStats":
            return encoder.encode(
                {
                    "BMS_MinCellVoltage": snap.min_cell_voltage,
                    "BMS_MaxCellVoltage": snap.max_cell_voltage,
                    "BMS_MinCellVoltageIndex": snap.min_cell_position,
                    "BMS_MaxCellVoltageIndex": snap.max_cell_position,
                }
            )
        if name == "BMS_TempStats":
            return encoder.encode(
                {
                    "BMS_MinTemperature": snap.min_temperature,
                    "BMS_MaxTemperature": snap.max_temperature,
                    "BMS_MinTemperatureIndex": snap.min_temperature_position,
                    "BMS_MaxTemperatureIndex": snap.max_temperature_position,
                }
            )
        raw = {
            name: encoder.raw(name, value)
            for name, value in (
                ("BMS_PackVoltage", snap.pack_voltage),
                ("BMS_PackCurrent", snap.pack_current),
                ("BMS_SOH", snap.soh),
            )
        }
        known = math.isfinite(snap.soc)
        raw["BMS_SOC"] = encoder.raw("BMS_SOC", snap.soc) if known else self._soc_not_available
        return encoder.encode_raw(raw)
