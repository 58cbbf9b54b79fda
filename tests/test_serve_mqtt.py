"""The MQTT sink against a real mosquitto broker on a free loopback port, with a password file
and (for TLS) a certificate authority made here: Home Assistant discovery payloads, and every
event delivered exactly once and in order across a broker restart in the middle of a run."""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from clap_rt.serve.config import load_config
from clap_rt.serve.service import Service
from clap_rt.serve.sinks.mqtt import discovery_messages, topic_slugs
from fakes import FakeClap
from test_serve import BANDS, read_jsonl, reference_events, streams_toml, write_config, write_scenes

mqtt = pytest.importorskip("paho.mqtt.client")
MOSQUITTO = shutil.which("mosquitto") or (os.path.exists("/usr/sbin/mosquitto") and "/usr/sbin/mosquitto")
pytestmark = pytest.mark.skipif(not MOSQUITTO, reason="the mosquitto broker is not installed (apt install mosquitto)")

USER, PASSWORD = "clap", "broker-test-pw"
OBJECT_ID = re.compile(r"^[a-zA-Z0-9_-]+$")


def wait_until(pred, timeout: float, poll: float = 0.02) -> bool:
    """Poll `pred` until true (True) or `timeout` s passed (False)."""
    end = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > end:
            return False
        time.sleep(poll)
    return True


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    """mosquitto on 127.0.0.1:port with a password file and a persistent store (so a restart
    keeps the subscribers' sessions, as a broker on a box would)."""

    def __init__(self, folder: Path, tls: dict | None = None):
        self.folder, self.port = folder, free_port()
        folder.mkdir(parents=True, exist_ok=True)
        pw = folder / "passwd"
        pw.write_text(f"{USER}:{PASSWORD}\n")
        pw.chmod(0o600)
        subprocess.run(["mosquitto_passwd", "-U", str(pw)], check=True, capture_output=True)
        lines = [f"listener {self.port} 127.0.0.1", "allow_anonymous false", f"password_file {pw}",
                 "persistence true", f"persistence_location {folder}/"]
        if os.geteuid() == 0:
            lines.append("user root")      # no drop to the mosquitto user, who cannot read tmp files
        if tls:
            lines += [f"cafile {tls['ca']}", f"certfile {tls['cert']}", f"keyfile {tls['key']}"]
        (folder / "mosquitto.conf").write_text("\n".join(lines) + "\n")
        self.proc = None

    def start(self) -> None:
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.folder / "mosquitto.conf")],
                                     stdout=subprocess.DEVNULL, stderr=open(self.folder / "log", "ab"))
        ok = wait_until(self._listening, 10)
        assert ok, f"mosquitto did not start: {(self.folder / 'log').read_text()}"

    def _listening(self) -> bool:
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
            return True
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)      # mosquitto saves its store on the way out
            self.proc.wait(10)


@pytest.fixture
def broker(tmp_path):
    b = Broker(tmp_path / "broker")
    b.start()
    yield b
    b.stop()


class Subscriber:
    """A persistent-session test client that records every message on clap_rt/# and homeassistant/#,
    subscribed at QoS 2: exactly once from the broker, also across its restart."""

    def __init__(self, port: int, client_id: str = "test-sub", clean: bool = False, tls_ca: str | None = None):
        self.messages: list = []
        self.lock = threading.Lock()
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=clean,
                             protocol=mqtt.MQTTv311)
        self.c.username_pw_set(USER, PASSWORD)
        if tls_ca:
            self.c.tls_set(ca_certs=tls_ca)
        self.c.reconnect_delay_set(1, 1)
        self.subscribed = threading.Event()
        self.c.on_message = self._on_message
        self.c.on_subscribe = lambda *a: self.subscribed.set()
        self.c.connect("127.0.0.1", port)
        self.c.subscribe([("clap_rt/#", 2), ("homeassistant/#", 2)])
        self.c.loop_start()
        assert self.subscribed.wait(5)

    def _on_message(self, client, userdata, msg) -> None:
        with self.lock:
            self.messages.append((msg.topic, msg.payload.decode(), msg.retain))

    def states(self) -> list:
        with self.lock:
            return [json.loads(p) for t, p, _ in self.messages if t.endswith("/state")]

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


