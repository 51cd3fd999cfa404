"""Shared test setup: hypothesis profiles and the path to the shared DBC corpus."""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile("dev", max_examples=50, deadline=None)
settings.register_profile(
    "ci", max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("thorough", max_examples=1000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "dbc-corpus"


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    """The shared real-world DBC corpus beside the project root; skip where it is absent."""
    if not CORPUS.is_dir():
        pytest.skip(f"DBC corpus not found at {CORPUS} (it sits beside the project in CI)")
    return CORPUS


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def remote_server():
    """A python-can-remote server on a free local port, serving a virtual bus."""
    if importlib.util.find_spec("can_remote") is None:
        pytest.skip("python-can-remote (can_remote) is not installed")
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "can_remote", "--interface=virtual", "--channel=0"]
        + ["-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10.0
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("can_remote server did not start")
                time.sleep(0.05)
        yield f"ws://127.0.0.1:{port}/"
    finally:
        server.kill()
        server.wait(5)
