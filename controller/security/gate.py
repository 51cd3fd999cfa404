"""The command gate between the decoded EMS request and the contactor sequence.

Per step it takes how many ``EMS_StateRequest`` frames the decoder accepted, and rejected
for their counter, since the last step, and the request the newest accepted frame carries:

* standby acts at once (it is always safe);
* with ``key_file``, a request to close or a fault reset acts only while the same command
  was authenticated by its ``EMS_StateRequestAuth`` within ``auth_timeout_ms``
  (``controller.security.auth``); a forged frame cannot carry a valid MAC;
* without a key, a request to close (discharge, charge) or a fault reset acts only once it
  has been seen
  in ``confirm_frames`` consecutive accepted frames with no frame rejected for its counter
  between (another sender's), spanning at least ``confirm_span_ms``; until then the gate
  asks standby (and no reset). A request already acting stays acting while it is
  repeated, so a lost or corrupted frame never opens closed contactors;
* accepted frames alternating with frames rejected for their counter (repeated, out of
  order, out of sequence), ``second_source_changes`` changes within the window, are what
  two interleaved senders look like (a hung EMS only repeats and changes once when it
  recovers, a lossy bus only skips): the diagnosis ``ems_second_source`` is set and the
  gate asks standby, without reset, until no change has been seen for
  ``second_source_hold_ms``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from cantools.database.can import Database

from controller.contactors import Request
from controller.diagnosis import Catalogue, Event
from controller.diagnosis.events import Kind
from controller.errors import ConfigError
from controller.frames import FrameBatch
from controller.ingest import IngestState
from controller.ingest.decoder import RejectReason
from controller.security.auth import Authenticator, AuthState
from controller.security.config import SecurityConfig
from dbc import secoc

SECOND_SOURCE = "ems_second_source"
_COUNTER_REASONS = np.array(
    (RejectReason.COUNTER_FROZEN, RejectReason.COUNTER_JUMP, RejectReason.COUNTER_OUT_OF_ORDER),
    np.intp,
)


@dataclass(frozen=True)
class GateState:
    """What the gate remembers: the decoder's totals at the last step and the streak."""

    accepted: int = 0  # the decoder's cumulative count of accepted frames of the source
    counter_rejected: int = 0  # ... of frames rejected for their counter
    streak: int = 0  # consecutive accepted frames carrying the request ``seen``
    reset_streak: int = 0  # consecutive accepted frames carrying the reset bit
    since: float = 0.0  # when the request streak started
    reset_since: float = 0.0  # when the reset streak started
    seen: Request = Request.STANDBY  # the request of the newest accepted frame
    acting: Request = Request.STANDBY  # the request passed on
    last: int = 0  # what the last step with EMS frames saw: 1 accepted, -1 rejected, 0 none
    changes: tuple[float, ...] = ()  # times of changes between accepted and rejected
    suspect_until: float = float("-inf")  # standby held until then
    auth: AuthState = AuthState()  # with a key: the last authenticated command


@dataclass(frozen=True)
class GateOutput:
    state: GateState
    request: Request
    reset: bool
    events: tuple[Event, ...]


