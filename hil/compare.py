"""Where a replay's frames differ from the frames the live controller sent.

A live controller and its replay see the same frames but not at the same instants (the live
one stamps a frame when it arrives and runs on its own schedule), so frames are compared by
the signals they carry, decoded with the DBC that defines them, within a time window: a
value of one side matches when the other side sent it no more than ``tolerance`` seconds
earlier or later: a state, a flag or a bit field exactly, a physical value (one with a unit)
when it lies within the values the other side sent in that window, give or take one least
significant bit (so a ramp sampled at other instants matches). A signal differs where its
values stay unmatched for longer than ``tolerance``: a single frame sampled a moment earlier
or later is no difference. Left out: alive counters and checksums (signals named
``...Counter``, ``...Crc``, ``...Checksum``), which differ by design, and the positions of
the extreme cell or sensor (``...Index``), which ties between equal readings decide. A frame
no DBC defines is compared byte for byte.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import cantools
import numpy as np

from controller.config.ingest import load_database
from controller.core import Controller
from controller.frames import frame_key
from hil.replay import Sent, produced_keys

SKIPPED_SUFFIXES = ("counter", "crc", "checksum", "index")
PAYLOAD = "payload"  # the one "signal" of a frame no DBC defines


@dataclass(frozen=True)
class Difference:
    """One signal (or a whole message) that differs, from ``time`` on, ``count`` times."""

    bus: str
    message: str
    signal: str
    time: float
    count: int
    live: str
    replayed: str

    def __str__(self) -> str:
        where = f"{self.bus} {self.message}" + (f".{self.signal}" if self.signal else "")
        return (
            f"t={self.time:8.3f} s  {where}: live {self.live}, replayed {self.replayed} "
            f"({self.count} frames differ)"
        )


@dataclass(frozen=True)
class Comparison:
    differences: tuple[Difference, ...]
    compared: int  # frames of both sides inside the window
    not_compared: tuple[str, ...]  # live frames no part of the core sends (the shell's own)
    until: float


def definitions(controller: Controller) -> dict[tuple[str, int], cantools.database.Message]:
    """The DBC message of each (bus, frame key) the assembly sends: master DBC frames under
    bus ``""`` (whichever bus they go out on), the slave DBC's (balancing) on ``internal``,
    each stage's on its bus."""
    sources = controller.config.dbc
    defined = {
        ("", frame_key(m.frame_id, m.is_extended_frame)): m
        for m in load_database(sources.master)[0].messages
    }
    defined.update(
        (("internal", frame_key(m.frame_id, m.is_extended_frame)), m)
        for m in load_database(sources.slaves)[0].messages
    )
    for stage in controller.stages:
        for encoder in getattr(stage, "encoders", {}).values():
            message = encoder.message
            defined[(stage.bus, frame_key(message.frame_id, message.is_extended_frame))] = message
    return defined


def compare(
    controller: Controller,
    live: Sequence[Sent],
    replayed: Sequence[Sent],
    until: float,
    tolerance: float = 0.3,
) -> Comparison:
    """The differences between ``live`` and ``replayed`` frames up to ``until`` seconds."""
    defined = definitions(controller)
    produced = produced_keys(controller)
    live_by = _by_message(s for s in live if s.time <= until)
    replayed_by = _by_message(s for s in replayed if s.time <= until)
    differences: list[Difference] = []
    not_compared = []
    for bus, key in sorted(live_by.keys() | replayed_by.keys()):
        message = defined.get((bus, key)) or defined.get(("", key))
        name = message.name if message is not None else f"0x{key & 0x1FFFFFFF:03X}"
        ours, theirs = live_by.get((bus, key), []), replayed_by.get((bus, key), [])
        if not theirs and key not in produced.get(bus, ()):
            not_compared.append(f"{name} on {bus}")
            continue
        if not ours or not theirs:
            first = (ours or theirs)[0].time
            differences.append(
                Difference(
                    bus,
                    name,
                    "",
                    first,
                    len(ours or theirs),
                    "sent" if ours else "not sent",
                    "sent" if theirs else "not sent",
                )
            )
            continue
        differences += _signal_differences(bus, name, message, ours, theirs, tolerance)
    differences.sort(key=lambda d: (d.time, d.bus, d.message, d.signal))
    compared = sum(map(len, live_by.values())) + sum(map(len, replayed_by.values()))
    return Comparison(tuple(differences), compared, tuple(not_compared), until)


def _by_message(frames: Iterable[Sent]) -> dict[tuple[str, int], list[Sent]]:
    grouped: dict[tuple[str, int], list[Sent]] = defaultdict(list)
    for sent in frames:
        grouped[
            (sent.frame.bus, frame_key(sent.frame.arbitration_id, sent.frame.is_extended_id))
        ].append(sent)
    return grouped


