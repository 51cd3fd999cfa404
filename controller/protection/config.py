"""The fault table: per check up to three levels, each with threshold, delays and hysteresis.

```toml
charge_detect_current = 1.0   # A; above it the pack is charging

[cell_overvoltage.warning]
threshold = 4.17              # V
set_delay_ms = 500
clear_delay_ms = 1000
hysteresis = 0.02

[ems_timeout]
enabled = false               # explicit: a check is never disabled by leaving it out

[invalid_measurement.fault]   # flag checks have no threshold or hysteresis
set_delay_ms = 500
clear_delay_ms = 1000
```

Every check must appear. Levels may be omitted but an enabled check needs at least one.
Thresholds are ordered by severity: rising for over-checks (warning < alarm < fault), falling
for under-checks, and the under- and over-checks of one quantity must leave a window.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from controller.adapters.base import Level
from controller.config import fields
from controller.errors import ConfigError
from controller.protection.checks import SPECS, WINDOWS, Check, Direction

LEVEL_KEYS: dict[Level, str] = {
    Level.WARNING: "warning",
    Level.ALARM: "alarm",
    Level.FAULT: "fault",
}
MAX_DELAY_MS = 3_600_000.0


@dataclass(frozen=True)
class LevelConfig:
    threshold: float | None  # None for flag checks
    set_delay_ms: float
    clear_delay_ms: float
    hysteresis: float


@dataclass(frozen=True)
class CheckConfig:
    check: Check
    enabled: bool
    levels: dict[Level, LevelConfig]  # only the configured levels, in severity order


@dataclass(frozen=True)
class ProtectionConfig:
    checks: dict[Check, CheckConfig]
    charge_detect_current: float  # A; current above it means charging


def parse_protection(data: Mapping[str, Any], path: str = "protection") -> ProtectionConfig:
    """Validate a protection table (for example a preset) into a `ProtectionConfig`."""
    fields.unknown_keys(data, {c.value for c in Check} | {"charge_detect_current"}, path)
    detect = fields.number(data, "charge_detect_current", path, minimum=0.0)
    checks = {check: _parse_check(data, check, path) for check in Check}
    for low, high in WINDOWS:
        _check_window(checks[low], checks[high], path)
    return ProtectionConfig(checks=checks, charge_detect_current=detect)


def _parse_check(data: Mapping[str, Any], check: Check, path: str) -> CheckConfig:
    sub = fields.table(data, check.value, path)
    where = fields.join(path, check.value)
    fields.unknown_keys(sub, {"enabled", *LEVEL_KEYS.values()}, where)
    enabled = fields.boolean(sub, "enabled", where, default=True)
    spec = SPECS[check]
    levels: dict[Level, LevelConfig] = {}
    for level, key in LEVEL_KEYS.items():
        if key in sub:
            levels[level] = _parse_level(
                fields.table(sub, key, where), spec.direction, spec.minimum, fields.join(where, key)
            )
    if enabled and not levels:
        raise ConfigError(where, "an enabled check needs at least one of warning, alarm, fault")
    _check_order(levels, spec.direction, where)
    return CheckConfig(check=check, enabled=enabled, levels=levels)


def _parse_level(
    sub: Mapping[str, Any], direction: Direction, minimum: float | None, where: str
) -> LevelConfig:
    delays = {"set_delay_ms", "clear_delay_ms"}
    if direction is Direction.FLAG:
        fields.unknown_keys(sub, delays, where)
        threshold, hysteresis = None, 0.0
    else:
        fields.unknown_keys(sub, delays | {"threshold", "hysteresis"}, where)
        threshold = fields.number(sub, "threshold", where, minimum=minimum)
        hysteresis = fields.number(sub, "hysteresis", where, minimum=0.0)
    return LevelConfig(
        threshold=threshold,
        set_delay_ms=fields.number(sub, "set_delay_ms", where, minimum=0.0, maximum=MAX_DELAY_MS),
        clear_delay_ms=fields.number(
            sub, "clear_delay_ms", where, minimum=0.0, maximum=MAX_DELAY_MS
        ),
        hysteresis=hysteresis,
    )


def _check_order(levels: dict[Level, LevelConfig], direction: Direction, where: str) -> None:
    """Thresholds must grow more severe from warning to fault."""
    if direction is Direction.FLAG:
        return
    present = list(levels.items())
    for (lo_level, lo), (hi_level, hi) in zip(present, present[1:], strict=False):
        assert lo.threshold is not None and hi.threshold is not None
        worse = (
            hi.threshold > lo.threshold
            if direction is Direction.HIGH
            else (hi.threshold < lo.threshold)
        )
        if not worse:
            relation = "above" if direction is Direction.HIGH else "below"
            raise ConfigError(
                f"{where}.{LEVEL_KEYS[hi_level]}.threshold",
                f"{hi.threshold} must be {relation} the {LEVEL_KEYS[lo_level]} threshold "
                f"{lo.threshold}",
            )


def _check_window(low: CheckConfig, high: CheckConfig, path: str) -> None:
    """The loosest under-threshold must lie below the loosest over-threshold."""
    if not (low.enabled and high.enabled and low.levels and high.levels):
        return
    low_level, low_cfg = next(iter(low.levels.items()))
    high_level, high_cfg = next(iter(high.levels.items()))
    assert low_cfg.threshold is not None and high_cfg.threshold is not None
    if low_cfg.threshold >= high_cfg.threshold:
        raise ConfigError(
            f"{path}.{low.check.value}.{LEVEL_KEYS[low_level]}.threshold",
            f"{low_cfg.threshold} leaves no operating window below "
            f"{path}.{high.check.value}.{LEVEL_KEYS[high_level]}.threshold = "
            f"{high_cfg.threshold}",
        )