def mqtt_config(tmp_path: Path, port: int, extra: str = "") -> str:
    (tmp_path / "mqtt.pw").write_text(PASSWORD + "\n")
    (tmp_path / "mqtt.pw").chmod(0o600)
    return ('[metrics]\nenabled = false\n[outbox]\ndir = "ob"\nretry_max_seconds = 0.5\ndrain_seconds = 20\n'
            '[[sink]]\ntype = "jsonl"\npath = "events.jsonl"\n\n'
            f'[[sink]]\ntype = "mqtt"\nport = {port}\nusername = "{USER}"\npassword_file = "mqtt.pw"\n{extra}\n')


def run_in_thread(service: Service):
    stop = threading.Event()
    t = threading.Thread(target=service.run, args=(stop,))
    t.start()
    return t, stop


def test_home_assistant_discovery_payloads_follow_the_schema():
    msgs = discovery_messages({"kitchen": ["smoke alarm", "Glass breaking!"], "yard": ["dog"]},
                              "clap_rt", "homeassistant", 1)
    assert [t for t, _ in msgs] == ["homeassistant/binary_sensor/clap_rt_kitchen_smoke_alarm/config",
                                    "homeassistant/binary_sensor/clap_rt_kitchen_glass_breaking/config",
                                    "homeassistant/binary_sensor/clap_rt_yard_dog/config"]
    for topic, p in msgs:
        # <discovery_prefix>/<component>/<object_id>/config, object_id = unique_id ([a-zA-Z0-9_-])
        prefix, component, object_id, leaf = topic.split("/")
        assert (prefix, component, leaf) == ("homeassistant", "binary_sensor", "config")
        assert OBJECT_ID.match(object_id) and object_id == p["unique_id"]
        assert {"name", "unique_id", "device", "state_topic", "payload_on", "payload_off"} <= set(p)
        assert (p["payload_on"], p["payload_off"]) == ("ON", "OFF")
        assert not set("#+") & set(p["state_topic"]) and p["json_attributes_topic"] == p["state_topic"]
        assert p["device"]["identifiers"] == [f"clap_rt_{p['state_topic'].split('/')[1]}"]
        assert p["availability_topic"] == "clap_rt/status"
        assert (p["payload_available"], p["payload_not_available"]) == ("online", "offline")
        json.dumps(p)
    assert topic_slugs(["a b", "a_b", "A-B"]) == {"a b": "a_b", "a_b": "a_b_2", "A-B": "a-b"}


def test_events_reach_the_broker_with_discovery_and_availability(tmp_path, broker):
    paths = write_scenes(tmp_path)
    sub = Subscriber(broker.port)
    cfg = write_config(tmp_path, mqtt_config(tmp_path, broker.port) + streams_toml(paths))
    service = Service(load_config(str(cfg)), clap=FakeClap(BANDS), log=lambda m: None)
    t, _ = run_in_thread(service)
    t.join(30)
    assert not t.is_alive()
    assert wait_until(lambda: ("clap_rt/status", "offline", False) in sub.messages, 5)
    sub.close()
    reference = [r["id"] for r in read_jsonl(tmp_path / "events.jsonl")]
    states = sub.states()
    assert [s["id"] for s in states] == reference
    for name, path in paths.items():
        got = [(s["event"], s["label"], s["time"]) for s in states if s["stream"] == name]
        assert got == reference_events(FakeClap(BANDS), path, 0.25)
    assert all(s["state"] == ("ON" if s["event"] == "start" else "OFF") for s in states)
    topics = [t for t, _, _ in sub.messages]
    configs = [t for t in topics if t.startswith("homeassistant/")]
    assert sorted(configs) == sorted(f"homeassistant/binary_sensor/clap_rt_{s}_{b}/config"
                                     for s in paths for b in BANDS)
    assert topics.index("clap_rt/status") < topics.index(next(t for t in topics if t.endswith("/state")))
    # Home Assistant reads the retained state when it starts: the last event of each sensor
    # that had one (stream c never heard the high tone)
    late = Subscriber(broker.port, client_id="late", clean=True)
    assert wait_until(lambda: len([m for m in late.messages if m[0].endswith("/state")]) == 5, 5)
    late.close()
    assert ("clap_rt/status", "offline", True) in late.messages


