"""Feed a recorded CAN log through the controller in virtual time.

`read_log` splits a recording (the convention of `hil.recording`) into what the controller
received and what the live controller sent. `replay` steps a fresh `Controller` at its
configured cycle on the log's own time base: time 0 is the first frame of the log, step
``k`` runs at ``k * cycle`` with every received frame stamped at or before it and after the
previous step. Times are counted in whole ticks of `RESOLUTION_S`, so the same log gives the
same batches, and the deterministic core the same events and frames, in whichever format it
was recorded. `play` sends a log's received frames onto live buses in their recorded rhythm
(python-can's `MessageSync`), for a controller on a bench.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import can
import numpy as np

from controller.core import Controller, StepResult
from controller.diagnosis.events import Event
from controller.frames import MAX_PAYLOAD, FrameBatch, OutFrame, frame_key
from hil.recording import RESOLUTION_S, LogWriter, csv_path, log_format


@dataclass(frozen=True)
class Sent:
    """A frame a controller sent, at ``time`` seconds from the start of the log."""

    time: float
    frame: OutFrame


@dataclass(frozen=True)
class Log:
    """A recording read back; times in seconds from its first frame (``start``, absolute)."""

    start: float
    bus_names: tuple[str, ...]
    received: FrameBatch  # in time order, stamped on the tick grid
    ticks: np.ndarray  # int64 tick of each received frame
    sent: tuple[Sent, ...]  # what the live controller sent, in time order
    end: float  # the time of the last frame of either direction


def produced_keys(controller: Controller) -> dict[str, frozenset[int]]:
    """Per bus, the frame keys the assembly sends: how a ``.csv`` log, which has no
    direction, tells sent frames from received ones."""
    keys = {name: set(k) for name, k in controller.status.produced().items()}
    if controller.balancing is not None:
        keys.setdefault("internal", set()).update(controller.balancing.produced())
    for stage in controller.stages:
        keys.setdefault(stage.bus, set()).update(stage.traffic.produces)
    return {name: frozenset(k) for name, k in keys.items()}


def _messages(path: Path, bus_names: Sequence[str]) -> Iterator[tuple[str, can.Message]]:
    """Every data frame of the log with the name of its bus."""
    if log_format(path) == ".csv":
        files = {bus: csv_path(path, bus) for bus in bus_names}
        if not any(f.exists() for f in files.values()):
            raise FileNotFoundError(f"no {', '.join(str(f) for f in files.values())}")
        for bus, file in files.items():
            if file.exists():
                yield from ((bus, m) for m in can.LogReader(file) if not m.is_error_frame)
        return
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such log")
    for msg in can.LogReader(path):
        if msg.is_error_frame or msg.is_remote_frame:
            continue
        yield _bus_of(msg.channel, bus_names, path), msg


def _bus_of(channel: object, bus_names: Sequence[str], path: Path) -> str:
    if isinstance(channel, str) and channel in bus_names:
        return channel
    if isinstance(channel, int) and 0 <= channel < len(bus_names):
        return bus_names[channel]
    numbered = ", ".join(f"{i + 1} {name}" for i, name in enumerate(bus_names))
    raise ValueError(
        f"{path}: a frame on channel {channel!r}, which is no configured bus "
        f"(numbered channels: {numbered}; named ones: the bus names)"
    )


def read_log(path: str | Path, controller: Controller) -> Log:
    """The recording at ``path`` on the buses of ``controller``'s configuration."""
    path = Path(path)
    bus_names = tuple(controller.config.buses)
    produced = produced_keys(controller) if log_format(path) == ".csv" else None
    rx: list[tuple[str, can.Message]] = []
    tx: list[tuple[str, can.Message]] = []
    for bus, msg in _messages(path, bus_names):
        if produced is None:
            is_rx = msg.is_rx
        else:
            is_rx = frame_key(msg.arbitration_id, msg.is_extended_id) not in produced.get(bus, ())
        (rx if is_rx else tx).append((bus, msg))
    if not rx and not tx:
        raise ValueError(f"{path}: no CAN frames")
    start = min(m.timestamp for _, m in (*rx, *tx))
    rx.sort(key=lambda item: item[1].timestamp)
    tx.sort(key=lambda item: item[1].timestamp)
    ticks = np.array([_tick(m.timestamp - start) for _, m in rx], np.int64)
    received = _batch(rx, bus_names).restamped(ticks * RESOLUTION_S)
    sent = tuple(
        Sent(
            _tick(m.timestamp - start) * RESOLUTION_S,
            OutFrame(m.arbitration_id, bytes(m.data), bus, m.is_extended_id, m.is_fd),
        )
        for bus, m in tx
    )
    end = _tick(max(m.timestamp for _, m in (*rx, *tx)) - start) * RESOLUTION_S
    return Log(start, bus_names, received, ticks, sent, end)


