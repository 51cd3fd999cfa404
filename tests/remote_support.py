"""A python-can-remote server for tests that join processes over a bus on loopback."""

from __future__ import annotations

import contextlib
import importlib.util
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve_remote() -> Iterator[str]:
    """A python-can-remote server on a free local port serving a virtual bus, as its URL."""
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
