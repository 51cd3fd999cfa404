"""Diagnosis: the catalogue of everything the controller can raise, and its event records."""

from controller.diagnosis.catalogue import (
    Catalogue,
    Diagnosis,
    Reaction,
    Severity,
    apply_overrides,
    load_catalogue,
    parse_catalogue,
    shipped,
)
from controller.diagnosis.events import Event

__all__ = [
    "Catalogue",
    "Diagnosis",
    "Event",
    "Reaction",
    "Severity",
    "apply_overrides",
    "load_catalogue",
    "parse_catalogue",
    "shipped",
]
