"""Record every bus of a run into a CAN log file without ever holding up the cycle.

Each bus is wrapped in a `RecordingBus`: a received frame is handed over on python-can's
notifier thread that reads the bus, a sent frame by the thread that sent it; both only put
a tuple into a bounded queue. One writer thread feeds python-can's `SizedRotatingLogger`
(`Logger` for ``.mf4``), chosen by the file's extension. A full queue drops the frame and
counts it: a recording may lose frames, the controller never waits for a disk.

The log convention, shared with `hil.replay`: each frame carries the bus it was on as its
channel, the bus name in formats that store text (``.log``), the bus's position in the
recording's bus order in formats that store a number (``.blf``, ``.asc``, ``.mf4``; channel
1 in the file is the first bus). A ``.csv`` file has neither channel nor direction, so each
bus gets its own file, ``NAME.BUS.csv``. Received frames are marked Rx, sent frames Tx.
Timestamps are rounded to `RESOLUTION_S`, which every format keeps, so a run recorded in two
formats reads back to the same times.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import math
import queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import can

log = logging.getLogger(__name__)

RESOLUTION_S = 1e-5  # 10 us: what BLF's coarse clock and ASC's 6 decimals both keep
QUEUE_FRAMES = 100_000  # frames waiting for the disk before new ones are dropped
NAMED_CHANNELS = (".log",)  # formats that store the channel as text
ROTATING = (".asc", ".blf", ".csv", ".log")  # what python-can's SizedRotatingLogger writes


def formats() -> tuple[str, ...]:
    """The extensions a recording can be written in here (``.mf4`` needs asammdf)."""
    mf4 = (".mf4",) if importlib.util.find_spec("asammdf") is not None else ()
    return (".asc", ".blf", ".csv", ".log", *mf4)


def log_format(path: Path) -> str:
    """The extension of a log file this project writes, or ValueError naming the formats."""
    suffix = path.suffix.lower()
    if suffix not in formats():
        raise ValueError(
            f"cannot use {path.name!r}: the extension chooses the format, one of "
            + ", ".join(formats())
            + ("" if ".mf4" in formats() else " (.mf4 needs asammdf installed)")
        )
    return suffix


def csv_path(path: Path, bus: str) -> Path:
    """The file of one bus in a ``.csv`` recording."""
    return path.with_name(f"{path.stem}.{bus}.csv")


def quantised(timestamp: float) -> float:
    """A timestamp on the recording's grid of `RESOLUTION_S`."""
    return round(timestamp / RESOLUTION_S) * RESOLUTION_S


class LogWriter:
    """Frames of the named buses into one log file (one per bus for ``.csv``), on the
    calling thread; ``bus_names`` fixes the channel numbers, in order.

    Times never go backwards in the file: a frame handed over after a later one (frames of
    several threads meet in one queue) takes that one's time. python-can's writers each
    treat such a frame their own way (``.log`` holds the last time, ``.asc`` writes it as an
    absolute time, ``.blf`` clips it to the start); holding it here keeps them the same."""

    def __init__(self, path: str | Path, bus_names: Sequence[str], max_bytes: int = 0) -> None:
        self.path = Path(path)
        self.bus_names = tuple(bus_names)
        suffix = log_format(self.path)
        if max_bytes and suffix not in ROTATING:
            raise ValueError(f"{suffix} files cannot rotate")
        self._named = suffix in NAMED_CHANNELS
        paths = (
            [csv_path(self.path, bus) for bus in self.bus_names]
            if suffix == ".csv"
            else [self.path]
        )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._last = -math.inf  # time of the last frame written
        self._writers: list[can.Listener] = [
            can.SizedRotatingLogger(p, max_bytes=max_bytes) if suffix in ROTATING else can.Logger(p)
            for p in paths
        ]

    def write(self, index: int, msg: can.Message, is_rx: bool, timestamp: float) -> None:
        """One frame of the bus ``bus_names[index]``; ``msg`` itself is left untouched."""
        self._last = max(quantised(timestamp), self._last)
        record = can.Message(
            timestamp=self._last,
            arbitration_id=msg.arbitration_id,
            is_extended_id=msg.is_extended_id,
            is_remote_frame=msg.is_remote_frame,
            is_error_frame=msg.is_error_frame,
            is_fd=msg.is_fd,
            bitrate_switch=msg.bitrate_switch,
            dlc=msg.dlc,
            data=msg.data,
            channel=self.bus_names[index] if self._named else index,
            is_rx=is_rx,
            check=False,
        )
        self._writers[index if len(self._writers) > 1 else 0].on_message_received(record)

    def describe(self) -> str:
        """Where the frames go and how the channels map to the buses."""
        if len(self._writers) > 1 or self.path.suffix.lower() == ".csv":
            return ", ".join(str(csv_path(self.path, bus)) for bus in self.bus_names)
        if self._named:
            return f"{self.path} (channels named by bus)"
        channels = ", ".join(f"{i + 1} {name}" for i, name in enumerate(self.bus_names))
        return f"{self.path} (channel {channels})"

    def stop(self) -> None:
        for writer in self._writers:
            writer.stop()


