"""Fault reset requests: who asked, what they cleared, what stays latched and why.

A reset request comes from the EMS (``EMS_FaultReset``, held as long as the bit is set, so
``canbms reset`` and an EMS pulse look the same) or from a stage (the CiA 418 node's 2101h
written by SDO, one cycle). The pack core applies it every cycle it is held; each latch then
clears only when its cause is gone (`controller.core`). This module only keeps the books: a
request begins when a source starts asking (a bit held on is one request), is answered
*accepted* as soon as nothing is latched any more and the contactors have left FAULT, and
*refused* when its sources stop asking while something is still latched. Each of these is one
event, from the catalogue: ``fault_reset_requested``, ``fault_reset_accepted``,
``fault_reset_refused``. A source not in ``security.reset_sources`` is never applied
(`admitted`); each request it starts is one ``fault_reset_source_refused`` event.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from controller.diagnosis import Catalogue, Event

REQUESTED, ACCEPTED, REFUSED, SOURCE_REFUSED = (
    "fault_reset_requested",
    "fault_reset_accepted",
    "fault_reset_refused",
    "fault_reset_source_refused",
)
EMS = "ems"  # the source name of the EMS reset bit
ERROR_STATE = "error_state"  # the contactors held in FAULT with no diagnosis of their own left


@dataclass(frozen=True)
class OpenRequest:
    """A request not answered yet."""

    since: float
    sources: tuple[str, ...]
    latched: tuple[str, ...]  # what was latched when it began


@dataclass(frozen=True)
class ResetState:
    open: OpenRequest | None = None
    pending: frozenset[str] = frozenset()  # stages that asked in the last step: applied now
    held: frozenset[str] = frozenset()  # sources that asked in the last step


@dataclass(frozen=True)
class ResetAnswer:
    state: ResetState
    events: tuple[Event, ...]
    accepted: int  # requests answered in this step, for the life counters
    refused: int


def _names(items: tuple[str, ...] | frozenset[str]) -> str:
    return ", ".join(sorted(items)) if items else "nothing"


def admitted(asking: frozenset[str], allowed: tuple[str, ...]) -> frozenset[str]:
    """The sources asking now whose reset is applied: those ``security.reset_sources`` names."""
    return asking & frozenset(allowed)


def answer(
    state: ResetState,
    requesting: frozenset[str],
    latched_before: frozenset[str],
    latched_after: frozenset[str],
    reasons: Callable[[], Mapping[str, str]],
    stage_requests: frozenset[str],
    now: float,
    catalogue: Catalogue,
    refused: frozenset[str] = frozenset(),
) -> ResetAnswer:
    """Book one step: ``requesting`` asked now (and was applied), ``refused`` asked now and
    was not (not a configured source); ``latched_after`` is what the step left latched
    (``ERROR_STATE`` included); ``reasons`` says why, per latch."""
    events = [
        Event(
            now,
            SOURCE_REFUSED,
            catalogue[SOURCE_REFUSED].severity.level,
            "set",
            detail=f"source {source}: not in security.reset_sources; nothing reset",
        )
        for source in sorted(refused - state.held)
    ]
    request = state.open
    if requesting - state.held and request is None:  # a source starts asking
        request = OpenRequest(now, tuple(sorted(requesting)), tuple(sorted(latched_before)))
        detail = f"source {_names(requesting)}; latched: {_names(latched_before)}"
        events.append(
            Event(now, REQUESTED, catalogue[REQUESTED].severity.level, "set", detail=detail)
        )
    elif requesting and request is not None:  # held on, or joined by another source
        sources = tuple(sorted(set(request.sources) | requesting))
        request = OpenRequest(request.since, sources, request.latched)
    accepted = refused_count = 0
    if request is not None and (not latched_after or not requesting):
        cleared = frozenset(request.latched) - latched_after
        head = f"source {_names(request.sources)}; cleared: {_names(cleared)}"
        if not latched_after:
            accepted = 1
            diagnosis, detail = ACCEPTED, head
        else:
            refused_count = 1
            why = reasons()
            staying = "; ".join(
                f"{name}: {why.get(name, 'latched')}" for name in sorted(latched_after)
            )
            diagnosis, detail = REFUSED, f"{head}; stays latched: {staying}"
        events.append(
            Event(now, diagnosis, catalogue[diagnosis].severity.level, "set", detail=detail)
        )
        request = None
    shown = tuple(e for e in events if catalogue[e.diagnosis].enabled)
    held = requesting | refused
    return ResetAnswer(ResetState(request, stage_requests, held), shown, accepted, refused_count)
