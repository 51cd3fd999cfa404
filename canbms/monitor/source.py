"""Where the monitor's frames come from: open buses read on python-can's notifier threads,
and the state store's event history read without writing to it."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from pathlib import Path

import can

from controller.shell.store import Store

STATE_FILE = "canbms-state.sqlite"  # as canbms run names it in state_dir


class BusSource:
    """Every frame of ``buses`` (by name) since the last `drain`. It never sends."""

    def __init__(self, buses: Mapping[str, can.BusABC]) -> None:
        self.buses = dict(buses)
        self._readers = {name: can.BufferedReader() for name in self.buses}
        self._notifiers = [
            can.Notifier(bus, [self._readers[name]], timeout=0.1)
            for name, bus in self.buses.items()
        ]

    def drain(self) -> dict[str, list[can.Message]]:
        out: dict[str, list[can.Message]] = {}
        for name, reader in self._readers.items():
            out[name] = list(iter(lambda r=reader: r.get_message(0), None))
        return out

    def close(self) -> None:
        for notifier in self._notifiers:
            notifier.stop()
        for bus in self.buses.values():
            bus.shutdown()


def read_history(state_dir: Path, limit: int = 50) -> list[tuple[float, str, str, str]]:
    """The newest events of the state store in ``state_dir``, opened read-only (the controller
    keeps writing it); empty while there is no store."""
    path = state_dir / STATE_FILE
    if not path.exists():
        return []
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error:
        return []
    store = Store(db, path)
    try:
        return store.history(limit)
    except sqlite3.Error:
        return []  # a store that is being created or migrated: next time
    finally:
        store.close()
