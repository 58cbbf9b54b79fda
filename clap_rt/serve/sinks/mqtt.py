"""MQTT: one retained state message per event, Home Assistant discovery, availability.

Topics (prefix `clap_rt`, discovery prefix `homeassistant`):
    clap_rt/status                               "online" / "offline" (retained; the will)
    clap_rt/<stream>/<label>/state               the event record + "state": "ON" / "OFF" (retained)
    homeassistant/binary_sensor/<unique_id>/config   discovery, one per stream x label (retained)
where <label> is the label as a topic-safe slug and unique_id = clap_rt_<stream>_<label>.

Delivery: each record is published once, at QoS 1 (or 2), and `send` returns when the broker
acknowledged it; if the connection drops first, the client library sends it again on
reconnect, and `send` keeps waiting for that same message instead of publishing a second copy.
The next record is published only after the previous one was acknowledged, so a stream's
events arrive in order. QoS 1 is at least once: a broker that goes down after taking a message
but before acknowledging it gets it again (the record id tells the copies apart); QoS 2 with a
persistent session on a broker with persistence is exactly once across a broker restart.
"""
from __future__ import annotations

import json
import re
import sys
import threading
from typing import Optional

from ... import __version__
from . import Sink, SinkDown

PAYLOAD_ON, PAYLOAD_OFF = "ON", "OFF"
AVAILABLE, NOT_AVAILABLE = "online", "offline"
ACK_TIMEOUT = 5.0           # s to wait for the broker's acknowledgement before retrying later


def slug(label: str) -> str:
    """A label as a topic level / Home Assistant object id: [a-z0-9_-] only."""
    return re.sub(r"[^a-z0-9_-]+", "_", label.lower()).strip("_") or "label"


def topic_slugs(labels: list) -> dict:
    """{label: slug}, unique per stream (a clash gets a numeric suffix)."""
    out, seen = {}, set()
    for label in labels:
        s, k = slug(label), 2
        while s in seen:
            s, k = f"{slug(label)}_{k}", k + 1
        seen.add(s)
        out[label] = s
    return out


def discovery_messages(streams: dict, prefix: str, discovery_prefix: str, qos: int) -> list:
    """[(topic, payload dict)] of the Home Assistant MQTT discovery configs: one binary sensor
    per stream x label, grouped into one device per stream."""
    out = []
    for stream, labels in streams.items():
        device = {"identifiers": [f"clap_rt_{stream}"], "name": f"clap-rt {stream}",
                  "manufacturer": "clap_rt", "model": "clap-rt serve", "sw_version": __version__}
        for label, s in topic_slugs(labels).items():
            uid = f"clap_rt_{stream}_{s}"
            state = f"{prefix}/{stream}/{s}/state"
            out.append((f"{discovery_prefix}/binary_sensor/{uid}/config", {
                "name": label, "unique_id": uid, "device_class": "sound", "device": device,
                "state_topic": state, "value_template": "{{ value_json.state }}",
                "payload_on": PAYLOAD_ON, "payload_off": PAYLOAD_OFF,
                "json_attributes_topic": state, "availability_topic": f"{prefix}/status",
                "payload_available": AVAILABLE, "payload_not_available": NOT_AVAILABLE, "qos": qos}))
    return out


class MqttSink(Sink):
    """Events to an MQTT broker (paho-mqtt), with TLS and username / password if configured."""

    def __init__(self, name: str, host: str, port: int, username: Optional[str], password, client_id: str,
                 topic_prefix: str, discovery_prefix: str, discovery: bool, qos: int, tls: bool,
                 ca_file: Optional[str], keepalive: int, log=lambda m: print(m, file=sys.stderr, flush=True)):
        try:
            import paho.mqtt.client as mqtt
        except ImportError as e:
            raise RuntimeError("the MQTT sink requires the paho-mqtt package (pip install paho-mqtt)") from e
        self.name, self.host, self.port, self.qos = name, host, port, qos
        self.prefix, self.discovery_prefix, self.discovery = topic_prefix, discovery_prefix, discovery
        self.log = log
        # QoS 2 is exactly once across a reconnect only if the broker keeps this client's session
        # (the packet ids it has seen), so that session is not cleaned.
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311,
                                  clean_session=qos < 2)
        if username is not None:
            self.client.username_pw_set(username, password.value if password is not None else None)
        if tls:
            self.client.tls_set(ca_certs=ca_file)
        self.client.will_set(self.status_topic, NOT_AVAILABLE, qos=1, retain=True)
        self.client.reconnect_delay_set(1, 30)
        self.client.on_connect, self.client.on_disconnect = self._on_connect, self._on_disconnect
        self.client.on_publish = self._on_publish
        self.keepalive = keepalive
        self.connected = False
        self._cond = threading.Condition()
        self._acked: set = set()                 # mids the broker acknowledged since the last record
        self._head: Optional[tuple] = None       # (record id, mid) published and not yet acknowledged
        self._slugs: dict = {}
        self._streams: dict = {}
        self._refused: Optional[str] = None

    @property
    def status_topic(self) -> str:
        return f"{self.prefix}/status"

    def state_topic(self, stream: str, label: str) -> str:
        return f"{self.prefix}/{stream}/{self._slugs[stream][label]}/state"

    def open(self, streams: dict) -> None:
        self._streams = streams
        self._slugs = {s: topic_slugs(labels) for s, labels in streams.items()}
        self.client.connect_async(self.host, self.port, self.keepalive)
        self.client.loop_start()

    def _on_connect(self, client, userdata, flags, reason, properties) -> None:
        if reason.is_failure:
            if self._refused != str(reason):
                self.log(f"clap-rt serve: sink {self.name}: the broker at {self.host}:{self.port} refused the "
                         f"connection ({reason})")
            self._refused = str(reason)
            return
        self._refused = None
        if self.discovery:
            for topic, payload in discovery_messages(self._streams, self.prefix, self.discovery_prefix, self.qos):
                client.publish(topic, json.dumps(payload), qos=1, retain=True)
        client.publish(self.status_topic, AVAILABLE, qos=1, retain=True)
        with self._cond:
            self.connected = True
            self._cond.notify_all()

    def _on_disconnect(self, client, userdata, flags, reason, properties) -> None:
        with self._cond:
            self.connected = False

    def _on_publish(self, client, userdata, mid, reason, properties) -> None:
        with self._cond:
            self._acked.add(mid)
            self._cond.notify_all()

    def send(self, record: dict) -> None:
        if self._head is None or self._head[0] != record["id"]:
            if not self.connected:
                raise SinkDown(f"not connected to {self.host}:{self.port}")
            state = PAYLOAD_ON if record["event"] == "start" else PAYLOAD_OFF
            payload = json.dumps({**record, "state": state})
            # Not under self._cond: the client's network thread takes it in _on_publish.
            info = self.client.publish(self.state_topic(record["stream"], record["label"]), payload,
                                       qos=self.qos, retain=True)
            self._head = (record["id"], info.mid)
        mid = self._head[1]
        with self._cond:
            if not self._cond.wait_for(lambda: mid in self._acked, ACK_TIMEOUT):
                raise SinkDown(f"no acknowledgement from {self.host}:{self.port} within {ACK_TIMEOUT:.0f} s")
            # One record is in flight at a time, so every other acknowledgement seen so far
            # (discovery, status) is done with; clearing keeps a reused mid from matching.
            self._acked.clear()
        self._head = None

    def close(self) -> None:
        if self.connected:
            self.client.publish(self.status_topic, NOT_AVAILABLE, qos=1, retain=True).wait_for_publish(2.0)
        self.client.disconnect()
        self.client.loop_stop()
