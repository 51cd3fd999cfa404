"""The ``[security]`` table: how the EMS request is confirmed before it closes or resets, and
which sources may reset a latched fault."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from controller.config.declare import setting

ResetSource = Literal["ems", "canopen"]  # EMS_FaultReset (also canbms reset); CiA 418 2101h


@dataclass(frozen=True)
class SecurityConfig:
    """Settings of the command gate (``controller.security.gate``)."""

    key_file: Path | None = setting(
        None,
        doc="shared key (hex, 16-64 bytes, readable by its owner only) authenticating "
        "EMS_StateRequest through EMS_StateRequestAuth; none: no authentication, "
        "confirm_frames instead",
    )
    auth_timeout_ms: float = setting(
        300.0, ge=10.0, le=10_000.0, unit="ms",
        doc="with key_file: an authenticated request to close or reset acts for this long",
    )  # fmt: skip
    confirm_frames: int = setting(
        3, ge=1, le=50,
        doc="consecutive good EMS_StateRequest frames, with no rejected one between, before a "
        "request to close the contactors or a fault reset acts",
    )  # fmt: skip
    confirm_span_ms: float = setting(
        150.0, ge=0.0, le=10_000.0, unit="ms",
        doc="the confirm_frames frames must span at least this long, so a burst of forged "
        "frames between two of the EMS's cannot confirm (the EMS's own frame breaks it)",
    )  # fmt: skip
    second_source_changes: int = setting(
        4, ge=2, le=100,
        doc="changes between accepted EMS_StateRequest frames and frames rejected for their "
        "counter within second_source_window_ms that mean a second sender (ems_second_source)",
    )  # fmt: skip
    second_source_window_ms: float = setting(
        1000.0, ge=100.0, le=60_000.0, unit="ms",
        doc="window in which second_source_changes are counted",
    )  # fmt: skip
    second_source_hold_ms: float = setting(
        5000.0, ge=0.0, le=600_000.0, unit="ms",
        doc="standby is held this long after the last sign of a second sender",
    )  # fmt: skip

    reset_sources: tuple[ResetSource, ...] = setting(
        ("ems",), min_items=1, unique=True,
        doc="who may reset latched faults: ems (EMS_FaultReset in EMS_StateRequest, which "
        "canbms reset sends too), canopen (object 2101h of the CiA 418 node, written by any "
        "SDO client); a request from another source is refused and logged "
        "(fault_reset_source_refused)",
    )  # fmt: skip

    @property
    def auth_timeout_s(self) -> float:
        return self.auth_timeout_ms / 1000.0

    @property
    def span_s(self) -> float:
        return self.confirm_span_ms / 1000.0

    @property
    def window_s(self) -> float:
        return self.second_source_window_ms / 1000.0

    @property
    def hold_s(self) -> float:
        return self.second_source_hold_ms / 1000.0
