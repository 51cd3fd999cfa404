"""BMS_ActiveFaults bits -> catalogue entries, from the same tables the controller sets them by.

Bits 0-13 are the protection checks in their definition order, bit 14 is shared by the
plausibility checks (`Check.bit`), bits 16-19 are contactor faults
(`controller.status_frames.CONTACTOR_FAULT_BITS`); see docs/master-protocol.md.
"""

from __future__ import annotations

from controller.contactors.machine import diagnosis_of
from controller.diagnosis import Catalogue, Diagnosis
from controller.protection import Check
from controller.status_frames import CONTACTOR_FAULT_BITS


def bit_diagnoses(catalogue: Catalogue) -> dict[int, tuple[Diagnosis, ...]]:
    """Every bit the controller sets, with the catalogue entries that set it."""
    ids: dict[int, list[str]] = {}
    for check in Check:
        ids.setdefault(check.bit, []).append(check.value)
    for cause, bit in CONTACTOR_FAULT_BITS.items():
        if (diagnosis := diagnosis_of(cause)) is not None and diagnosis not in ids.get(bit, ()):
            ids.setdefault(bit, []).append(diagnosis)
    return {bit: tuple(catalogue[i] for i in names if i in catalogue) for bit, names in ids.items()}


def active(bits: int, table: dict[int, tuple[Diagnosis, ...]]) -> list[tuple[int, Diagnosis]]:
    """The (bit, entry) pairs of the set bits; a bit that no entry explains is left out."""
    return [(bit, d) for bit, entries in sorted(table.items()) if bits >> bit & 1 for d in entries]
