"""The controller's state store: one SQLite file that survives a kill -9 and a restart.

It keeps what protects people and what the pack needs (`controller.persisted.Persisted`:
latched faults, SOC), the event history, and the control loop's cumulative counters (late
cycles, overruns, lost frames: `controller.shell.supervision.RuntimeStats`) across restarts.
SQLite in WAL mode makes every committed transaction atomic, so the file is never half
written whenever the process dies.
``synchronous = NORMAL`` is enough in WAL mode: a killed process loses nothing it committed
(the operating system holds the pages), and a power cut can lose only the last transactions,
never the file's consistency; ``FULL`` would add an fsync to every commit, on the control
machine's disk, for no gain against a kill.

Writing is done by a `StoreWriter` thread from a bounded queue, so a control cycle never waits
on the disk; when the queue is full the newest request is dropped and counted (the next one
carries the same state again).
"""

from __future__ import annotations

import json
import queue
import sqlite3
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

from controller.diagnosis.events import Event
from controller.errors import RuntimeFault
from controller.persisted import Persisted

# Each entry brings the schema from the version before it to its own index + 1.
MIGRATIONS = (
    """
    CREATE TABLE persisted (id INTEGER PRIMARY KEY CHECK (id = 1), saved_at REAL NOT NULL,
                            record TEXT NOT NULL);
    CREATE TABLE events (id INTEGER PRIMARY KEY, time REAL NOT NULL, wall REAL NOT NULL,
                         diagnosis TEXT NOT NULL, level INTEGER NOT NULL, kind TEXT NOT NULL,
                         value REAL, threshold REAL, element_kind TEXT, elements TEXT,
                         detail TEXT NOT NULL);
    """,
    """
    CREATE TABLE runtime_counters (name TEXT PRIMARY KEY, value REAL NOT NULL);
    """,
)
QUEUE_SIZE = 256
_Request = tuple[Persisted | None, tuple[Event, ...], Mapping[str, float] | None]


class Store:
    """The state file; open it with `Store.open`, which applies the migrations it lacks."""

    def __init__(self, connection: sqlite3.Connection, path: Path) -> None:
        self._db = connection
        self.path = path

    @classmethod
    def open(cls, path: str | Path) -> Store:
        path = Path(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = NORMAL")
            _migrate(db)
        except (OSError, sqlite3.Error) as exc:
            raise RuntimeFault(f"state store {path}: {exc}") from exc
        return cls(db, path)

    @property
    def version(self) -> int:
        return _version(self._db)

    def load(self) -> Persisted | None:
        """What the last run saved; None for a new store."""
        row = self._db.execute("SELECT record FROM persisted WHERE id = 1").fetchone()
        if row is None:
            return None
        return Persisted.from_record(json.loads(row[0]))

    def save(self, persisted: Persisted, counters: Mapping[str, float] | None = None) -> None:
        """The persisted record and, when given, the runtime counters, in one transaction."""
        record = persisted.to_record()
        with self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO persisted (id, saved_at, record) VALUES (1, ?, ?)",
                (time.time(), json.dumps(record)),
            )
            if counters is not None:
                self._db.executemany(
                    "INSERT OR REPLACE INTO runtime_counters (name, value) VALUES (?, ?)",
                    counters.items(),
                )

    def counters(self) -> dict[str, float]:
        """The runtime counters the last save wrote, by name; empty for a new store."""
        return dict(self._db.execute("SELECT name, value FROM runtime_counters").fetchall())

    def append(self, events: Iterable[Event]) -> None:
        rows = [
            (
                e.time,
                time.time(),
                e.diagnosis,
                int(e.level),
                e.kind,
                None if e.value is None or e.value != e.value else e.value,
                e.threshold,
                e.element_kind,
                None if e.elements is None else json.dumps(np.asarray(e.elements).tolist()),
                e.detail,
            )
            for e in events
        ]
        with self._db:
            self._db.executemany(
                "INSERT INTO events (time, wall, diagnosis, level, kind, value, threshold, "
                "element_kind, elements, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )

    def history(self, limit: int = 100) -> list[tuple[float, str, str, str]]:
        """The newest events, oldest first: (time, diagnosis, kind, detail)."""
        rows = self._db.execute(
            "SELECT time, diagnosis, kind, detail FROM events ORDER BY id DESC LIMIT ?", (limit,)
        ).fetchall()
        return list(reversed(rows))

    def close(self) -> None:
        self._db.close()


class StoreWriter(threading.Thread):
    """Writes on its own thread what the control loop hands it; never blocks the loop."""

    def __init__(self, store: Store) -> None:
        super().__init__(name="canbms-store", daemon=True)
        self.store = store
        self.dropped = 0
        self.errors = 0
        self.last_error: BaseException | None = None
        self._queue: queue.Queue[_Request | None] = queue.Queue(QUEUE_SIZE)

    def submit(
        self,
        persisted: Persisted | None,
        events: tuple[Event, ...] = (),
        counters: Mapping[str, float] | None = None,
    ) -> None:
        """Queue a write; ``counters`` are saved with ``persisted``, in its transaction."""
        try:
            self._queue.put_nowait((persisted, events, counters))
        except queue.Full:
            self.dropped += 1

    def run(self) -> None:
        while (item := self._queue.get()) is not None:
            persisted, events, counters = item
            try:
                if events:
                    self.store.append(events)
                if persisted is not None:
                    self.store.save(persisted, counters)
            except sqlite3.Error as exc:  # a full disk must not stop the writer
                self.errors += 1
                self.last_error = exc

    def finish(self, timeout: float = 2.0) -> None:
        """Write what is queued, then stop and close the store."""
        self._queue.put(None)
        self.join(timeout)
        self.store.close()


def _migrate(db: sqlite3.Connection) -> None:
    """Bring the schema up to date. Each migration takes the write lock first and reads the
    version again under it: two processes opening a new store at once (a restarted
    controller and a tool reading it) apply each migration once, the second one waits."""
    if _version(db) == len(MIGRATIONS):
        return
    for number, script in enumerate(MIGRATIONS, start=1):
        db.execute("BEGIN IMMEDIATE")
        try:
            version = _version(db)
            if version > len(MIGRATIONS):
                raise sqlite3.DatabaseError(
                    f"schema version {version} is newer than this canbms ({len(MIGRATIONS)})"
                )
            if version < number:
                for statement in filter(str.strip, script.split(";")):
                    db.execute(statement)
                db.execute(f"PRAGMA user_version = {number}")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise


def _version(db: sqlite3.Connection) -> int:
    return int(db.execute("PRAGMA user_version").fetchone()[0])
