"""systemd's service notification, spoken directly (no dependency): ``READY=1`` once the buses
are open and the first cycle ran, ``WATCHDOG=1`` after each healthy cycle, ``STOPPING=1`` when
the safe stop begins. With ``WatchdogSec`` in the unit, systemd restarts a controller whose
loop hangs, which the restart then meets with its latched faults restored.

Without ``NOTIFY_SOCKET`` (not started by systemd) every call does nothing.
"""

from __future__ import annotations

import os
import socket


class Notifier:
    """Datagrams to ``NOTIFY_SOCKET``, never blocking; failures are counted, never raised."""

    def __init__(self, address: str | None = None) -> None:
        address = address if address is not None else os.environ.get("NOTIFY_SOCKET", "")
        if address.startswith("@"):  # an abstract socket name
            address = "\0" + address[1:]
        self._address = address or None
        self.failures = 0

    @property
    def active(self) -> bool:
        return self._address is not None

    def notify(self, message: str) -> None:
        if self._address is None:
            return
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.setblocking(False)  # a slow reader must never hold up the control loop
                sock.sendto(message.encode("ascii"), self._address)
        except OSError:
            self.failures += 1