def _signal_differences(
    bus: str,
    name: str,
    message: cantools.database.Message | None,
    live: list[Sent],
    replayed: list[Sent],
    tolerance: float,
) -> list[Difference]:
    live_t = np.array([s.time for s in live])
    replayed_t = np.array([s.time for s in replayed])
    out = []
    for signal, slack, live_v, replayed_v, shown in _values(message, live, replayed):
        match = _within if slack else _equal
        bad_replayed = _unmatched(replayed_t, replayed_v, live_t, live_v, tolerance, slack, match)
        bad_live = _unmatched(live_t, live_v, replayed_t, replayed_v, tolerance, slack, match)
        lasting = _lasting(
            np.concatenate((replayed_t, live_t)),
            np.concatenate((bad_replayed, bad_live)),
            tolerance,
        )
        if lasting is None:
            continue
        at, count = lasting
        i = min(int(np.searchsorted(live_t, at)), len(live_t) - 1)
        j = min(int(np.searchsorted(replayed_t, at)), len(replayed_t) - 1)
        out.append(
            Difference(
                bus,
                name,
                signal,
                float(at),
                count,
                shown(live_v[i]),
                shown(replayed_v[j]),
            )
        )
    return out


def _values(
    message: cantools.database.Message | None, live: list[Sent], replayed: list[Sent]
) -> Iterable[tuple[str, float, np.ndarray, np.ndarray, Callable[[float], str]]]:
    """Per compared signal: its name, the raw difference still taken as equal, the raw
    values of either side and how to show one."""
    if message is None:
        payloads = sorted({bytes(s.frame.data) for s in (*live, *replayed)})
        codes = {p: i for i, p in enumerate(payloads)}
        yield (
            PAYLOAD,
            0.0,
            np.array([codes[bytes(s.frame.data)] for s in live], float),
            np.array([codes[bytes(s.frame.data)] for s in replayed], float),
            lambda code: payloads[int(code)].hex(" ") or "empty",
        )
        return
    decode = lambda s: message.decode(s.frame.data, decode_choices=False, scaling=False)  # noqa: E731
    live_raw = [decode(s) for s in live]
    replayed_raw = [decode(s) for s in replayed]
    for signal in message.signals:
        if signal.name.lower().endswith(SKIPPED_SUFFIXES):
            continue
        slack = 1.0 if signal.unit else 0.0
        yield (
            signal.name,
            slack,
            np.array([float(r[signal.name]) for r in live_raw]),
            np.array([float(r[signal.name]) for r in replayed_raw]),
            lambda raw, sig=signal: _shown(sig, raw),
        )


def _unmatched(
    t: np.ndarray,
    v: np.ndarray,
    other_t: np.ndarray,
    other_v: np.ndarray,
    tolerance: float,
    slack: float,
    match: Callable[[np.ndarray, float, float], bool],
) -> np.ndarray:
    """Where a value of one side has no match on the other side within the time window."""
    lo = np.searchsorted(other_t, t - tolerance, side="left")
    hi = np.searchsorted(other_t, t + tolerance, side="right")
    return np.array(
        [not match(other_v[a:b], x, slack) for a, b, x in zip(lo, hi, v, strict=True)], bool
    )


def _equal(window: np.ndarray, value: float, slack: float) -> bool:
    return bool((window == value).any())


def _within(window: np.ndarray, value: float, slack: float) -> bool:
    return window.size > 0 and window.min() - slack <= value <= window.max() + slack


def _lasting(
    times: np.ndarray, unmatched: np.ndarray, tolerance: float
) -> tuple[float, int] | None:
    """When values of both sides (``times``, ``unmatched``) stay unmatched for longer than
    ``tolerance`` without a matched value between them: the first such time and how many
    values those stretches hold. A single late or early value is jitter, not a difference."""
    order = np.argsort(times, kind="stable")
    times, unmatched = times[order], unmatched[order]
    edges = np.flatnonzero(np.diff(np.concatenate(([0], unmatched.astype(np.int8), [0]))))
    starts, ends = edges[::2], edges[1::2] - 1  # inclusive index ranges of unmatched runs
    lasting = times[ends] - times[starts] >= tolerance
    if not lasting.any():
        return None
    return float(times[starts[lasting][0]]), int((ends - starts + 1)[lasting].sum())


def _shown(sig: cantools.database.Signal, raw: float) -> str:
    """A raw value as its DBC names it, or in its unit."""
    if sig.choices and int(raw) in sig.choices:
        return str(sig.choices[int(raw)])
    value = raw * sig.scale + sig.offset
    return f"{value:g}{' ' + sig.unit if sig.unit else ''}"
