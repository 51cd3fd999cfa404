"""The ``[mqtt]`` section: broker, topics, rate, discovery, TLS and credentials."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from controller.config.declare import setting
from controller.errors import ConfigError

_TOPIC = re.compile(r"^[^/#+\s]+(/[^/#+\s]+)*$")  # levels without wildcards or blanks
_NODE_ID = re.compile(r"^[A-Za-z0-9_-]+$")  # what Home Assistant accepts as an object ID


@dataclass(frozen=True, kw_only=True)
class MqttConfig:
    """Telemetry to an MQTT broker; it runs only when ``[mqtt]`` is given."""

    host: str = setting("127.0.0.1", doc="broker host name or address")
    port: int = setting(1883, ge=1, le=65535, doc="broker port (8883 is usual with TLS)")
    client_id: str = setting("canbms", doc="MQTT client ID; unique per broker")
    base_topic: str = setting(
        "canbms", doc="every telemetry topic starts with this (state, modules, availability)"
    )
    node_id: str = setting(
        "canbms", doc="Home Assistant device identifier and object ID prefix (A-Z a-z 0-9 _ -)"
    )
    interval_s: float = setting(
        5.0, ge=0.1, le=3600.0, unit="s", doc="one sample of every topic this often"
    )
    qos: int = setting(0, ge=0, le=1, doc="QoS of the telemetry messages (0 or 1)")
    keepalive_s: int = setting(30, ge=5, le=3600, unit="s", doc="MQTT keep-alive")
    queue_size: int = setting(
        8, ge=1, le=1024,
        doc="samples waiting for the publishing thread; a sample beyond it is dropped and counted",
    )  # fmt: skip
    discovery: bool = setting(True, doc="publish Home Assistant MQTT discovery documents")
    discovery_prefix: str = setting(
        "homeassistant", doc="Home Assistant's discovery prefix (its MQTT integration setting)"
    )
    username: str | None = setting(None, doc="user name at the broker; none: anonymous")
    password_file: Path | None = setting(
        None,
        doc="file holding the password (first line); it must be readable by its owner only",
    )
    tls: bool = setting(False, doc="connect with TLS")
    ca_file: Path | None = setting(
        None, doc="CA certificates (PEM) that sign the broker's certificate; none: the system's"
    )
    cert_file: Path | None = setting(None, doc="client certificate (PEM) for mutual TLS")
    key_file: Path | None = setting(None, doc="the client certificate's private key (PEM)")

    @property
    def availability_topic(self) -> str:
        return f"{self.base_topic}/availability"

    def validate(self, path: str) -> None:
        """Topics without wildcards; credentials and TLS files only in combinations that work."""
        for key in ("base_topic", "discovery_prefix"):
            if not _TOPIC.match(getattr(self, key)):
                raise ConfigError(
                    f"{path}.{key}", "a topic of levels without '+', '#', blanks or empty levels"
                )
        if not _NODE_ID.match(self.node_id):
            raise ConfigError(f"{path}.node_id", "only letters, digits, '_' and '-'")
        if self.password_file is not None and self.username is None:
            raise ConfigError(f"{path}.password_file", "a password needs a username")
        if (self.cert_file is None) != (self.key_file is None):
            raise ConfigError(f"{path}.key_file", "cert_file and key_file go together")
        for key in ("ca_file", "cert_file", "key_file"):
            if getattr(self, key) is not None and not self.tls:
                raise ConfigError(f"{path}.{key}", "only used with tls = true")


def read_password(config: MqttConfig, path: str = "mqtt") -> str | None:
    """The password of ``password_file``; refused when the group or others may read it."""
    file = config.password_file
    if file is None:
        return None
    key = f"{path}.password_file"
    try:
        mode = file.stat().st_mode
        if mode & 0o077:
            raise ConfigError(
                key, f"{file} is open to others (mode {mode & 0o777:o}): chmod 600 {file}"
            )
        lines = file.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ConfigError(key, f"cannot read {file}: {exc.strerror}") from None
    if not lines or not lines[0]:
        raise ConfigError(key, f"{file} holds no password on its first line")
    return lines[0]
