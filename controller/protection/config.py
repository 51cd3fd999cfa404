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
from dataclasses import dataclass, make_dataclass
from typing import Any, ClassVar

from controller.adapters.base import Level
from controller.config.declare import load, setting
from controller.errors import ConfigError
from controller.protection.checks import SPECS, WINDOWS, Check, Direction
from controller.protection.plausibility_config import PlausibilityConfig

LEVEL_KEYS: dict[Level, str] = {
    Level.WARNING: "warning",
    Level.ALARM: "alarm",
    Level.FAULT: "fault",
}
MAX_DELAY_MS = 3_600_000.0
_THRESHOLD = "violated beyond this"
_HYSTERESIS = "clears this far back inside the threshold"


@dataclass(frozen=True)
class FlagLevelConfig:
    """One level of a flag check: only its delays."""

    threshold: ClassVar[float | None] = None
    hysteresis: ClassVar[float] = 0.0
    set_delay_ms: float = setting(
        ge=0.0, le=MAX_DELAY_MS, unit="ms", doc="the violation must last this long to set the level"
    )
    clear_delay_ms: float = setting(
        ge=0.0, le=MAX_DELAY_MS, unit="ms", doc="and be gone this long to clear it"
    )


@dataclass(frozen=True)
class LevelConfig(FlagLevelConfig):
    """One level of a threshold check (each check declares its unit and lowest threshold)."""

    threshold: float = setting(doc=_THRESHOLD)  # type: ignore[misc]
    hysteresis: float = setting(ge=0.0, doc=_HYSTERESIS)  # type: ignore[misc]


@dataclass(frozen=True)
class CheckConfig:
    """One check: enabled, and the levels it reports (any of warning, alarm, fault)."""

    check: ClassVar[Check]
    enabled: bool = setting(True, doc="explicit: a check is never disabled by leaving it out")

    @property
    def levels(self) -> dict[Level, FlagLevelConfig]:
        """The configured levels, in severity order."""
        found = {level: getattr(self, key) for level, key in LEVEL_KEYS.items()}
        return {level: cfg for level, cfg in found.items() if cfg is not None}

    def validate(self, path: str) -> None:
        if self.enabled and not self.levels:
            raise ConfigError(path, "an enabled check needs at least one of warning, alarm, fault")
        _check_order(self.levels, SPECS[self.check].direction, path)


def _check_section(check: Check) -> type:
    """The declared table of one check, with its unit and lowest sensible threshold."""
    spec = SPECS[check]
    level: type = FlagLevelConfig
    if spec.direction is not Direction.FLAG:
        level = make_dataclass(
            f"{check.name.title().replace('_', '')}Level",
            [
                ("threshold", float, setting(ge=spec.minimum, unit=spec.unit, doc=_THRESHOLD)),
                ("hysteresis", float, setting(ge=0.0, unit=spec.unit, doc=_HYSTERESIS)),
            ],
            bases=(LevelConfig,),
            frozen=True,
        )
    return make_dataclass(
        f"{check.name.title().replace('_', '')}Check",
        [(key, level | None, setting(None, doc=f"the {key} level")) for key in LEVEL_KEYS.values()],
        bases=(CheckConfig,),
        frozen=True,
        namespace={"check": check, "__doc__": _describe(check)},
    )


def _describe(check: Check) -> str:
    spec = SPECS[check]
    where = f"per {spec.element}" if spec.element else "for the pack"
    return f"{check.value.replace('_', ' ')}, {where}, in {spec.unit}"


class _ProtectionRules:
    """The fault table as a whole: every check by name, and the windows between them."""

    @property
    def checks(self) -> dict[Check, CheckConfig]:
        return {check: getattr(self, check.value) for check in Check}

    def validate(self, path: str) -> None:
        for low, high in WINDOWS:
            _check_window(self.checks[low], self.checks[high], path)


ProtectionConfig = make_dataclass(
    "ProtectionConfig",
    [
        (
            "charge_detect_current",
            float,
            setting(ge=0.0, unit="A", doc="above this current the pack is charging"),
        ),
        (
            "plausibility",
            PlausibilityConfig,
            setting(doc="the sensor model of the plausibility checks"),
        ),
        *((check.value, _check_section(check), setting(doc=_describe(check))) for check in Check),
    ],
    bases=(_ProtectionRules,),
    frozen=True,
    namespace={"__doc__": "The fault table: every check must appear (a preset gives them all)."},
)


def parse_protection(data: Mapping[str, Any], path: str = "protection") -> Any:
    """Validate a protection table (for example a preset) into a `ProtectionConfig`."""
    return load(ProtectionConfig, data, path)


def _check_order(levels: Mapping[Level, FlagLevelConfig], direction: Direction, where: str) -> None:
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
