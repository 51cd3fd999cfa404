"""Telemetry over MQTT with Home Assistant discovery, outside the control path.

`config.MqttConfig` is the ``[mqtt]`` section; `sample.take` reads what is published from
the controller's state (a few NumPy reductions); `topics` turns a sample into topics and
payloads and holds the discovery documents; `service.MqttTelemetry` publishes them from its
own thread through a bounded queue (paho-mqtt, the optional extra ``mqtt``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from controller.errors import ConfigError

if TYPE_CHECKING:
    from controller.config.loader import ControllerConfig
    from controller.shell.mqtt.service import MqttTelemetry


def start_telemetry(config: ControllerConfig) -> MqttTelemetry | None:
    """The started telemetry service of ``[mqtt]``; None without the section.

    A configuration it cannot honour (paho-mqtt not installed, a password file open to
    others) is refused before the control loop starts; a broker that is down is not an error.
    """
    if config.mqtt is None:
        return None
    try:
        from controller.shell.mqtt.service import MqttTelemetry
    except ImportError as exc:
        if not (exc.name or "").startswith("paho"):
            raise
        raise ConfigError(
            "mqtt", f"needs paho-mqtt ({exc.name} missing): pip install 'canbms[mqtt]'"
        ) from None
    telemetry = MqttTelemetry(config)
    telemetry.start()
    return telemetry
