"""Contactors: the precharge/close/open sequence with feedback supervision."""

from controller.contactors.config import ContactorConfig, parse_contactors
from controller.contactors.machine import (
    CLOSED,
    OPEN,
    PLUS_CLOSING,
    PRECHARGING,
    Cause,
    Commands,
    Contactor,
    ContactorEvent,
    ContactorFault,
    ContactorInputs,
    ContactorMachine,
    ContactorState,
    ContactorStatus,
    Feedback,
    Phase,
    Request,
    diagnosis_of,
)

__all__ = [
    "CLOSED",
    "OPEN",
    "PLUS_CLOSING",
    "PRECHARGING",
    "Cause",
    "Commands",
    "Contactor",
    "ContactorConfig",
    "ContactorEvent",
    "ContactorFault",
    "ContactorInputs",
    "ContactorMachine",
    "ContactorState",
    "ContactorStatus",
    "Feedback",
    "Phase",
    "Request",
    "diagnosis_of",
    "parse_contactors",
]
