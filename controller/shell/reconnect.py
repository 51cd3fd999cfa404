"""Reopening a bus that went away, off the control loop, with backoff.

A USB adapter that is pulled and plugged back, or a python-can-remote server that restarts,
leaves the old bus object failing for good: only a new one reads again. Opening can take
seconds (a driver, a websocket handshake), so it runs on its own thread; the attempts back
off from ``first_delay`` to ``max_delay`` so a bus that stays away costs almost nothing. An
opened bus waits in `ready` until the control loop takes it over, so only that loop ever
changes which bus it reads and sends on.
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
        self._opened: list[tuple[str, can.BusABC]] = []
        self._lock = threading.Lock()

    def poke(self, name: str, now: float) -> None:
        """The bus ``name`` is failing at ``now``: start an attempt when one is due."""
        with self._lock:
            when, delay = self._next.setdefault(name, (now + self.first_delay, self.first_delay))
            if name in self._busy or now < when:
                return
            self._busy.add(name)
            self._next[name] = (now + delay, min(2 * delay, self.max_delay))
        threading.Thread(
            target=self._attempt, args=(name,), name=f"reopen-{name}", daemon=True
        ).start()

    def ready(self) -> list[tuple[str, can.BusABC]]:
        """The buses opened since the last call, by name, for the caller to take over."""
        with self._lock:
            opened, self._opened = self._opened, []
        return opened

    def forget(self, name: str) -> None:
        """The bus works again: the next outage starts from the first delay."""
        with self._lock:
            self._next.pop(name, None)

    def _attempt(self, name: str) -> None:
        self.attempts += 1
        try:
            bus = self.open_bus(name)
        except Exception as exc:  # noqa: BLE001 - any driver error: try again later
            log.debug("reopening bus %r failed: %s", name, exc)
            bus = None
        with self._lock:
            self._busy.discard(name)
            if bus is not None:
                self._opened.append((name, bus))


def retire(bus: can.BusABC) -> None:
    """Close a replaced bus on a thread of its own: a transport that went away can take a
    while to admit it, which the control loop must not wait for."""

    def close() -> None:
        try:
            bus.shutdown()
        except Exception:  # noqa: BLE001 - the old bus is gone anyway
            log.debug("closing a replaced bus failed", exc_info=True)

    threading.Thread(target=close, name="retire-bus", daemon=True).start()
