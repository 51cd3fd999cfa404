"""MQTT telemetry against a real broker on 127.0.0.1: payloads, discovery, a lost broker.

The controller and the simulated pack run in lockstep virtual time (`hil.bench`); the
telemetry service is fed as `canbms run` feeds it, once per cycle with the cycle's state.
"""

from __future__ import annotations

import json
import logging
import math
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest

pytest.importorskip("paho.mqtt", reason="paho-mqtt is the optional extra 'mqtt'")
pytest.importorskip("amqtt", reason="the test broker amqtt comes with the 'test' extra")

from mqtt_support import Subscriber, mqtt_broker  # noqa: E402

from controller.adapters.base import Level  # noqa: E402
from controller.config.loader import default_config, parse_config  # noqa: E402
from controller.contactors import ContactorState  # noqa: E402
from controller.core import Controller  # noqa: E402
from controller.errors import ConfigError  # noqa: E402
from controller.shell.mqtt import start_telemetry, topics  # noqa: E402
from controller.shell.mqtt.config import read_password  # noqa: E402
from hil.bench import VirtualBench  # noqa: E402
from slaves.ems import EmsCommand, EmsRequest  # noqa: E402
from slaves.faults import ModuleSilent  # noqa: E402
from slaves.system import SimulatedSystem  # noqa: E402

RUN = "from canbms.cli import main; raise SystemExit(main())"


def _bench() -> VirtualBench:
    system = SimulatedSystem(seed=1, load=20.0, ems_script=[EmsCommand(0.0, EmsRequest.DISCHARGE)])
    return VirtualBench(system, Controller(default_config()))


def _with_mqtt(bench: VirtualBench, **mqtt: object) -> None:
    table = {"port": 1883, "interval_s": 0.5, "discovery_prefix": "ha-test", **mqtt}
    bench.controller.config = replace(
        bench.controller.config, mqtt=parse_config({"mqtt": table}).mqtt
    )


@pytest.fixture
def bench() -> Iterator[VirtualBench]:
    with _bench() as b:
        yield b


