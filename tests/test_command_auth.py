"""Authenticated EMS commands (security.key_file): a forged, replayed or unauthenticated
command never closes or resets, a genuine one does (closed loop, virtual time)."""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import replace
from pathlib import Path

import pytest
from core_support import VEHICLE, Rig, to_batch
from test_command_security import REQUEST, closing_commands, forged

from controller.config.loader import default_config
from controller.contactors import ContactorState, Request
from controller.core import Controller
from controller.diagnosis import Event
from controller.errors import ConfigError
from controller.security import SecurityConfig
from dbc import master_e2e, secoc

AUTH = 0x0E1
KEY = bytes(range(32))


def auth_frame(key: bytes, payload: bytes, freshness: int) -> tuple[int, int, bytes]:
    tag = secoc.mac(key, REQUEST.frame_id, payload, freshness)
    return VEHICLE, AUTH, freshness.to_bytes(4, "little") + tag


def key_file(tmp_path: Path, mode: int = 0o600, key: bytes = KEY) -> Path:
    path = tmp_path / "ems.key"
    path.write_text(key.hex() + "\n")
    os.chmod(path, mode)
    return path


def authenticated_rig(tmp_path: Path) -> Rig:
    security = SecurityConfig(key_file=key_file(tmp_path))
    return Rig(replace(default_config(), security=security))


class Signer:
    """The EMS's side: an authentication frame after each of its requests."""

    def __init__(self, key: bytes) -> None:
        self.key, self.freshness = key, 100

    def frames(self, heard: list[tuple[int, int, bytes]]) -> list[tuple[int, int, bytes]]:
        out = []
        for bus, frame_id, data in heard:
            if bus == VEHICLE and frame_id == REQUEST.frame_id:
                self.freshness += 1
                out.append(auth_frame(self.key, data, self.freshness))
        return out


def run(rig: Rig, seconds: float, *extra) -> list[Event]:
    """Step; each of ``extra`` (a callable of the plant's frames) adds frames."""
    events: list[Event] = []
    end = rig.now + seconds - 1e-9
    while rig.now < end:
        rig.k += 1
        rig.now = round(rig.k * rig.cycle, 9)
        frames = rig.plant.frames(rig.k, rig.now, rig.cycle)
        for add in extra:
            frames += add(frames)
        result = rig.controller.step(rig.state, to_batch(frames, rig.now), rig.now)
        rig.state = result.state
        rig.deliver(result.frames)
        events.extend(result.events)
    return events


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660])
def test_a_key_file_open_to_others_is_refused_naming_it(tmp_path: Path, mode: int) -> None:
    path = key_file(tmp_path, mode)
    config = replace(default_config(), security=SecurityConfig(key_file=path))
    with pytest.raises(ConfigError) as info:
        Controller(config)
    assert info.value.key == "security.key_file" and str(path) in str(info.value)


def test_a_key_file_without_a_key_is_refused(tmp_path: Path) -> None:
    path = key_file(tmp_path, key=bytes(4))  # too short
    with pytest.raises(ConfigError, match="4 bytes"):
        Controller(replace(default_config(), security=SecurityConfig(key_file=path)))


def test_a_genuine_authenticated_request_closes(tmp_path: Path) -> None:
    rig = authenticated_rig(tmp_path)
    signer = Signer(KEY)
    run(rig, 1.0, signer.frames)
    rig.plant.request = Request.DISCHARGE
    asked = rig.now
    run(rig, 2.0, signer.frames)
    assert rig.state.contactors.state is ContactorState.CLOSED_DISCHARGE
    assert closing_commands(rig, asked)[0] - asked <= 0.1 + 3 * rig.cycle  # the first frame


def test_without_its_authentication_a_request_never_closes(tmp_path: Path) -> None:
    rig = authenticated_rig(tmp_path)
    run(rig, 1.0)
    rig.plant.request = Request.DISCHARGE  # E2E-good frames, no companion frame
    asked = rig.now
    run(rig, 3.0)
    assert closing_commands(rig, asked) == []


