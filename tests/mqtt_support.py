"""A real MQTT broker on 127.0.0.1 for the tests (amqtt in its own process) and a subscriber.

The broker runs as a child process so that a test can kill it like a crashed broker;
`Subscriber` records every message per topic and waits for a condition on them, judging
content, never wall-clock windows.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

BROKER = """
import asyncio, json, logging, sys
from amqtt.broker import Broker
logging.disable(logging.CRITICAL)
async def serve(config):
    broker = Broker(config)
    await broker.start()
    print("ready", flush=True)
    await asyncio.Event().wait()
asyncio.run(serve(json.loads(sys.argv[1])))
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class BrokerProcess:
    port: int
    process: subprocess.Popen

    def kill(self) -> None:
        """Like a crash: no goodbye to any client."""
        self.process.kill()
        self.process.wait(10)


def _users_file(folder: Path, users: dict[str, str]) -> Path:
    from pwdlib import PasswordHash
    from pwdlib.hashers.argon2 import Argon2Hasher

    hasher = PasswordHash((Argon2Hasher(),))
    file = folder / f"broker-users-{uuid.uuid4().hex[:6]}"
    file.write_text("".join(f"{u}:{hasher.hash(p)}\n" for u, p in users.items()))
    return file


@contextmanager
def mqtt_broker(
    folder: Path, users: dict[str, str] | None = None, port: int | None = None
) -> Iterator[BrokerProcess]:
    """A broker on 127.0.0.1 (anonymous, or only ``users`` with their passwords)."""
    port = port or free_port()
    plugins: dict[str, Any] = {
        "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": users is None}
    }
    if users:
        file = _users_file(folder, users)
        plugins["amqtt.plugins.authentication.FileAuthPlugin"] = {"password_file": str(file)}
    config = {
        "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{port}"}},
        "plugins": plugins,
    }
    process = subprocess.Popen(
        [sys.executable, "-c", BROKER, json.dumps(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        line = process.stdout.readline() if process.stdout else ""
        if line.strip() != "ready":
            raise RuntimeError(f"the MQTT broker did not start (exit {process.poll()})")
        yield BrokerProcess(port, process)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(10)


class Subscriber:
    """Every message on ``topic`` (a filter) per topic, newest last, retained flag kept."""

    def __init__(self, port: int, topic: str = "#", auth: tuple[str, str] | None = None) -> None:
        self.messages: dict[str, list[tuple[str, bool]]] = {}
        self._changed = threading.Condition()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=f"test-{uuid.uuid4().hex[:8]}"
        )
        if auth is not None:
            self.client.username_pw_set(*auth)
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *_: self._subscribed.set()
        self.client.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
        self.client.connect("127.0.0.1", port, keepalive=30)
        self.client.loop_start()
        if not self._subscribed.wait(20):
            raise RuntimeError("the test subscriber could not subscribe")

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        with self._changed:
            self.messages.setdefault(msg.topic, []).append((msg.payload.decode(), msg.retain))
            self._changed.notify_all()

    def last(self, topic: str) -> str | None:
        with self._changed:
            got = self.messages.get(topic)
            return got[-1][0] if got else None

    def wait_for(self, condition: Callable[[Subscriber], Any], timeout: float = 30.0) -> Any:
        """The first truthy value of ``condition(self)``; fails after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not (value := condition(self)):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no such message within {timeout} s: {condition}")
                self._changed.wait(min(left, 0.5))
        return value

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