def _until(condition: Callable[[], bool], timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _password_file(tmp_path: Path, mode: int) -> Path:
    file = tmp_path / "mqtt-password"
    file.write_text("s3cret\n")
    file.chmod(mode)
    return file


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ({"base_topic": "bms/#"}, "mqtt.base_topic"),
        ({"discovery_prefix": "home assistant"}, "mqtt.discovery_prefix"),
        ({"node_id": "pack.1"}, "mqtt.node_id"),
        ({"password_file": "pw"}, "mqtt.password_file"),
        ({"tls": True, "cert_file": "c.pem"}, "mqtt.key_file"),
        ({"ca_file": "ca.pem"}, "mqtt.ca_file"),
        ({"qos": 2}, "mqtt.qos"),
        ({"password": "in the file"}, "mqtt"),
    ],
)
def test_the_section_names_the_key_it_refuses(table: dict, key: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_config({"mqtt": table})
    assert str(raised.value).startswith(key)


def test_a_password_file_open_to_others_is_refused(tmp_path: Path) -> None:
    config = parse_config(
        {"mqtt": {"username": "bms", "password_file": "mqtt-password"}}, base=tmp_path
    ).mqtt
    _password_file(tmp_path, 0o644)
    with pytest.raises(ConfigError, match=r"mqtt.password_file: .* open to others \(mode 644\)"):
        read_password(config)
    os.chmod(tmp_path / "mqtt-password", 0o600)
    assert read_password(config) == "s3cret"


def _payload(sub: Subscriber, topic: str) -> dict | None:
    text = sub.last(topic)
    return None if text is None else json.loads(text)


def test_telemetry_publishes_the_pack_with_discovery_and_credentials(
    tmp_path: Path, bench: VirtualBench
) -> None:
    password = _password_file(tmp_path, 0o600)
    with mqtt_broker(tmp_path, users={"bms": "s3cret", "viewer": "look"}) as broker:
        _with_mqtt(
            bench,
            port=broker.port,
            username="bms",
            password_file=str(password),
            qos=1,
            interval_s=0.45,
        )
        sub = Subscriber(broker.port, auth=("viewer", "look"))
        telemetry = start_telemetry(bench.controller.config)
        assert telemetry is not None
        assert telemetry.connected.wait(20), "samples without a connection are not queued"
        try:
            for _ in range(300):  # 3 s of virtual time: contactors closed, discharging
                bench.step()
                telemetry.offer(bench.state, bench.now)
            config = bench.controller.config.mqtt
            offered = telemetry.offered  # every sample out before the stop
            sub.wait_for(lambda s: len(s.messages.get("canbms/state", ())) == offered)
        finally:
            telemetry.stop()
        discovery = (
            {f.key for f in topics.FIELDS} | {"diagnoses"} | {f"module_{m}" for m in range(8)}
        )
        expected_docs = {f"ha-test/sensor/canbms/{key}/config" for key in discovery}
        # MQTT keeps the order of one topic only: wait for every topic's messages.
        samples = telemetry.offered
        assert sub.wait_for(
            lambda s: (
                s.last("canbms/availability") == "offline"
                and expected_docs <= set(s.messages)
                and all(
                    len(s.messages.get(t, ())) == samples
                    for t in ["canbms/state", *(f"canbms/module/{m}" for m in range(8))]
                )
            )
        )
        sub.close()
    # The k-th message of each topic is the k-th sample: the pack and its modules agree.
    states = [json.loads(p) for p, _ in sub.messages["canbms/state"]]
    for k, sample in enumerate(states):
        for m in range(8):
            module = json.loads(sub.messages[f"canbms/module/{m}"][k][0])
            if module["cell_min"] is None:  # unknown (null) until the module's frames came
                assert k < len(states) - 1, "every module known by the last sample"
                continue
            assert module["cell_min"] <= module["cell_mean"] <= module["cell_max"]
            assert sample["cell_min"] <= module["cell_min"]
            assert module["cell_max"] <= sample["cell_max"]
    state = states[-1]
    assert state["state"] == "closed_discharge"
    assert telemetry.dropped + telemetry.offered == 7, "one per 0.45 s of the loop's clock"
    assert telemetry.unsent == 0 and telemetry.errors == 0
    assert state["fault_level"] == 0
    assert state["ccl"] > 0 and state["dcl"] > 0 and 280 < state["dvl"] < state["cvl"] < 420
    assert 49 < state["soc"] < 51 and state["pack_current"] == pytest.approx(-20, abs=1)
    assert 3.5 < state["cell_min"] <= state["cell_mean"] <= state["cell_max"] < 3.9
    docs = {
        topic: json.loads(p[-1][0])
        for topic, p in sub.messages.items()
        if topic.startswith("ha-test/sensor/canbms/")
    }
    assert set(docs) == expected_docs
    soc = docs["ha-test/sensor/canbms/soc/config"]
    assert soc["state_topic"] == "canbms/state" and soc["device_class"] == "battery"
    assert soc["availability_topic"] == config.availability_topic
    assert soc["device"]["identifiers"] == ["canbms"] and soc["unit_of_measurement"] == "%"


def test_discovery_and_availability_are_retained(tmp_path: Path, bench: VirtualBench) -> None:
    with mqtt_broker(tmp_path) as broker:
        _with_mqtt(bench, port=broker.port)
        first = Subscriber(broker.port)
        telemetry = start_telemetry(bench.controller.config)
        first.wait_for(lambda s: s.last("canbms/availability") == "online")  # sent last
        late = Subscriber(broker.port)  # joins after the documents went out
        expected = {t for t in first.messages if t.startswith("ha-test/")}
        expected.add("canbms/availability")
        late.wait_for(lambda s: set(s.messages) >= expected)
        telemetry.stop()
        first.close()
        late.close()
    assert len(expected) == len(topics.FIELDS) + 1 + 8 + 1
    assert all(late.messages[t][0] == (first.messages[t][0][0], True) for t in expected)


def test_a_silent_module_is_published_as_unknown(tmp_path: Path, bench: VirtualBench) -> None:
    from controller.shell.mqtt.sample import take

    for _ in range(200):
        bench.step()
    bench.plant.faults.inject(ModuleSilent(3))
    for _ in range(60):  # beyond the cell voltage timeout, before the slave timeout fault
        bench.step()
    sample = take(bench.controller.config, bench.state, bench.now)
    payloads = dict(topics.module_payloads(sample))
    stale = {key: payloads[3][key] for key in ("cell_min", "cell_max", "cell_mean")}
    assert stale == dict.fromkeys(stale), "stale cell voltages are null"
    assert payloads[3]["temperature_min"] is not None, "temperatures are within their timeout"
    assert all(payloads[m]["cell_mean"] is not None for m in (0, 1, 2, 4, 5, 6, 7))
    assert sample.diagnoses, "missing data is a diagnosis at once"


def test_a_lost_broker_is_a_warning_and_the_controller_runs_on(
    tmp_path: Path, bench: VirtualBench, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="canbms.mqtt")
    with mqtt_broker(tmp_path) as broker:
        _with_mqtt(bench, port=broker.port, interval_s=0.1)
        port = broker.port
        sub = Subscriber(port)
        telemetry = start_telemetry(bench.controller.config)
        for _ in range(300):
            bench.step()
            telemetry.offer(bench.state, bench.now)
        sub.wait_for(lambda s: (p := _payload(s, "canbms/state")) and p["fault_level"] == 0)
        broker.kill()
    assert _until(lambda: not telemetry.connected.is_set()), "the loss was noticed"
    steps = 0
    for _ in range(500):  # 5 s of control cycles without a broker
        result = bench.step()
        telemetry.offer(bench.state, bench.now)
        steps += 1
        assert result.state.contactors.state is ContactorState.CLOSED_DISCHARGE
        assert result.state.protection.highest < Level.ALARM
    assert steps == 500 and not bench.state.restored_faults and not bench.state.failed_stages
    lost = [r for r in caplog.records if "MQTT broker" in r.getMessage()]
    assert lost and all(r.levelno == logging.WARNING for r in lost)
    assert len([r for r in lost if "retrying" in r.getMessage()]) == 1, "one line per outage"
    with mqtt_broker(tmp_path, port=port):  # the broker is back: telemetry reconnects
        assert telemetry.connected.wait(60)
        back = Subscriber(port)
        for _ in range(20):
            bench.step()
            telemetry.offer(bench.state, bench.now)
        back.wait_for(lambda s: s.last("canbms/availability") == "online")
        back.wait_for(lambda s: _payload(s, "canbms/state"))
        telemetry.stop()
        back.close()
    sub.close()
    assert telemetry.errors == 0
    assert telemetry.unsent + telemetry.dropped > 0, "samples of the outage were counted"


def test_canbms_run_feeds_telemetry_and_its_last_will_says_offline(tmp_path: Path) -> None:
    with mqtt_broker(tmp_path) as broker:
        config = tmp_path / "canbms.toml"
        config.write_text(
            f'[buses.internal]\ninterface = "virtual"\nchannel = "mqtt-run-internal"\n\n'
            f'[buses.vehicle]\ninterface = "virtual"\nchannel = "mqtt-run-vehicle"\n\n'
            f'[mqtt]\nport = {broker.port}\ninterval_s = 0.2\nbase_topic = "site/bms1"\n'
        )
        sub = Subscriber(broker.port)
        run = subprocess.Popen(
            [sys.executable, "-c", RUN, "run", "--config", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            sub.wait_for(lambda s: s.last("site/bms1/availability") == "online", timeout=60)
            state = sub.wait_for(lambda s: _payload(s, "site/bms1/state"), timeout=60)
            assert state["state"] in {"standby", "fault"} and state["ccl"] == 0.0
            assert math.isclose(state["dcl"], 0.0)
            assert sub.last("homeassistant/sensor/canbms/soc/config")
            run.kill()  # no goodbye: the broker publishes the last will
            sub.wait_for(lambda s: s.last("site/bms1/availability") == "offline", timeout=60)
        finally:
            run.kill()
            run.wait(30)
            sub.close()
