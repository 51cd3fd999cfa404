"""Limits: CCL/DCL/CVL/DVL from derating tables, and the SOC estimate they use."""

from controller.limits.config import (
    Curve,
    DirectionTables,
    LimitsConfig,
    SocConfig,
    parse_limits,
    parse_soc,
)
from controller.limits.derating import Derating, LimitInputs, Limits, LimitsState
from controller.limits.soc import SocEstimator, SocInputs, SocSource, SocState

__all__ = [
    "Curve",
    "Derating",
    "DirectionTables",
    "LimitInputs",
    "Limits",
    "LimitsConfig",
    "LimitsState",
    "SocConfig",
    "SocEstimator",
    "SocInputs",
    "SocSource",
    "SocState",
    "parse_limits",
    "parse_soc",
]
