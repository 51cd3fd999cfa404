"""Measured values the controller acts on, with the validity and age of every element.

An element is usable only when its source said it was valid *and* it is fresh: an
element never written has ``updated_at = -inf`` and is therefore stale forever. All
named arrays share flat storage so the ingest can update any mix of them with one
scatter.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass

import numpy as np

from controller.errors import ConfigError


@dataclass(frozen=True)
class MeasuredArray:
    """Values of one quantity (e.g. every cell voltage), as views into shared storage."""

    value: np.ndarray  # float64
    reported_valid: np.ndarray  # bool: the source did not flag the value
    updated_at: np.ndarray  # float64 seconds, -inf until first written

    def __len__(self) -> int:
        return int(self.value.shape[0])

    def age(self, now: float) -> np.ndarray:
        """Seconds since each element was last written (inf if never)."""
        return now - self.updated_at

    def valid(self, now: float, timeout: float | np.ndarray) -> np.ndarray:
        """Elements reported valid, finite and written at most ``timeout`` seconds ago."""
        return self.reported_valid & np.isfinite(self.value) & (self.age(now) <= timeout)

    def stats(self, now: float, timeout: float | np.ndarray) -> ArrayStats:
        """Statistics over the elements that are valid now."""
        return ArrayStats.of(self.value, self.valid(now, timeout))


class Measurements:
    """Named measured arrays with fixed sizes, e.g. ``{"cell_voltage": 96, ...}``.

    ``available`` names the arrays some source feeds (all by default). The others exist so
    every consumer finds the same layout, but nobody sends them: they are absent, not stale.
    """

    def __init__(self, sizes: Mapping[str, int], available: Collection[str] | None = None) -> None:
        offsets: dict[str, tuple[int, int]] = {}
        total = 0
        for name, size in sizes.items():
            if isinstance(size, bool) or not isinstance(size, int) or size < 1:
                raise ConfigError(
                    f"targets.{name}", f"size must be a positive integer, not {size!r}"
                )
            offsets[name] = (total, size)
            total += size
        self._offsets = offsets
        self.available = frozenset(offsets if available is None else available) & set(offsets)
        self.value = np.full(total, np.nan)
        self.reported_valid = np.zeros(total, bool)
        self.updated_at = np.full(total, -np.inf)
        self._arrays = {
            name: MeasuredArray(
                self.value[start : start + size],
                self.reported_valid[start : start + size],
                self.updated_at[start : start + size],
            )
            for name, (start, size) in offsets.items()
        }

    @property
    def layout(self) -> tuple[tuple[str, int, int], ...]:
        """(name, offset, size) of every array in the flat storage."""
        return tuple((name, start, size) for name, (start, size) in self._offsets.items())

    def offset(self, name: str) -> int:
        return self._offsets[name][0]

    def __getitem__(self, name: str) -> MeasuredArray:
        return self._arrays[name]

    def __contains__(self, name: object) -> bool:
        return name in self._arrays

    def __iter__(self) -> Iterator[str]:
        return iter(self._arrays)

    def __len__(self) -> int:
        return len(self._arrays)


@dataclass(frozen=True)
class ArrayStats:
    """Min/max/mean/sum/spread over valid elements; positions index the original array.

    With no valid element every statistic is NaN, positions are -1 and ``valid`` is
    False, so callers must treat the quantity as missing rather than crash.
    """

    count: int
    minimum: float
    maximum: float
    mean: float
    total: float
    argmin: int
    argmax: int

    @property
    def valid(self) -> bool:
        return self.count > 0

    @property
    def spread(self) -> float:
        return self.maximum - self.minimum

    @classmethod
    def of(cls, values: np.ndarray, valid: np.ndarray) -> ArrayStats:
        count = int(np.count_nonzero(valid))
        if count == 0:
            return cls(0, np.nan, np.nan, np.nan, np.nan, -1, -1)
        if count == values.size:  # the healthy case: no masked copies of the whole array
            argmin, argmax, total = int(values.argmin()), int(values.argmax()), float(values.sum())
        else:
            argmin = int(np.argmin(np.where(valid, values, np.inf)))
            argmax = int(np.argmax(np.where(valid, values, -np.inf)))
            total = float(np.sum(values, where=valid))
        return cls(
            count, values.item(argmin), values.item(argmax), total / count, total, argmin, argmax
        )
