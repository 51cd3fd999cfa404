"""SecOC-style authentication of a command frame on classic CAN, for sender and receiver.

A command frame (``EMS_StateRequest``) is followed by a companion frame
(``EMS_StateRequestAuth``) carrying a 32-bit freshness value and a MAC truncated to 4 bytes:
HMAC-SHA256 (stdlib ``hmac``) keyed with a shared secret, over the command's frame ID
(2 bytes, little-endian), its payload, then the freshness value (4 bytes, little-endian).
The sender increases the freshness value by one per command; the receiver accepts a MAC
only with a freshness value above the last one it accepted, so a recorded pair cannot be
replayed. A 4-byte MAC leaves a forger a 2**-32 chance per attempt.

The key is a file of hex digits (16 to 64 bytes of key) that only its owner may read.
"""

from __future__ import annotations

import hashlib
import hmac
import stat
from pathlib import Path

MAC_BYTES = 4
FRESHNESS_BYTES = 4
MIN_KEY_BYTES = 16
MAX_KEY_BYTES = 64


class KeyFileError(ValueError):
    """The key file is missing, open to others, or does not hold a key."""


def mac(key: bytes, frame_id: int, payload: bytes | bytearray, freshness: int) -> bytes:
    """The truncated MAC of one command."""
    message = (
        frame_id.to_bytes(2, "little")
        + bytes(payload)
        + (freshness % 2**32).to_bytes(FRESHNESS_BYTES, "little")
    )
    return hmac.new(key, message, hashlib.sha256).digest()[:MAC_BYTES]


def verify(
    key: bytes, frame_id: int, payload: bytes | bytearray, freshness: int, tag: bytes
) -> bool:
    """The MAC of the command matches ``tag`` (compared in constant time)."""
    return hmac.compare_digest(mac(key, frame_id, payload, freshness), bytes(tag))


def read_key(path: Path) -> bytes:
    """The key in ``path``; refused when the group or others may read or write it."""
    try:
        mode = path.stat().st_mode
        if stat.S_IMODE(mode) & 0o077:
            raise KeyFileError(
                f"{path} is open to others (mode {stat.S_IMODE(mode):o}): chmod 600 {path}"
            )
        text = path.read_text(encoding="ascii").strip()
    except OSError as exc:
        raise KeyFileError(f"cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise KeyFileError(f"{path} holds no hex key") from None
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise KeyFileError(f"{path} holds no hex key") from None
    if not MIN_KEY_BYTES <= len(key) <= MAX_KEY_BYTES:
        raise KeyFileError(
            f"{path}: a key of {len(key)} bytes, expected {MIN_KEY_BYTES} to {MAX_KEY_BYTES}"
        )
    return key
