"""Watching a device's keep-alive frames: loss is logged early, limits are cut only much later.

Storage inverters answer the BMS with a keep-alive (0x305 / 0x307) whose period varies by
vendor and which may pause while the inverter restarts; a BMS that faults on one missed frame
trips healthy systems. So there are two thresholds: after ``loss_after`` seconds without a
frame the loss is logged; after ``timeout`` (minutes) the limits are reduced to ``fraction``
of what they were at that moment, until the keep-alive returns.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum

from controller.adapters.base import Level, LimitRequest
from controller.diagnosis.events import Event

LOST = "inverter_keepalive_lost"  # catalogue IDs
CAPPED = "inverter_limits_capped"


class Link(Enum):
    WAITING = "waiting"  # no frame yet since start
    PRESENT = "present"
    LOST = "lost"  # logged, limits untouched
    TIMED_OUT = "timed_out"  # limits reduced


@dataclass(frozen=True)
class KeepAliveConfig:
    loss_after: float = 10.0
    timeout: float = 600.0
    fraction: float = 0.0


@dataclass(frozen=True)
class KeepAliveState:
    link: Link = Link.WAITING
    since: float | None = None  # start of monitoring, or time of the last frame
    max_ccl: float | None = None
    max_dcl: float | None = None


def watch_link(
    config: KeepAliveConfig,
    state: KeepAliveState,
    seen: bool,
    now: float,
    ccl: float,
    dcl: float,
    who: str,
) -> tuple[KeepAliveState, tuple[Event, ...], LimitRequest]:
    """Advance the watch by one step; ``seen`` tells whether a keep-alive arrived since the last.

    Before the first frame the clock runs from the first step, so a device that never answers
    is treated like one that went silent.
    """
    if seen:
        events: tuple[Event, ...] = ()
        if state.link in (Link.LOST, Link.TIMED_OUT):
            gone = now - state.since if state.since is not None else 0.0
            back = f"{who}: keep-alive back after {gone:.1f} s, limits restored"
            events = (Event(now, LOST, Level.WARNING, "cleared", gone, detail=back),)
            if state.link is Link.TIMED_OUT:
                events += (Event(now, CAPPED, Level.ALARM, "cleared", gone, detail=back),)
        elif state.link is Link.WAITING:
            present = f"{who}: keep-alive present"
            events = (Event(now, "device_present", Level.OK, "set", detail=present),)
        return KeepAliveState(Link.PRESENT, now), events, LimitRequest()

    since = now if state.since is None else state.since
    state = replace(state, since=since)
    silent = now - since
    if state.link in (Link.WAITING, Link.PRESENT) and silent >= config.loss_after:
        state = replace(state, link=Link.LOST)
        lost = f"{who}: keep-alive lost (none for {silent:.1f} s)"
        events = (Event(now, LOST, Level.WARNING, "set", silent, config.loss_after, detail=lost),)
    else:
        events = ()
    if state.link is Link.LOST and silent >= config.timeout:
        state = replace(
            state,
            link=Link.TIMED_OUT,
            max_ccl=max(0.0, ccl) * config.fraction,
            max_dcl=max(0.0, dcl) * config.fraction,
        )
        capped = (
            f"{who}: keep-alive missing for {silent:.0f} s, limits reduced to "
            f"{config.fraction:.0%} (CCL {state.max_ccl:.1f} A, DCL {state.max_dcl:.1f} A)"
        )
        events += (Event(now, CAPPED, Level.ALARM, "set", silent, config.timeout, detail=capped),)
    if state.link is Link.TIMED_OUT:
        reason = f"{who}: keep-alive timeout"
        return state, events, LimitRequest(state.max_ccl, state.max_dcl, reason)
    return state, events, LimitRequest()
