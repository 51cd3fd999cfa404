"""The CAN contract: checked-in DBC files, the topology -> DBC generator, the E2E profile."""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def path(name: str) -> Path:
    """Path of a DBC file shipped in this package, e.g. ``path("canbms_slaves.dbc")``."""
    return Path(str(resources.files(__name__).joinpath(name)))
