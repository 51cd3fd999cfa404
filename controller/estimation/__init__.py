"""State of health: per-cell capacity and resistance measured from the cells' own data."""

from controller.estimation.config import SohConfig
from controller.estimation.soh import CellHealth, SohEstimator, SohState

__all__ = ["CellHealth", "SohConfig", "SohEstimator", "SohState"]
