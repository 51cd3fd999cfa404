"""Protection: a data-driven fault table with debounced warning, alarm and fault levels."""

from controller.protection.checks import Check
from controller.protection.config import (
    CheckConfig,
    LevelConfig,
    ProtectionConfig,
    parse_protection,
)
from controller.protection.engine import Protection, ProtectionState
from controller.protection.inputs import ProtectionInputs

__all__ = [
    "Check",
    "CheckConfig",
    "LevelConfig",
    "Protection",
    "ProtectionConfig",
    "ProtectionInputs",
    "ProtectionState",
    "parse_protection",
]