class Recording:
    """`LogWriter`s (one per path: several formats at once) fed from a bounded queue by a
    thread of its own. ``say`` is told where the recording goes and, at `close`, what it
    recorded."""

    def __init__(
        self,
        paths: Sequence[str | Path],
        bus_names: Sequence[str],
        max_bytes: int = 0,
        capacity: int = QUEUE_FRAMES,
        say: Callable[[str], None] = log.info,
    ) -> None:
        self.writers = [LogWriter(path, bus_names, max_bytes) for path in paths]
        self.bus_names = tuple(bus_names)
        self.say = say
        self.written = 0
        self.dropped = 0  # frames lost because the queue was full or the writer failed
        self.error: BaseException | None = None
        self._lock = threading.Lock()
        self._queue: queue.Queue[tuple[int, can.Message, bool, float] | None] = queue.Queue(
            capacity
        )
        self._thread = threading.Thread(target=self._write, name="canbms-recording", daemon=True)
        self._thread.start()
        for writer in self.writers:
            say(f"  recording: {writer.describe()}")

    def wrap(self, name: str, bus: can.BusABC) -> can.BusABC:
        """``bus`` with every frame received or sent on it recorded as on the bus ``name``."""
        return RecordingBus(bus, self, self.bus_names.index(name))

    def wrap_all(self, buses: Mapping[str, can.BusABC]) -> dict[str, can.BusABC]:
        return {name: self.wrap(name, bus) for name, bus in buses.items()}

    def wrap_opener(self, opener: Callable[[str], can.BusABC]) -> Callable[[str], can.BusABC]:
        """An ``opener(name)`` whose buses are recorded too (a bus reopened after an outage)."""
        return lambda name: self.wrap(name, opener(name))

    def put(self, index: int, msg: can.Message, is_rx: bool, timestamp: float) -> None:
        """Queue one frame; never blocks (a full queue drops it and counts it)."""
        try:
            self._queue.put_nowait((index, msg, is_rx, timestamp))
        except queue.Full:
            self._drop()

    def close(self) -> None:
        """Write what is queued and close the files; say what was recorded."""
        self._queue.put(None)
        self._thread.join()
        for writer in self.writers:
            writer.stop()
        lost = f"{self.dropped} frames dropped" if self.dropped else "none dropped"
        failed = f" (writing failed: {self.error})" if self.error is not None else ""
        files = ", ".join(str(writer.path) for writer in self.writers)
        self.say(f"recorded {self.written} frames to {files}, {lost}{failed}")

    def _drop(self) -> None:
        with self._lock:  # notifier threads and the control loop may drop at once
            self.dropped += 1

    def _write(self) -> None:
        while (item := self._queue.get()) is not None:
            if self.error is not None:
                self._drop()
                continue
            try:
                for writer in self.writers:
                    writer.write(*item)
            except Exception as exc:  # noqa: BLE001 - a full disk must not end the run
                log.error("recording failed: %s; later frames are dropped", exc)
                self.error = exc
                self._drop()
            else:
                self.written += 1


class NoRecording:
    """Stands in for a recording when none was asked for: buses pass through untouched."""

    def wrap(self, name: str, bus: can.BusABC) -> can.BusABC:
        return bus

    def wrap_all(self, buses: Mapping[str, can.BusABC]) -> dict[str, can.BusABC]:
        return dict(buses)

    def wrap_opener(self, opener: Callable[[str], can.BusABC]) -> Callable[[str], can.BusABC]:
        return opener

    def close(self) -> None:
        """Nothing to close."""


class RecordingBus(can.BusABC):
    """The bus it wraps, recording what is received and what is sent, each stamped with this
    process's clock when it was received or sent; closing it closes the wrapped bus.

    A received frame is stamped when the reader thread gets it, not with the interface's
    timestamp: that is the instant the live controller judges staleness from, so a transport
    delay or a starved reader thread is in the log as the controller saw it, and a replay
    reaches the same timeouts."""

    def __init__(self, bus: can.BusABC, recording: Recording, index: int) -> None:
        self.wrapped = bus
        self.recording = recording
        self.index = index
        super().__init__(channel=bus.channel_info)

    @property
    def channel_info(self) -> str:  # type: ignore[override]
        return self.wrapped.channel_info

    @property
    def state(self) -> can.BusState:
        return self.wrapped.state

    def _recv_internal(self, timeout: float | None) -> tuple[can.Message | None, bool]:
        msg = self.wrapped.recv(timeout)
        if msg is not None:
            self.recording.put(self.index, msg, True, time.time())
        return msg, True

    def send(self, msg: can.Message, timeout: float | None = None) -> None:
        self.wrapped.send(msg, timeout)
        self.recording.put(self.index, msg, False, time.time())

    def shutdown(self) -> None:
        self.wrapped.shutdown()
        super().shutdown()


def add_record_arguments(parser: argparse.ArgumentParser) -> None:
    """``--record FILE`` and ``--record-max-bytes N``, the same for every command."""
    group = parser.add_argument_group("recording")
    group.add_argument(
        "--record",
        metavar="FILE",
        type=log_path,
        action="append",
        help="record every bus, received and sent frames, to FILE; the extension chooses "
        "the format: .blf, .asc, .log, .csv (one file per bus), .mf4 (with asammdf); repeat "
        "to write several at once",
    )
    group.add_argument(
        "--record-max-bytes",
        metavar="N",
        type=_bytes,
        default=0,
        help="start a new file when the recording reaches N bytes (the full one is renamed "
        "with a time and a number; not for .mf4); default: one file",
    )


def start_recording(
    args: argparse.Namespace, bus_names: Sequence[str], say: Callable[[str], None] = log.info
) -> Recording | NoRecording:
    """The recording ``--record`` asks for, started; one that does nothing without it."""
    if getattr(args, "record", None) is None:
        return NoRecording()
    return Recording(args.record, bus_names, max_bytes=args.record_max_bytes, say=say)


def log_path(text: str) -> Path:
    """An argument type: a log file whose extension names a format this project writes."""
    try:
        log_format(Path(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return Path(text)


def _bytes(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of bytes") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is negative")
    return value