def test_a_broker_restart_loses_and_duplicates_nothing(tmp_path, broker):
    # Long scenes with an event every second, so events are produced while the broker is down.
    scenes = {n: [(f, t + 0.3, t + 0.8) for t, f in zip(range(12), [500.0, 3000.0] * 6)] for n in "abc"}
    paths = write_scenes(tmp_path, scenes)
    sub = Subscriber(broker.port)
    cfg = write_config(tmp_path, mqtt_config(tmp_path, broker.port, "qos = 2\n") + streams_toml(paths, speed=3.0))
    service = Service(load_config(str(cfg)), clap=FakeClap(BANDS), log=lambda m: None)
    t, _ = run_in_thread(service)
    mq = service.deliveries[1]
    assert wait_until(lambda: len(sub.states()) >= 6, 10), "no events before the restart"
    broker.stop()
    assert wait_until(lambda: len(mq.outbox) >= 3, 10), "no events were held while the broker was down"
    held = len(mq.outbox)
    broker.start()
    t.join(60)
    assert not t.is_alive()
    assert wait_until(lambda: ("clap_rt/status", "offline", False) in sub.messages, 10)
    sub.close()
    reference = read_jsonl(tmp_path / "events.jsonl")
    ids = [s["id"] for s in sub.states()]
    assert len(ids) == len(set(ids)), f"duplicates: {len(ids) - len(set(ids))}"
    assert ids == [r["id"] for r in reference], f"{len(ids)} delivered of {len(reference)}"
    for name, path in paths.items():
        assert [(r["event"], r["label"], r["time"]) for r in reference if r["stream"] == name] == \
            reference_events(FakeClap(BANDS), path, 0.25)
    assert len(mq.outbox) == 0 and mq.delivered == len(reference)


def make_ca(folder: Path) -> dict:
    """A test CA and a server certificate for 127.0.0.1 signed by it (openssl)."""
    folder.mkdir(parents=True, exist_ok=True)
    p = {k: str(folder / f"{k}.pem") for k in ("ca", "ca_key", "cert", "key", "csr")}
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run = lambda *a: subprocess.run(["openssl", *a], check=True, capture_output=True)
    run("req", "-x509", *ec, "-keyout", p["ca_key"], "-out", p["ca"], "-days", "1", "-subj", "/CN=clap-rt test CA")
    run("req", *ec, "-keyout", p["key"], "-out", p["csr"], "-subj", "/CN=127.0.0.1")
    ext = folder / "san.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1\n")
    run("x509", "-req", "-in", p["csr"], "-CA", p["ca"], "-CAkey", p["ca_key"], "-CAcreateserial",
        "-out", p["cert"], "-days", "1", "-extfile", str(ext))
    return p


@pytest.mark.skipif(not shutil.which("openssl"), reason="openssl is not installed")
def test_tls_with_a_test_ca(tmp_path):
    certs = make_ca(tmp_path / "ca")
    broker = Broker(tmp_path / "broker", tls=certs)
    broker.start()
    try:
        sub = Subscriber(broker.port, tls_ca=certs["ca"])
        paths = write_scenes(tmp_path, {"a": [(500.0, 1.0, 2.5)]})
        extra = f'tls = true\nca_file = "{certs["ca"]}"\n'
        cfg = write_config(tmp_path, mqtt_config(tmp_path, broker.port, extra) + streams_toml(paths))
        service = Service(load_config(str(cfg)), clap=FakeClap(BANDS), log=lambda m: None)
        t, _ = run_in_thread(service)
        t.join(30)
        assert wait_until(lambda: ("clap_rt/status", "offline", False) in sub.messages, 5)
        sub.close()
        assert [s["id"] for s in sub.states()] == [r["id"] for r in read_jsonl(tmp_path / "events.jsonl")] != []
        # a client that does not trust the test CA (the system's CAs only) never connects
        cfg = write_config(tmp_path, mqtt_config(tmp_path, broker.port, "tls = true\n") + streams_toml(paths))
        sink = Service(load_config(str(cfg)), clap=FakeClap(BANDS), log=lambda m: None).deliveries[1].sink
        sink.open({"a": ["low"]})
        time.sleep(1.5)
        assert not sink.connected
        sink.close()
    finally:
        broker.stop()
