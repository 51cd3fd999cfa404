"""The publishing service: its own thread, a bounded queue, a broker that may come and go.

The control loop calls `MqttTelemetry.offer` every cycle. It returns at once unless a sample
is due (``interval_s`` on the loop's clock); a due sample is taken (`sample.take`) and put on
a bounded queue without waiting: when the queue is full it is dropped and counted. `offer`
never raises: a defect in telemetry is logged once and counted, the cycle goes on.

The thread formats and publishes. paho-mqtt's own network thread connects in the background
and reconnects with backoff (1 s doubling to 30 s); a lost or unreachable broker is one
warning line per outage, and samples published meanwhile are counted as unsent. On every
(re)connection the telemetry thread publishes the discovery documents and ``online``, retained,
before the next sample; the last will
is ``offline``, retained, and a clean stop publishes it too.
"""

from __future__ import annotations

import logging
import queue
import ssl
import threading
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt

from controller.config.loader import ControllerConfig
from controller.shell.mqtt import topics
from controller.shell.mqtt.config import MqttConfig, read_password
from controller.shell.mqtt.sample import Sample, take

log = logging.getLogger("canbms.mqtt")
RECONNECT_MIN_S, RECONNECT_MAX_S = 1, 30
PAHO_QUEUE = 64  # messages paho keeps while a QoS 1 publish waits for the broker
ANNOUNCE_POLL_S = 0.1  # how soon an idle telemetry thread announces a new connection


class MqttTelemetry:
    """Telemetry of one controller to one broker; `start`, then `offer` per cycle, `stop`."""

    def __init__(
        self,
        config: ControllerConfig,
        sampler: Callable[[ControllerConfig, Any, float], Sample] = take,
    ) -> None:
        if config.mqtt is None:
            raise ValueError("telemetry needs an [mqtt] section")
        self.config: MqttConfig = config.mqtt
        self.controller_config = config
        self.catalogue = config.diagnosis
        self.sampler = sampler
        self.offered = 0  # samples put on the queue
        self.dropped = 0  # samples the full queue refused
        self.published = 0  # messages handed to a connected client
        self.unsent = 0  # messages that found no connection
        self.errors = 0  # defects caught in offer or in the thread
        self.connected = threading.Event()
        self._announce = threading.Event()  # a (re)connection: discovery and online are due
        self._due = -float("inf")
        self._queue: queue.Queue[Sample | None] = queue.Queue(self.config.queue_size)
        self._outage = False  # a loss was logged and no connection came since
        self._stopping = False
        self._thread = threading.Thread(target=self._publish_loop, name="canbms-mqtt", daemon=True)
        self._client = self._make_client(read_password(self.config))

    # -- the control loop's side --------------------------------------------------------

    def offer(self, state: Any, now: float) -> None:
        """Queue a sample if one is due; never blocks, never raises."""
        if now < self._due:
            return
        try:
            self._due = now + self.config.interval_s
            self._queue.put_nowait(self.sampler(self.controller_config, state, now))
            self.offered += 1
        except queue.Full:
            self.dropped += 1
        except Exception:  # noqa: BLE001 - telemetry must never stop a control cycle
            self._defect("taking a sample failed")

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        c = self.config
        self._client.connect_async(c.host, c.port, keepalive=c.keepalive_s)
        self._client.loop_start()
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        """Publish what is queued and ``offline``, then disconnect."""
        self._stopping = True
        try:
            self._queue.put(None, timeout=timeout)
        except queue.Full:
            pass
        self._thread.join(timeout)
        if self.connected.is_set():
            info = self._client.publish(
                self.config.availability_topic, topics.OFFLINE, qos=1, retain=True
            )
            try:
                info.wait_for_publish(timeout)
            except (RuntimeError, ValueError):
                pass  # the connection went meanwhile: the last will says offline
        self._client.disconnect()
        self._client.loop_stop()

    def summary(self) -> str:
        return (
            f"mqtt: {self.offered} samples, {self.dropped} dropped, {self.published} messages "
            f"published, {self.unsent} unsent, {self.errors} errors"
        )

    # -- the telemetry thread ---------------------------------------------------------------

    def _publish_loop(self) -> None:
        """Samples in order, each (re)connection's announcement ahead of them; a sample that
        finds no connection is counted unsent, not queued (paho's queue stays for what is in
        flight, so the announcement always fits)."""
        while True:
            self._announce_if_due()
            try:
                sample = self._queue.get(timeout=ANNOUNCE_POLL_S)
            except queue.Empty:
                continue
            if sample is None:
                return
            self._announce_if_due()
            try:
                for topic, payload in topics.messages(self.config, sample, self.catalogue):
                    if self.connected.is_set():
                        self._publish(topic, payload)
                    else:
                        self.unsent += 1
            except Exception:  # noqa: BLE001 - the thread outlives a bad sample
                self._defect("publishing a sample failed")

    def _announce_if_due(self) -> None:
        if not self._announce.is_set():
            return
        self._announce.clear()
        try:
            if self.config.discovery:
                model = f"{self.controller_config.pack.cells}s BMS"
                for topic, payload in topics.discovery(
                    self.config, self.controller_config.pack.modules, model
                ):
                    self._publish(topic, payload, retain=True)
            self._publish(self.config.availability_topic, topics.ONLINE, retain=True)
        except Exception:  # noqa: BLE001 - the thread outlives a defect
            self._defect("publishing the discovery documents failed")

    def _publish(self, topic: str, payload: str, retain: bool = False) -> None:
        """Retained messages (discovery, availability) at QoS 1, samples at the set QoS."""
        qos = 1 if retain else self.config.qos
        info = self._client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc == mqtt.MQTT_ERR_SUCCESS:
            self.published += 1
        else:
            self.unsent += 1

    def _defect(self, what: str) -> None:
        self.errors += 1
        if self.errors == 1:
            log.exception("telemetry: %s (the control loop is not affected)", what)

    # -- the client ------------------------------------------------------------------------

    def _make_client(self, password: str | None) -> mqtt.Client:
        c = self.config
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=c.client_id, protocol=mqtt.MQTTv311
        )
        client.will_set(c.availability_topic, topics.OFFLINE, qos=1, retain=True)
        if c.username is not None:
            client.username_pw_set(c.username, password)
        if c.tls:
            client.tls_set(
                ca_certs=None if c.ca_file is None else str(c.ca_file),
                certfile=None if c.cert_file is None else str(c.cert_file),
                keyfile=None if c.key_file is None else str(c.key_file),
                tls_version=ssl.PROTOCOL_TLS_CLIENT,
            )
        client.reconnect_delay_set(RECONNECT_MIN_S, RECONNECT_MAX_S)
        client.max_queued_messages_set(PAHO_QUEUE)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_connect_fail = self._on_connect_fail
        return client

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            self._lost(f"the broker refused the connection: {reason}")
            return
        log.warning(
            "telemetry: connected to the MQTT broker %s:%d", self.config.host, self.config.port
        )
        self._outage = False
        self.connected.set()
        self._announce.set()  # published by the telemetry thread, ahead of the next sample

    def _on_disconnect(self, _c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        self.connected.clear()
        self._lost(f"connection lost ({reason})")

    def _on_connect_fail(self, _c: Any, _u: Any) -> None:
        self._lost("cannot reach it")

    def _lost(self, why: str) -> None:
        """One warning per outage; the control loop is never told."""
        if not self._outage and not self._stopping:
            self._outage = True
            log.warning(
                "telemetry: MQTT broker %s:%d: %s; retrying in the background, the controller "
                "runs on",
                self.config.host,
                self.config.port,
                why,
            )
