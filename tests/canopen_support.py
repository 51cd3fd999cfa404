"""Shared by the CANopen tests: virtual-bus networks and a bus-free recording network."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from contextlib import contextmanager

import canopen

_counter = itertools.count()


def unique_channel(name: str) -> str:
    """A virtual channel no other test (or parallel worker) shares."""
    return f"canopen-{name}-{os.getpid()}-{next(_counter)}"


@contextmanager
def virtual_networks(channel: str, count: int = 2) -> Iterator[list[canopen.Network]]:
    """``count`` networks on one virtual channel, disconnected (bus and notifier) at the end."""
    networks = []
    try:
        for _ in range(count):
            net = canopen.Network()
            net.NOTIFIER_CYCLE = 0.02  # short receive timeout: disconnect in ms, not 1 s
            net.connect(interface="virtual", channel=channel, receive_own_messages=False)
            networks.append(net)
        yield networks
    finally:
        for net in networks:
            net.disconnect()


class RecordingNetwork(canopen.Network):
    """A network without a bus that records what is sent, stamped with ``clock``."""

    def __init__(self) -> None:
        super().__init__()
        self.clock = 0.0
        self.sent: list[tuple[float, int, bytes]] = []

    def send_message(self, can_id: int, data: bytes, remote: bool = False) -> None:
        self.sent.append((self.clock, can_id, bytes(data)))

    def frames(self, can_id: int) -> list[tuple[float, bytes]]:
        return [(t, data) for t, i, data in self.sent if i == can_id]
