"""The fault table as arrays: rows are the three levels, columns the enabled checks.

Every value is compared in one common form, "violated above": an under-check compares its
negated value against its negated thresholds and a flag check compares 1.0 or 0.0 against
0.5, so one comparison judges any mix of (level, check) pairs. A level a check does not
configure never violates, so its debounce row stays empty.

`Layout` places every (check, element) pair of one pack at one flat entry index, check by
check in definition order: the debounce state of the whole table is one sparse array over
these entries, and an entry's check is found by a binary search over the offsets.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from controller.adapters.base import Level
from controller.protection.cell_plausibility import groups
from controller.protection.checks import SPECS, Check, CheckSpec, Direction
from controller.protection.config import ProtectionConfig

ROWS = (Level.WARNING, Level.ALARM, Level.FAULT)
_FLAG_THRESHOLD = 0.5  # flags are compared as 1.0 (set) or 0.0


@dataclass(frozen=True, eq=False)
class Table:
    """The enabled checks' levels; arrays are (rows, checks) unless stated."""

    checks: tuple[Check, ...]
    specs: tuple[CheckSpec, ...]
    sign: np.ndarray  # (C,) +1 for over- and flag checks, -1 for under-checks
    threshold: np.ndarray  # violated above this (common form)
    release: np.ndarray  # clear condition: at or below this (common form)
    shown: np.ndarray  # the configured threshold as events report it; NaN for flags
    configured: np.ndarray  # bool
    loosest: np.ndarray  # (C,) the least severe configured threshold (common form)
    top: np.ndarray  # (C,) row of the most severe configured level
    set_us: np.ndarray  # int64
    clear_us: np.ndarray  # int64
    latch: np.ndarray  # (rows,) bool: the fault level latches

    @property
    def size(self) -> int:
        return len(self.checks)


def build_table(config: ProtectionConfig) -> Table:
    """The arrays of every enabled check of ``config``."""
    cfgs = [c for c in config.checks.values() if c.enabled]
    shape = (len(ROWS), len(cfgs))
    threshold = np.full(shape, np.inf)
    release = np.full(shape, np.inf)
    shown = np.full(shape, np.nan)
    configured = np.zeros(shape, bool)
    set_us = np.zeros(shape, np.int64)
    clear_us = np.zeros(shape, np.int64)
    sign = np.ones(len(cfgs))
    for col, cfg in enumerate(cfgs):
        direction = SPECS[cfg.check].direction
        sign[col] = -1.0 if direction is Direction.LOW else 1.0
        for level, row_cfg in cfg.levels.items():
            row = ROWS.index(level)
            configured[row, col] = True
            set_us[row, col] = round(row_cfg.set_delay_ms * 1000)
            clear_us[row, col] = round(row_cfg.clear_delay_ms * 1000)
            if direction is Direction.FLAG:
                threshold[row, col] = release[row, col] = _FLAG_THRESHOLD
                continue
            assert row_cfg.threshold is not None
            shown[row, col] = row_cfg.threshold
            threshold[row, col] = sign[col] * row_cfg.threshold
            release[row, col] = sign[col] * row_cfg.threshold - row_cfg.hysteresis
    rows = np.arange(len(ROWS))[:, None]
    return Table(
        checks=tuple(c.check for c in cfgs),
        specs=tuple(SPECS[c.check] for c in cfgs),
        sign=sign,
        threshold=threshold,
        release=release,
        shown=shown,
        configured=configured,
        loosest=threshold.min(axis=0),
        top=np.where(configured, rows, -1).max(axis=0),
        set_us=set_us,
        clear_us=clear_us,
        latch=np.array([level is Level.FAULT for level in ROWS]),
    )


@dataclass(frozen=True, eq=False)
class Layout:
    """Flat entry indices of one pack's (check, element) pairs."""

    key: tuple[int, int, int]  # (cells, sensors, modules)
    offsets: np.ndarray  # (C + 1,) int64, first entry of each check, then the total

    def slots_of(self, entries: np.ndarray) -> np.ndarray:
        """The check (column of the table) of each entry."""
        return np.searchsorted(self.offsets, entries, "right") - 1

    def bounds(self, entries: np.ndarray) -> np.ndarray:
        """(C + 1,) positions in sorted ``entries`` where each check's entries begin."""
        return np.searchsorted(entries, self.offsets)


def build_layout(table: Table, cells: int, sensors: int, modules: int) -> Layout:
    sizes = {
        "cell": cells,
        "sensor": sensors,
        "module": modules,
        None: 1,
    }
    counts = []
    for check, spec in zip(table.checks, table.specs, strict=True):
        if check is Check.INVALID_MEASUREMENT:
            counts.append(cells + sensors + modules)
        elif check is Check.TEMPERATURE_MODULE_SPREAD:
            counts.append(groups(sensors, modules))
        else:
            counts.append(sizes[spec.element])
    offsets = np.concatenate(([0], np.cumsum(counts, dtype=np.int64)))
    return Layout((cells, sensors, modules), offsets)
