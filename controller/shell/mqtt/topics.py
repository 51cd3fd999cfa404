"""Topics and payloads: a sample as JSON messages, and the Home Assistant discovery documents.

Topics under ``base_topic``:

- ``<base>/state``: every pack value in one JSON object (`state_payload`);
- ``<base>/diagnoses``: the active diagnoses with code, level and cause;
- ``<base>/module/<m>``: one module's cell voltage min/max/mean and temperature min/max;
- ``<base>/availability``: ``online``, or ``offline`` (retained; the broker sends ``offline``
  as the last will when the connection is lost).

Discovery (retained) under ``<discovery_prefix>/sensor/<node_id>/<object_id>/config``: one
sensor per pack value reading its field of the state topic, one per module (its mean cell
voltage, the rest as attributes) and one for the diagnoses (their count, the list as
attributes), all of one device with the availability topic.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from controller.diagnosis import Catalogue
from controller.shell.mqtt.config import MqttConfig
from controller.shell.mqtt.sample import Sample

ONLINE, OFFLINE = "online", "offline"
LEVELS = ("ok", "warning", "alarm", "fault")


@dataclass(frozen=True)
class Field:
    """One value of the state topic and the Home Assistant sensor that shows it."""

    key: str
    name: str
    unit: str | None = None
    device_class: str | None = None
    numeric: bool = True


FIELDS = (
    Field("state", "State", numeric=False),
    Field("fault_level", "Fault level"),
    Field("soc", "State of charge", "%", "battery"),
    Field("soh", "State of health", "%"),
    Field("pack_voltage", "Pack voltage", "V", "voltage"),
    Field("pack_current", "Pack current", "A", "current"),
    Field("ccl", "Charge current limit", "A", "current"),
    Field("dcl", "Discharge current limit", "A", "current"),
    Field("cvl", "Charge voltage limit", "V", "voltage"),
    Field("dvl", "Discharge voltage limit", "V", "voltage"),
    Field("cell_min", "Lowest cell voltage", "V", "voltage"),
    Field("cell_max", "Highest cell voltage", "V", "voltage"),
    Field("cell_mean", "Mean cell voltage", "V", "voltage"),
    Field("cell_min_index", "Lowest cell"),
    Field("cell_max_index", "Highest cell"),
    Field("temperature_min", "Lowest temperature", "°C", "temperature"),
    Field("temperature_max", "Highest temperature", "°C", "temperature"),
)


def state_topic(config: MqttConfig) -> str:
    return f"{config.base_topic}/state"


def diagnoses_topic(config: MqttConfig) -> str:
    return f"{config.base_topic}/diagnoses"


def module_topic(config: MqttConfig, module: int) -> str:
    return f"{config.base_topic}/module/{module}"


def _plain(value: Any) -> Any:
    """JSON-ready: NaN and infinities become null, NumPy scalars plain numbers."""
    if value is None or isinstance(value, str | bool):
        return value
    number = float(value)
    if not math.isfinite(number):
        return None
    return int(number) if isinstance(value, int) else round(number, 4)


def state_payload(sample: Sample) -> dict[str, Any]:
    return {f.key: _plain(getattr(sample, f.key)) for f in FIELDS}


def diagnoses_payload(sample: Sample, catalogue: Catalogue) -> dict[str, Any]:
    active = []
    for diagnosis, level in sorted(sample.diagnoses.items()):
        entry = catalogue[diagnosis] if diagnosis in catalogue else None
        active.append(
            {
                "id": diagnosis,
                "code": entry.code if entry else None,
                "level": LEVELS[int(level)],
                "cause": entry.cause if entry else "",
            }
        )
    return {"count": len(active), "active": active}


def module_payloads(sample: Sample) -> Iterator[tuple[int, dict[str, Any]]]:
    m = sample.modules
    columns = (m.cell_min, m.cell_max, m.cell_mean, m.temperature_min, m.temperature_max)
    names = ("cell_min", "cell_max", "cell_mean", "temperature_min", "temperature_max")
    rows = zip(*(c.tolist() for c in columns), strict=True)  # one row per module, not per cell
    for module, row in enumerate(rows):
        yield module, {name: _plain(value) for name, value in zip(names, row, strict=True)}


def messages(config: MqttConfig, sample: Sample, catalogue: Catalogue) -> Iterator[tuple[str, str]]:
    """Every (topic, JSON payload) of one sample."""
    yield state_topic(config), json.dumps(state_payload(sample))
    yield diagnoses_topic(config), json.dumps(diagnoses_payload(sample, catalogue))
    for module, payload in module_payloads(sample):
        yield module_topic(config, module), json.dumps(payload)


def _device(config: MqttConfig, model: str) -> dict[str, Any]:
    return {
        "identifiers": [config.node_id],
        "name": f"canbms {config.node_id}",
        "manufacturer": "canbms",
        "model": model,
    }


def discovery(config: MqttConfig, modules: int, model: str) -> Iterator[tuple[str, str]]:
    """Every retained discovery document: (config topic, JSON payload)."""
    common = {
        "availability_topic": config.availability_topic,
        "payload_available": ONLINE,
        "payload_not_available": OFFLINE,
        "device": _device(config, model),
    }

    def document(object_id: str, body: Mapping[str, Any]) -> tuple[str, str]:
        unique = f"{config.node_id}_{object_id}"
        topic = f"{config.discovery_prefix}/sensor/{config.node_id}/{object_id}/config"
        return topic, json.dumps({"unique_id": unique, "object_id": unique, **body, **common})

    for f in FIELDS:
        body: dict[str, Any] = {
            "name": f.name,
            "state_topic": state_topic(config),
            "value_template": f"{{{{ value_json.{f.key} }}}}",
        }
        if f.unit is not None:
            body["unit_of_measurement"] = f.unit
        if f.device_class is not None:
            body["device_class"] = f.device_class
        if f.numeric and f.unit is not None:
            body["state_class"] = "measurement"
        yield document(f.key, body)
    yield document(
        "diagnoses",
        {
            "name": "Active diagnoses",
            "state_topic": diagnoses_topic(config),
            "value_template": "{{ value_json.count }}",
            "json_attributes_topic": diagnoses_topic(config),
        },
    )
    for module in range(modules):
        yield document(
            f"module_{module}",
            {
                "name": f"Module {module} mean cell voltage",
                "state_topic": module_topic(config, module),
                "value_template": "{{ value_json.cell_mean }}",
                "json_attributes_topic": module_topic(config, module),
                "unit_of_measurement": "V",
                "device_class": "voltage",
                "state_class": "measurement",
            },
        )
