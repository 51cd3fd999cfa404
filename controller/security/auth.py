"""Authentication of the EMS request by its companion frame (``dbc.secoc``).

Each ``EMS_StateRequestAuth`` authenticates the ``EMS_StateRequest`` received just before it
(in the same batch or the previous one): its MAC must match that request's payload and its
freshness value must exceed the last one accepted. What was authenticated last, and when, is
what the command gate lets close or reset. The frames of one step are a handful, taken in
arrival order.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from cantools.database.can import Message

from controller.contactors import Request
from controller.frames import FrameBatch
from dbc import master_e2e, secoc


@dataclass(frozen=True)
class AuthState:
    """The last request payload heard and the last authenticated command."""

    payload: bytes = b""  # the newest EMS_StateRequest with an intact E2E header
    freshness: int = -1  # the highest freshness value accepted
    request: Request = Request.STANDBY  # what the last authenticated frame requested
    reset: bool = False  # ... and its reset bit
    at: float = float("-inf")  # when it was authenticated


class Authenticator:
    """Checks the companion frames against a shared key."""

    def __init__(self, key: bytes, request: Message, auth: Message) -> None:
        self.key = key
        self.request = request
        self.auth = auth
        self._ids = np.array([request.frame_id, auth.frame_id], np.uint32)

    def step(self, state: AuthState, frames: FrameBatch, now: float) -> AuthState:
        mine = np.flatnonzero(~frames.extended & np.isin(frames.ids, self._ids))
        for row in mine.tolist():
            data = bytes(frames.data[row, : frames.dlc[row]])
            if int(frames.ids[row]) == self.request.frame_id:
                if len(data) == self.request.length and master_e2e.intact(
                    self.request.frame_id, data
                ):
                    state = replace(state, payload=data)
                continue
            state = self._authenticate(state, data, now)
        return state

    def _authenticate(self, state: AuthState, data: bytes, now: float) -> AuthState:
        if len(data) != self.auth.length or not state.payload:
            return state
        values = self.auth.decode(data, decode_choices=False)
        freshness = int(values["EMS_AuthFreshness"])
        tag = int(values["EMS_AuthMac"]).to_bytes(secoc.MAC_BYTES, "little")
        if freshness <= state.freshness or not secoc.verify(
            self.key, self.request.frame_id, state.payload, freshness, tag
        ):
            return state  # forged, replayed or for another payload
        command = self.request.decode(state.payload, decode_choices=False)
        try:
            request = Request(int(command["EMS_RequestedState"]))
        except ValueError:
            request = Request.STANDBY
        reset = bool(command["EMS_FaultReset"])
        return replace(state, freshness=freshness, request=request, reset=reset, at=now)