class Forger:
    """The only sender of EMS_StateRequest (the EMS silenced): good E2E, bad authentication."""

    def __init__(self, how: str, request: Request, reset: bool = False) -> None:
        self.how, self.request, self.reset = how, request, reset
        self.counter, self.freshness, self.k = 0, 1000, 0
        self.recorded: list[tuple[int, int, bytes]] = []

    def frames(self, heard: list) -> list[tuple[int, int, bytes]]:
        self.k += 1
        if self.k % 10:
            return []  # a request every 100 ms
        self.counter = master_e2e.next_counter(self.counter)
        payload = forged(self.counter, self.request, self.reset)
        self.freshness += 1
        if self.how == "wrong key":
            auth = auth_frame(bytes(32), payload, self.freshness)
        elif self.how == "random mac":
            auth = (VEHICLE, AUTH, self.freshness.to_bytes(4, "little") + os.urandom(4))
        else:  # a genuine pair recorded earlier, played back in order
            return [self.recorded[self.k // 10 % len(self.recorded)]]
        return [(VEHICLE, REQUEST.frame_id, payload), auth]


@pytest.mark.parametrize("how", ["wrong key", "random mac", "replay"])
def test_forged_requests_never_close_or_reset(tmp_path: Path, how: str) -> None:
    rig = authenticated_rig(tmp_path)
    signer = Signer(KEY)
    recorded: list[tuple[int, int, bytes]] = []

    def record(heard: list) -> list:
        out = signer.frames(heard)
        recorded.extend(f for f in heard if f[1] == REQUEST.frame_id)
        recorded.extend(out)
        return out

    rig.plant.request = Request.DISCHARGE
    run(rig, 0.5, record)  # genuine DISCHARGE pairs, recorded (closing started)
    rig.plant.request = Request.STANDBY
    run(rig, 3.0, signer.frames)
    assert rig.state.contactors.state is ContactorState.STANDBY
    rig.plant.silent.add("ems")
    forger = Forger(how, Request.DISCHARGE)
    forger.recorded = recorded
    forger.counter = rig.plant.counters[REQUEST.frame_id]  # continues the EMS's counter
    since = rig.now
    run(rig, 3.0, forger.frames)
    assert closing_commands(rig, since) == []
    if how != "replay":  # a stream the E2E check accepts, only its authentication fails
        assert rig.state.contactors.state is ContactorState.STANDBY
        assert rig.state.gate.auth.request is Request.STANDBY  # the EMS's, never the forger's


def test_a_forged_reset_is_refused_and_a_genuine_one_accepted(tmp_path: Path) -> None:
    rig = authenticated_rig(tmp_path)
    signer = Signer(KEY)
    rig.plant.request = Request.STANDBY
    run(rig, 0.5, signer.frames)
    latched_fault = _latch(rig, signer)
    rig.plant.silent.add("ems")
    forger = Forger("wrong key", Request.STANDBY, reset=True)
    forger.counter = rig.plant.counters[REQUEST.frame_id]
    events = run(rig, 2.0, forger.frames)
    assert not [e for e in events if e.diagnosis == "fault_reset_accepted"]
    assert latched_fault in rig.controller.persisted(rig.state).latched
    rig.plant.silent.discard("ems")
    rig.plant.reset = True
    events = run(rig, 1.0, signer.frames)
    assert [e for e in events if e.diagnosis == "fault_reset_accepted"]


def _latch(rig: Rig, signer: Signer) -> str:
    """A latched cell over-voltage whose cause is gone, the EMS asking standby."""
    rig.plant.request = Request.DISCHARGE
    run(rig, 1.0, signer.frames)
    rig.plant.cell_v[7] = 5.0
    rig.plant.force("cells", "status", "ivt")
    run(rig, 1.0, signer.frames)
    rig.plant.request = Request.STANDBY
    rig.plant.cell_v[7] = 3.7
    rig.plant.force("cells", "status", "ivt")
    run(rig, 3.0, signer.frames)
    assert int(rig.plant.received["BMS_Status"]["BMS_State"]) == 6
    return "cell_overvoltage"


def test_the_mac_matches_the_documented_construction() -> None:
    payload = bytes.fromhex("8B1300")
    message = (0x00E0).to_bytes(2, "little") + payload + (7).to_bytes(4, "little")
    assert secoc.mac(KEY, 0x0E0, payload, 7) == hmac.new(KEY, message, hashlib.sha256).digest()[:4]
    assert secoc.mac(KEY, 0x0E0, payload, 7) == bytes.fromhex("AB9F75CF")  # the protocol page