def _tick(seconds: float) -> int:
    return round(seconds / RESOLUTION_S)


def _batch(frames: list[tuple[str, can.Message]], bus_names: Sequence[str]) -> FrameBatch:
    if not frames:
        return FrameBatch.empty()
    batch = FrameBatch.from_messages([m for _, m in frames], bus=bus_names[0])
    index = {name: i for i, name in enumerate(bus_names)}
    return FrameBatch(
        ids=batch.ids,
        dlc=batch.dlc,
        data=batch.data,
        timestamps=batch.timestamps,
        bus=np.array([index[bus] for bus, _ in frames], np.uint8),
        extended=batch.extended,
        bus_names=tuple(bus_names),
    )


@dataclass(frozen=True)
class Replayed:
    """What the controller did with a log: its events and its frames, in step order."""

    events: tuple[Event, ...]
    frames: tuple[Sent, ...]
    steps: int


def replay(
    controller: Controller,
    log: Log,
    on_step: Callable[[float, StepResult], None] | None = None,
) -> Replayed:
    """Step ``controller`` from its initial state through ``log`` (see the module doc)."""
    cycle = _tick(controller.config.cycle_s)
    if cycle < 1:
        raise ValueError(f"cycle_s {controller.config.cycle_s} is below the log resolution")
    steps = _tick(log.end) // cycle + 1
    bounds = np.searchsorted(log.ticks, np.arange(steps, dtype=np.int64) * cycle, side="right")
    state = controller.initial_state(0.0)
    events: list[Event] = []
    frames: list[Sent] = []
    first = 0
    for k, last in enumerate(bounds.tolist()):
        now = k * cycle * RESOLUTION_S
        result = controller.step(state, log.received.select(np.arange(first, last)), now)
        state, first = result.state, last
        events.extend(result.events)
        frames.extend(Sent(now, frame) for frame in result.frames)
        if on_step is not None:
            on_step(now, result)
    return Replayed(tuple(events), tuple(frames), steps)


def write_frames(path: str | Path, log: Log, frames: Sequence[Sent]) -> None:
    """``frames`` (sent on the buses of ``log``) as a new log, on the log's absolute time."""
    writer = LogWriter(path, log.bus_names)
    index = {name: i for i, name in enumerate(log.bus_names)}
    try:
        for sent in frames:
            writer.write(index[sent.frame.bus], _message(sent.frame), False, log.start + sent.time)
    finally:
        writer.stop()


def _message(frame: OutFrame) -> can.Message:
    return can.Message(
        arbitration_id=frame.arbitration_id,
        data=frame.data[:MAX_PAYLOAD],
        is_extended_id=frame.is_extended_id,
        is_fd=frame.is_fd,
    )


def play(log: Log, buses: Mapping[str, can.BusABC]) -> int:
    """Send the frames the controller received in ``log`` onto ``buses`` (by bus name), in
    the recorded rhythm; the number sent. Frames of a bus not in ``buses`` are left out."""
    received = log.received
    count = 0
    for msg in can.MessageSync(_received_messages(received)):
        bus = buses.get(msg.channel)
        if bus is not None:
            bus.send(msg)
            count += 1
    return count


def _received_messages(batch: FrameBatch) -> Iterator[can.Message]:
    """The frames of ``batch`` as python-can messages, each with its bus name as channel."""
    for i in range(len(batch)):
        dlc = int(batch.dlc[i])
        yield can.Message(
            timestamp=float(batch.timestamps[i]),
            arbitration_id=int(batch.ids[i]),
            data=bytes(batch.data[i, :dlc]),
            is_extended_id=bool(batch.extended[i]),
            is_fd=dlc > 8,
            channel=batch.bus_names[int(batch.bus[i])],
        )