class CommandGate:
    """Compiled once from the configuration; ``step`` is pure."""

    def __init__(
        self, config: SecurityConfig, catalogue: Catalogue, source: int, master: Database
    ) -> None:
        """Reads the key of ``config.key_file`` once, as the DBC files are read."""
        self.config = config
        self.catalogue = catalogue
        self.source = source  # index of the EMS source in the vehicle decoder
        self.auth: Authenticator | None = None
        if config.key_file is not None:
            try:
                key = secoc.read_key(config.key_file)
            except secoc.KeyFileError as exc:
                raise ConfigError("security.key_file", str(exc)) from None
            self.auth = Authenticator(
                key,
                master.get_message_by_name("EMS_StateRequest"),
                master.get_message_by_name("EMS_StateRequestAuth"),
            )

    def step(
        self,
        state: GateState,
        counts: IngestState,
        frames: FrameBatch,
        request: Request,
        reset: bool,
        now: float,
    ) -> GateOutput:
        accepted = int(counts.accepted[self.source])
        row = counts.rejected[self.source]
        counter_rejected = int(row[_COUNTER_REASONS].sum())
        new_accepted = accepted - state.accepted
        new_counter = counter_rejected - state.counter_rejected
        fresh = (new_accepted, new_counter, now)
        streak, since = _streak(state.streak, state.since, request is state.seen, *fresh)
        reset_streak, reset_since = _streak(state.reset_streak, state.reset_since, reset, *fresh)
        last, changed = _changes(state.last, new_accepted, new_counter)
        changes = tuple(t for t in state.changes if now - t < self.config.window_s)
        changes += (now,) * changed
        events: list[Event] = []
        suspect_until = state.suspect_until
        if changed and len(changes) >= self.config.second_source_changes:
            if now >= suspect_until:
                events.append(self._event(now, "set", len(changes)))
            suspect_until = now + self.config.hold_s
        elif state.suspect_until > float("-inf") and now >= suspect_until:
            events.append(self._event(now, "cleared", len(changes)))
            suspect_until = float("-inf")
        auth = state.auth if self.auth is None else self.auth.step(state.auth, frames, now)
        authentic = now - auth.at <= self.config.auth_timeout_s + 1e-9
        if self.auth is None:
            confirmed = self._confirmed(streak, since, now)
            reset_confirmed = self._confirmed(reset_streak, reset_since, now)
        else:
            confirmed = authentic and auth.request is request
            reset_confirmed = authentic and auth.reset
        if now < suspect_until or request is Request.STANDBY:
            acting = Request.STANDBY
        elif request is state.acting or confirmed:
            acting = request
        else:
            acting = Request.STANDBY
        passed_reset = reset and reset_confirmed and now >= suspect_until
        new_state = GateState(
            accepted=accepted,
            counter_rejected=counter_rejected,
            streak=0 if now < suspect_until else streak,
            reset_streak=0 if now < suspect_until or not reset else reset_streak,
            since=since,
            reset_since=reset_since,
            seen=request,
            acting=acting,
            last=last,
            changes=changes,
            suspect_until=suspect_until,
            auth=auth,
        )
        shown = tuple(e for e in events if self.catalogue[e.diagnosis].enabled)
        return GateOutput(new_state, acting, passed_reset, shown)

    def _confirmed(self, streak: int, since: float, now: float) -> bool:
        return streak >= self.config.confirm_frames and now - since >= self.config.span_s - 1e-9

    def _event(self, now: float, kind: Kind, changes: int) -> Event:
        detail = (
            f"EMS_StateRequest within {self.config.second_source_window_ms:g} ms: {changes} "
            "changes between accepted frames and frames rejected for their counter"
        )
        level = self.catalogue[SECOND_SOURCE].severity.level
        return Event(now, SECOND_SOURCE, level, kind, detail=detail)


def _streak(
    streak: int, since: float, same: bool, accepted: int, rejected: int, now: float
) -> tuple[int, float]:
    """Consecutive accepted frames carrying a value and when they started, after a step with
    ``accepted`` new frames and ``rejected`` rejected for their counter; ``same``: the newest
    frame carries what the streak counted. A corrupted frame (CRC, length) is noise and
    costs only itself; a counter out of step is another sender's, and breaks the sequence."""
    if rejected:
        return 0, now  # whatever came after it in the step
    if not same or streak == 0:
        return min(accepted, 1), now  # the newest frame is the only one known to carry it
    return streak + accepted, since


def _changes(last: int, accepted: int, counter_rejected: int) -> tuple[int, int]:
    """What the newest frames of a step were, and how many changes of kind the step holds.

    Within one step the order is not known: a step with both kinds counts two changes when
    the previous step saw either kind (one of them is a change back).
    """
    if accepted and counter_rejected:
        return 1, 2 if last else 1
    if accepted:
        return 1, int(last == -1)
    if counter_rejected:
        return -1, int(last == 1)
    return last, 0
