"""Diagnosis: the catalogue of everything the controller can raise, and its event records."""

from controller.diagnosis.events import Event

__all__ = ["Event"]
