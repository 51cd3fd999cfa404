"""Reopening a bus that went away, off the control loop, with backoff.

A USB adapter that is pulled and plugged back, or a python-can-remote server that restarts,
leaves the old bus object failing for good: only a new one reads again. Opening can take
seconds (a driver, a websocket handshake), so it runs on its own thread; the attempts back
off from ``first_delay`` to ``max_delay`` so a bus that stays away costs almost nothing.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import can

log = logging.getLogger(__name__)

OpenBus = Callable[[str], can.BusABC]


class Reconnector:
    """Tries to open a new bus by name when asked and due; hands it to ``on_open``."""

    def __init__(self, open_bus: OpenBus, first_delay: float = 0.5, max_delay: float = 5.0):
        self.open_bus = open_bus
        self.first_delay = first_delay
        self.max_delay = max_delay
        self.attempts = 0
        self._next: dict[str, tuple[float, float]] = {}  # name -> (next attempt, delay)
        self._busy: set[str] = set()
        self._lock = threading.Lock()

    def poke(self, name: str, now: float, on_open: Callable[[str, can.BusABC], None]) -> None:
        """The bus ``name`` is failing at ``now``: start an attempt when one is due."""
        with self._lock:
            when, delay = self._next.setdefault(name, (now + self.first_delay, self.first_delay))
            if name in self._busy or now < when:
                return
            self._busy.add(name)
            self._next[name] = (now + delay, min(2 * delay, self.max_delay))
        threading.Thread(
            target=self._attempt, args=(name, on_open), name=f"reopen-{name}", daemon=True
        ).start()

    def forget(self, name: str) -> None:
        """The bus works again: the next outage starts from the first delay."""
        with self._lock:
            self._next.pop(name, None)

    def _attempt(self, name: str, on_open: Callable[[str, can.BusABC], None]) -> None:
        self.attempts += 1
        try:
            bus = self.open_bus(name)
        except Exception as exc:  # noqa: BLE001 - any driver error: try again later
            log.debug("reopening bus %r failed: %s", name, exc)
        else:
            on_open(name, bus)
        finally:
            with self._lock:
                self._busy.discard(name)
