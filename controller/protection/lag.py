"""A signal and its value some time ago, without a history buffer.

Two snapshots are kept: a change is always taken against the older one, which is between
half a window and a whole window old (longer while a snapshot is withheld), so a step in
the signal stays visible for at least half a window.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Lag:
    older: np.ndarray | None = None
    older_at: float = 0.0
    newer: np.ndarray | None = None
    newer_at: float = 0.0

    def advance(self, value: np.ndarray, now: float, half_window: float, allowed: bool) -> Lag:
        """Take a snapshot when the newer one is half a window old and ``allowed``."""
        if self.newer is None or self.newer.shape != value.shape:
            return Lag(None, now, value.copy(), now)
        if allowed and now - self.newer_at >= half_window:
            return Lag(self.newer, self.newer_at, value.copy(), now)
        return self

    def change(self, value: np.ndarray) -> np.ndarray | None:
        """``value`` minus the older snapshot; None until there is one."""
        return None if self.older is None else value - self.older
