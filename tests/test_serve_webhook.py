"""The webhook sink against a local HTTP receiver on 127.0.0.1: bearer token and HMAC-SHA256
signatures checked by the receiver, retries while it is down or failing, refused records
dropped and counted; every event delivered once and in order."""
from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from clap_rt.serve.config import load_config
from clap_rt.serve.service import Service
from fakes import FakeClap
from test_serve import BANDS, read_jsonl, streams_toml, write_config, write_scenes
from test_serve_mqtt import free_port

SECRET, TOKEN = "hmac-test-secret", "bearer-test-token"


class Receiver:
    """Records the bodies of valid POSTs; answers `fail_first` requests with 503 and
    `refuse` (event ids) with 400; 401 for a bad token or signature."""

    def __init__(self, port: int, auth: str, fail_first: int = 0, refuse: frozenset = frozenset()):
        self.bodies, self.requests, self.bad_auth = [], 0, 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.requests += 1
                if auth == "token":
                    ok = self.headers.get("Authorization") == f"Bearer {TOKEN}"
                else:
                    want = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
                    ok = hmac.compare_digest(self.headers.get("X-Clap-Rt-Signature", ""), want)
                record = json.loads(body)
                if not ok:
                    outer.bad_auth += 1
                    status = 401
                elif outer.requests <= fail_first:
                    status = 503
                elif record["id"] in refuse:
                    status = 400
                else:
                    assert self.headers["X-Clap-Rt-Event-Id"] == record["id"]
                    outer.bodies.append(record)
                    status = 204
                self.send_response(status)
                self.end_headers()

            def log_message(self, *a):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def webhook_config(tmp_path, port: int, auth: str) -> str:
    (tmp_path / "secret").write_text((SECRET if auth == "hmac" else TOKEN) + "\n")
    (tmp_path / "secret").chmod(0o600)
    key = "hmac_secret_file" if auth == "hmac" else "token_file"
    return ('[metrics]\nenabled = false\n[outbox]\ndir = "ob"\nretry_max_seconds = 0.2\ndrain_seconds = 20\n'
            '[[sink]]\ntype = "jsonl"\npath = "events.jsonl"\n\n'
            f'[[sink]]\ntype = "webhook"\nurl = "http://127.0.0.1:{port}/hook"\n{key} = "secret"\nmax_attempts = 2\n\n')


def run(service: Service, after=None) -> None:
    stop = threading.Event()
    t = threading.Thread(target=service.run, args=(stop,))
    t.start()
    if after:
        after()
    t.join(40)
    assert not t.is_alive()


def test_signed_events_survive_a_receiver_that_is_down_then_failing(tmp_path):
    paths = write_scenes(tmp_path)
    port = free_port()
    cfg = write_config(tmp_path, webhook_config(tmp_path, port, "hmac") + streams_toml(paths))
    log = []
    service = Service(load_config(str(cfg)), clap=FakeClap(BANDS), log=log.append)
    box: dict = {}

    def start_receiver_late():
        time.sleep(0.6)                 # the first events find nobody listening
        box["r"] = Receiver(port, "hmac", fail_first=3)

    run(service, start_receiver_late)
    r = box["r"]
    r.close()
    reference = read_jsonl(tmp_path / "events.jsonl")
    assert [b["id"] for b in r.bodies] == [x["id"] for x in reference] and reference
    assert r.bad_auth == 0 and r.requests == len(reference) + 3
    d = service.deliveries[1]
    assert (d.delivered, d.rejected, len(d.outbox)) == (len(reference), 0, 0) and d.failures >= 4
    assert any("sink webhook is down" in m for m in log) and not any(SECRET in m for m in log)


def test_bearer_token_and_a_refused_event(tmp_path):
    paths = write_scenes(tmp_path, {"a": [(500.0, 1.0, 2.5), (3000.0, 4.0, 5.0)]})
    port = free_port()
    refuse = frozenset({"a-RUN-2"})
    cfg = write_config(tmp_path, webhook_config(tmp_path, port, "token") + streams_toml(paths))
    service = Service(load_config(str(cfg)), clap=FakeClap(BANDS), log=lambda m: None)
    r = Receiver(port, "token", refuse=frozenset(x.replace("RUN", service.run_id) for x in refuse))
    try:
        run(service)
    finally:
        r.close()
    reference = [x["id"] for x in read_jsonl(tmp_path / "events.jsonl")]
    assert len(reference) == 4
    assert [b["id"] for b in r.bodies] == [reference[0]] + reference[2:]
    assert r.requests == 5 and r.bad_auth == 0              # the refused event: max_attempts = 2 tries
    assert (service.deliveries[1].rejected, service.deliveries[1].delivered) == (1, 3)


def test_events_left_in_the_outbox_go_first_on_the_next_run(tmp_path):
    paths = write_scenes(tmp_path, {"a": [(500.0, 1.0, 2.5)]})
    port = free_port()
    body = webhook_config(tmp_path, port, "token").replace("drain_seconds = 20", "drain_seconds = 0.2")
    cfg = write_config(tmp_path, body + streams_toml(paths))
    log = []
    first = Service(load_config(str(cfg)), clap=FakeClap(BANDS), log=log.append)
    run(first)                                   # nobody listens: both events stay in the outbox
    assert len(first.deliveries[1].outbox) == 2
    assert "clap-rt serve: sink webhook: 2 events left in the outbox for the next run" in log
    r = Receiver(port, "token")
    try:
        second = Service(load_config(str(cfg)), clap=FakeClap(BANDS), log=lambda m: None)
        run(second)
    finally:
        r.close()
    ids = [b["id"] for b in r.bodies]
    assert ids == [f"a-{first.run_id}-1", f"a-{first.run_id}-2", f"a-{second.run_id}-1", f"a-{second.run_id}-2"]
