"""clap-rt serve: config validation, the multi-stream scheduler, the outbox and the JSON lines sink.

Streams are tone soundscapes scored by the tone-band FakeClap (tests/fakes.py), so every
event is known in advance: the service must give exactly the events of the same audio run
through the runtime (ClapStream + EventDetector) one window at a time.
"""
from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from clap_rt.cli import main as cli_main
from clap_rt.detect import EventDetector
from clap_rt.errors import UserError
from clap_rt.serve.config import load_config, parse_config
from clap_rt.serve.outbox import Outbox
from clap_rt.serve.service import Service
from clap_rt.serve.sinks.jsonl import JsonlSink
from clap_rt.stream import ClapStream
from fakes import FakeClap, soundscape

BANDS = {"low": 500.0, "high": 3000.0}
SCENES = {   # stream -> [(freq, onset, offset)] over SECONDS of noise
    "a": [(500.0, 1.0, 2.5), (3000.0, 4.0, 5.0)],
    "b": [(3000.0, 0.5, 1.5), (500.0, 3.0, 5.5)],
    "c": [(500.0, 2.0, 3.0)],
}
SECONDS = 6.0


def write_scenes(tmp: Path, scenes=SCENES) -> dict:
    paths = {}
    for i, (name, events) in enumerate(scenes.items()):
        paths[name] = tmp / f"{name}.wav"
        sf.write(paths[name], soundscape(events, SECONDS, seed=i), 16000)
    return paths


def reference_events(clap, path: Path, hop: float) -> list:
    """The runtime's events for the whole file, every window scored: (kind, label, time)."""
    x, sr = sf.read(path, dtype="float32")
    stream = ClapStream(clap, list(BANDS), sr, hop=hop)
    det = EventDetector(list(BANDS), _thresholds(clap))
    stream.accept_waveform(x)
    stream.input_finished()
    events = []
    while stream.windows_ready:
        events += det.update(stream.score(stream.pop_window()))
    events += det.finish()
    return [(e.kind, e.label, round(e.time, 3)) for e in events]


def _thresholds(clap):
    from clap_rt.labelset import LabelSet
    return LabelSet(list(BANDS)).event_thresholds(*clap.config.event_thresholds)


def write_config(tmp: Path, body: str) -> Path:
    p = tmp / "streams.toml"
    p.write_text(body)
    return p


def streams_toml(paths: dict, speed: float = 20.0, queue: int = 64, hop: float = 0.25) -> str:
    return "".join(f'[[stream]]\nname = "{n}"\nfile = "{p.name}"\nlabels = ["low", "high"]\nhop = {hop}\n'
                   f"speed = {speed}\nqueue = {queue}\n\n" for n, p in paths.items())


def run_service(cfg_path: Path, clap, timeout: float = 20.0, stop: threading.Event | None = None) -> Service:
    service = Service(load_config(str(cfg_path)), clap=clap, log=lambda m: None)
    stop = stop or threading.Event()
    t = threading.Thread(target=service.run, args=(stop,))
    t.start()
    t.join(timeout)
    if t.is_alive():
        stop.set()
        t.join()
        pytest.fail(f"the service did not finish within {timeout} s")
    return service


def read_jsonl(path: Path) -> list:
    return [json.loads(line) for line in path.read_text().splitlines()]


# --- config ----------------------------------------------------------------------------------

BASE = '[[stream]]\nname = "kitchen"\nfile = "k.wav"\nlabels = "siren"\n'


@pytest.mark.parametrize("extra, message", [
    ('hop = -1\n', "stream.kitchen.hop: expected seconds > 0, got -1"),
    ('hopp = 1\n', "stream.kitchen: unknown key 'hopp'; expected one of "),
    ('smoothing = "mean"\n', "stream.kitchen.smoothing: expected one of median, ema, none, got 'mean'"),
    ('smooth_windows = 4\n', "stream.kitchen.smooth_windows: expected an odd number >= 1, got 4"),
    ('on = 0.3\noff = 0.4\n', "stream.kitchen.off: expected off <= on, got on=0.3 off=0.4"),
    ('device = 2\n', "stream.kitchen: expected exactly one input key of file, stdin, device, url, got file, device"),
    ('queue = 0\n', "stream.kitchen.queue: expected an integer >= 1, got 0"),
    ('[engine]\nbackend = "tpu"\n', "engine.backend: expected one of auto, torch, onnx, trt, cuda, got 'tpu'"),
    ('[[stream]]\nname = "kitchen"\nstdin = true\nrate = 16000\nlabels = "x"\n',
     "config.stream: duplicate stream names: ['kitchen']"),
    ('[[sink]]\ntype = "kafka"\n', "sink[0].type: expected one of jsonl, mqtt, webhook, got 'kafka'"),
    ('[[sink]]\ntype = "webhook"\nurl = "http://example.org/hook"\n',
     "sink.webhook.url: expected https:// for a host that is not loopback, got 'http://example.org/hook'"),
    ('[[sink]]\ntype = "webhook"\nurl = "https://u:p@example.org/hook"\n',
     "sink.webhook.url: expected no user:password in the URL; use token_env / token_file"),
    ('[[sink]]\ntype = "webhook"\nurl = "ftp://example.org/"\n',
     "sink.webhook.url: expected an http:// or https:// URL with a host, got 'ftp://example.org/'"),
    ('[[sink]]\ntype = "mqtt"\nqos = 0\n', "sink.mqtt.qos: expected 1 or 2: QoS 0 is not acknowledged"),
    ('[[sink]]\ntype = "mqtt"\nusername = "u"\npassword_env = "CLAP_RT_TEST_UNSET"\n',
     "sink.mqtt.password_env: environment variable CLAP_RT_TEST_UNSET is not set or empty"),
    ('[metrics]\nlisten = "9464"\n', 'metrics.listen: expected "host:port" with a port 0-65535'),
])
def test_config_errors_name_the_key(tmp_path, extra, message):
    # Tables after [[stream]] keys would belong to the stream: put the extra text first when it opens one.
    body = (extra + BASE) if extra.startswith("[") and not extra.startswith("[[stream") else BASE + extra
    with pytest.raises(UserError) as e:
        load_config(str(write_config(tmp_path, body)))
    assert str(e.value).startswith(f"{tmp_path / 'streams.toml'}: "), str(e.value)
    assert message in str(e.value), str(e.value)


def test_config_defaults_secret_file_and_paths(tmp_path, monkeypatch):
    secret = tmp_path / "token"
    secret.write_text("s3cret\n")
    secret.chmod(0o644)
    body = ('[defaults]\nhop = 0.25\nlabels = ["a", "b"]\n' + BASE.replace('labels = "siren"\n', "") +
            '[[sink]]\ntype = "webhook"\nurl = "http://127.0.0.1:8/x"\ntoken_file = "token"\n')
    with pytest.raises(UserError, match=r"sink.webhook.token_file: .*token is readable by others \(mode 0644\); "
                                        r"expected mode 0600"):
        load_config(str(write_config(tmp_path, body)))
    secret.chmod(0o600)
    cfg = load_config(str(write_config(tmp_path, body)))
    s = cfg.streams[0]
    assert (s.hop, s.labels, s.target) == (0.25, "a, b", str(tmp_path / "k.wav"))
    token = cfg.sinks[0].options["token"]
    assert token.value == "s3cret" and "s3cret" not in repr(cfg)
    monkeypatch.setenv("CLAP_RT_TEST_PW", "pw")
    cfg = parse_config({"stream": [{"name": "x", "stdin": True, "rate": 8000, "labels": "a"}],
                        "sink": [{"type": "mqtt", "username": "u", "password_env": "CLAP_RT_TEST_PW"}]})
    assert cfg.sinks[0].options["password"].value == "pw" and cfg.sinks[0].options["port"] == 1883


def test_cli_bad_config_is_one_line(tmp_path, capsys):
    cfg = write_config(tmp_path, BASE + "hop = 0\n")
    assert cli_main(["serve", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert err == f"clap-rt serve: error: {cfg}: stream.kitchen.hop: expected seconds > 0, got 0\n"


# --- the scheduler ---------------------------------------------------------------------------

def test_streams_give_the_runtimes_events_in_batches(tmp_path):
    paths = write_scenes(tmp_path)
    clap = FakeClap(BANDS)
    cfg = write_config(tmp_path, '[metrics]\nenabled = false\n[outbox]\ndir = "ob"\n'
                                 '[[sink]]\ntype = "jsonl"\npath = "events.jsonl"\n\n' + streams_toml(paths))
    service = run_service(cfg, clap)
    records = read_jsonl(tmp_path / "events.jsonl")
    for name, path in paths.items():
        mine = [r for r in records if r["stream"] == name]
        assert [(r["event"], r["label"], r["time"]) for r in mine] == reference_events(FakeClap(BANDS), path, 0.25)
        assert [r["id"] for r in mine] == [f"{name}-{service.run_id}-{i}" for i in range(1, len(mine) + 1)]
    runners = {r.name: r for r in service.runners}
    total = sum(r.windows for r in runners.values())
    # 6 s at a 0.25 s hop: 21 full 1 s windows and no tail, per stream; none skipped
    assert [(r.windows, r.skipped) for r in runners.values()] == [(21, 0)] * 3
    assert clap.calls == service.scheduler.batches < total, (clap.calls, total)
    assert len(service.deliveries[0].outbox) == 0


def test_incremental_streams_score_as_batched_re_encoding(tmp_path, tiny_model_dir):
    pytest.importorskip("onnxruntime")
    from clap_rt.zeroshot import Clap
    clap = Clap.load(tiny_model_dir, backend="onnx", threads=1)
    for i, name in enumerate("ab"):
        sf.write(tmp_path / f"{name}.wav", soundscape([(500.0 * (i + 1), 1.0, 2.5)], 5.0, rate=44100, seed=i), 44100)
    hop = 24 * 1024 / 44100             # a multiple of the tower's stride: the same windows both ways
    scored = {}
    for incremental in (True, False):
        body = (f'[engine]\nthreads = 2\nincremental = {str(incremental).lower()}\n[metrics]\nenabled = false\n'
                f'[outbox]\ndir = "ob"\n\n')
        body += "".join(f'[[stream]]\nname = "{n}"\nfile = "{n}.wav"\nlabels = ["low", "high"]\nhop = {hop}\n'
                        f'speed = 20\nqueue = 64\n\n' for n in "ab")
        service = Service(load_config(str(write_config(tmp_path, body))), clap=clap, log=lambda m: None)
        got = scored[incremental] = {}
        for r in service.runners:
            def update(w, r=r, update=r.detector.update):
                got[r.name, w.index] = w.scores
                return update(w)
            r.detector.update = update
        assert [r.stream.incremental for r in service.runners] == [incremental] * 2
        assert service.scheduler.parallel == (2 if incremental else 1)     # two streams' steps side by side
        service.run(threading.Event())
        if incremental:
            a = service.runners[0].stream
    assert set(scored[True]) == set(scored[False]) and len(scored[True]) == 2 * 7     # 6 full windows + a tail each
    diff = max(float(np.abs(scored[True][k] - scored[False][k]).max()) for k in scored[True])
    assert diff <= 1e-5, f"max score difference {diff:.2e}"
    assert list(clap.stream_graphs) == [(a.window_frames, a.hop_frames, 1)]   # one pair of step graphs for both


def test_a_slow_engine_skips_windows_fairly_and_counts_them(tmp_path):
    paths = write_scenes(tmp_path)
    clap = FakeClap(BANDS, delay=0.05)           # 50 ms per engine call, any batch size
    cfg = write_config(tmp_path, '[metrics]\nenabled = false\n[engine]\nmax_batch = 2\n'
                                 + streams_toml(paths, speed=8.0, queue=1))
    service = run_service(cfg, clap)
    counts = [(r.windows, r.skipped) for r in service.runners]
    assert all(w + s == 21 for w, s in counts), counts
    assert all(s > 0 for _, s in counts), counts
    scored = [w for w, _ in counts]
    assert max(scored) - min(scored) <= 3, f"unfair: windows scored per stream {scored}"


class StalledSource:
    """A source that never delivers audio and never ends (a camera that went silent)."""
    rate, dropped, overflows, max_qsize, ended = 16000, 0, 0, 0, False

    def start(self):
        pass

    def read(self, timeout=0.0):
        return None

    def stop(self):
        pass


def test_a_stalled_stream_does_not_stall_the_others(tmp_path):
    from clap_rt.serve.sources import open_stream_source
    paths = write_scenes(tmp_path)
    body = streams_toml(paths) + '[[stream]]\nname = "dead"\nstdin = true\nrate = 16000\nlabels = ["low"]\n'
    cfg = write_config(tmp_path, '[metrics]\nenabled = false\n[[sink]]\ntype = "jsonl"\npath = "e.jsonl"\n'
                                 '[outbox]\ndir = "ob"\n' + body)
    service = Service(load_config(str(cfg)), clap=FakeClap(BANDS), log=lambda m: None,
                      open_source=lambda s: StalledSource() if s.name == "dead" else open_stream_source(s))
    stop = threading.Event()
    t = threading.Thread(target=service.run, args=(stop,))
    t.start()
    live = [r for r in service.runners if r.name != "dead"]
    deadline = time.monotonic() + 20
    while not all(r.done for r in live) and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    t.join()
    assert [r.windows for r in live] == [21, 21, 21]
    streams = {r["stream"] for r in read_jsonl(tmp_path / "e.jsonl")}
    assert streams == {"a", "b", "c"}


class BrokenSource(StalledSource):
    """Half a second of audio, then a read error (a file damaged half way)."""

    def __init__(self):
        self.chunks = [np.zeros(1600, np.float32)] * 5

    def read(self, timeout=0.0):
        if self.chunks:
            return self.chunks.pop()
        raise UserError("broken.wav: cannot decode block 5")


def test_a_broken_stream_ends_alone(tmp_path):
    from clap_rt.serve.sources import open_stream_source
    paths = write_scenes(tmp_path, {"a": SCENES["a"]})
    body = streams_toml(paths) + '[[stream]]\nname = "broken"\nstdin = true\nrate = 16000\nlabels = ["low"]\n'
    cfg = write_config(tmp_path, '[metrics]\nenabled = false\n' + body)
    log = []
    service = Service(load_config(str(cfg)), clap=FakeClap(BANDS), log=log.append,
                      open_source=lambda s: BrokenSource() if s.name == "broken" else open_stream_source(s))
    service.run(threading.Event())
    runners = {r.name: r for r in service.runners}
    assert runners["a"].windows == 21 and runners["broken"].failed and runners["broken"].windows == 1  # its half second, as a tail window
    assert "clap-rt serve: stream broken: broken.wav: cannot decode block 5; the stream ends here" in log


# --- the outbox ------------------------------------------------------------------------------

def test_outbox_survives_reopening_a_torn_line_and_compaction(tmp_path):
    box = Outbox(tmp_path / "ob", max_events=10_000)
    for i in range(5):
        box.append({"id": i})
    assert box.peek(0) == {"id": 0}
    box.ack()
    box.ack()
    box.close()
    with open(tmp_path / "ob" / "events-0.jsonl", "ab") as f:
        f.write(b'{"id": 5')                                  # a crash in the middle of a write
    box = Outbox(tmp_path / "ob", max_events=10_000, compact_after=8)
    assert [box.peek(0)["id"], len(box)] == [2, 3]
    for i in range(6, 26):
        box.append({"id": i})
    seen = []
    while len(box) > 5:                                       # 18 acks: compacted once, at 8 of 23
        seen.append(box.peek(0)["id"])
        box.ack()
    assert seen == [2, 3, 4] + list(range(6, 21))
    box.close()
    assert sorted(p.name for p in (tmp_path / "ob").iterdir()) == ["events-1.jsonl", "head"]
    box = Outbox(tmp_path / "ob", max_events=10_000)
    assert (box.peek(0)["id"], len(box)) == (21, 5)


def test_outbox_bound_drops_the_oldest_and_counts(tmp_path):
    box = Outbox(tmp_path / "ob", max_events=3)
    for i in range(5):
        box.append({"id": i})
    assert (box.dropped, len(box), box.peek(0)) == (2, 3, {"id": 2})
    box.close()
    box = Outbox(tmp_path / "ob", max_events=3)
    assert (len(box), box.peek(0)) == (3, {"id": 2})


# --- the JSON lines sink ---------------------------------------------------------------------

def test_jsonl_rotation_keeps_the_newest_files(tmp_path):
    path = tmp_path / "events.jsonl"
    sink = JsonlSink("jsonl", str(path), rotate_bytes=40, keep=2)
    sink.open({})
    for i in range(10):
        sink.send({"id": f"event-{i:02d}"})                    # 20 bytes a line: 2 lines a file
    sink.close()
    files = [path, Path(f"{path}.1"), Path(f"{path}.2")]
    assert [[r["id"] for r in read_jsonl(p)] for p in files] == [
        ["event-08", "event-09"], ["event-06", "event-07"], ["event-04", "event-05"]]
    assert not Path(f"{path}.3").exists()


# --- metrics and health ----------------------------------------------------------------------

def parse_metrics(text: str) -> dict:
    """Prometheus text -> {(name, frozenset(labels)): value}; checks every sample has a TYPE."""
    import re
    types, out = {}, {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            types[name] = kind
        elif line and not line.startswith("#"):
            m = re.fullmatch(r'([a-z_]+)(?:\{(.*)\})? (\S+)', line)
            assert m, f"not a sample line: {line!r}"
            name, labels, value = m.groups()
            base = re.sub(r"_(bucket|sum|count)$", "", name) if name not in types else name
            assert base in types, f"{name} has no # TYPE"
            pairs = frozenset(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', labels or ""))
            out[(name, pairs)] = float(value)
    return out


def test_metrics_and_healthz_over_http(tmp_path):
    import urllib.error
    import urllib.request
    paths = write_scenes(tmp_path)
    cfg = write_config(tmp_path, '[metrics]\nlisten = "127.0.0.1:0"\n[outbox]\ndir = "ob"\n'
                                 '[[sink]]\ntype = "jsonl"\npath = "e.jsonl"\n\n' + streams_toml(paths, speed=4.0))
    service = Service(load_config(str(cfg)), clap=FakeClap(BANDS), log=lambda m: None)
    stop = threading.Event()
    t = threading.Thread(target=service.run, args=(stop,))
    t.start()
    deadline = time.monotonic() + 10
    while (service.metrics is None or not service.runners[0].windows) and time.monotonic() < deadline:
        time.sleep(0.02)
    host, port = service.metrics.address
    assert host == "127.0.0.1"
    base = f"http://127.0.0.1:{port}"
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(base + "/metrics", timeout=5) as r:
        assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        live = parse_metrics(r.read().decode())
    assert live[("clap_rt_windows_scored_total", frozenset({("stream", "a")}))] >= 1
    with opener.open(base + "/healthz", timeout=5) as r:
        doc = json.loads(r.read())
    assert r.status == 200 and doc["status"] == "ok" and set(doc["streams"]) == {"a", "b", "c"}
    with pytest.raises(urllib.error.HTTPError) as e:
        opener.open(base + "/nope", timeout=5)
    assert e.value.code == 404
    t.join(20)
    assert not t.is_alive()
    # after the run: the exposition agrees with the runners' counters and the events written
    final = parse_metrics(service.metrics_text())
    records = read_jsonl(tmp_path / "e.jsonl")
    for r in service.runners:
        s = frozenset({("stream", r.name)})
        assert final[("clap_rt_windows_scored_total", s)] == r.windows == 21
        assert final[("clap_rt_windows_skipped_total", s)] == r.skipped == 0
        assert final[("clap_rt_queue_depth", s)] == 0
        for label in BANDS:
            for kind in ("start", "end"):
                n = sum(x["stream"] == r.name and x["label"] == label and x["event"] == kind for x in records)
                key = ("clap_rt_events_total", frozenset({("stream", r.name), ("label", label), ("kind", kind)}))
                assert final.get(key, 0) == n
    assert final[("clap_rt_window_latency_seconds_count", frozenset())] == 63
    assert final[("clap_rt_window_latency_seconds_bucket", frozenset({("le", "+Inf")}))] == 63
    assert final[("clap_rt_inference_seconds_count", frozenset())] == service.scheduler.batches
    assert final[("clap_rt_sink_delivered_total", frozenset({("sink", "jsonl")}))] == len(records)
    assert final[("clap_rt_sink_backlog", frozenset({("sink", "jsonl")}))] == 0
    service.scheduler.last_step -= 60                       # a wedged loop
    ok, doc = service.health()
    assert (ok, doc["status"]) == (False, "stalled")


def test_cli_serve_with_the_bundled_model(tmp_path, capsys):
    """The real path: `clap-rt serve --config` loads the bundled model, scores a file and
    reports per stream."""
    sf.write(tmp_path / "a.wav", soundscape([(500.0, 0.5, 1.5)], 3.0, rate=44100), 44100)
    cfg = write_config(tmp_path, '[engine]\nthreads = 1\n[metrics]\nenabled = false\n[outbox]\ndir = "ob"\n'
                                 '[[sink]]\ntype = "jsonl"\npath = "e.jsonl"\n\n[[stream]]\nname = "a"\n'
                                 'file = "a.wav"\nlabels = ["dog barking", "siren"]\nhop = 0.5\nspeed = 4\nqueue = 16\n')
    assert cli_main(["serve", "--config", str(cfg)]) == 0
    err = capsys.readouterr().err
    # 3 s at a 0.5 s hop with the model's 2 s window: 3 full windows and the end-aligned tail
    assert "clap-rt serve: stream a: windows 3, skipped 0, dropped chunks 0" in err, err
    events = tmp_path / "e.jsonl"
    assert not events.exists() or all(r["stream"] == "a" for r in read_jsonl(events))


def test_cli_check_builds_everything_without_running(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("clap_rt.zeroshot.Clap.load", lambda *a, **k: FakeClap(BANDS))
    paths = write_scenes(tmp_path)
    cfg = write_config(tmp_path, '[outbox]\ndir = "ob"\n[[sink]]\ntype = "jsonl"\n\n' + streams_toml(paths))
    assert cli_main(["serve", "--config", str(cfg), "--check"]) == 0
    assert capsys.readouterr().out == f"{cfg}: ok: 3 streams (a, b, c), 1 sinks (jsonl)\n"
    (tmp_path / "b.wav").write_bytes(b"not audio")
    assert cli_main(["serve", "--config", str(cfg), "--check"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"clap-rt serve: error: {cfg}: stream.b: ") and "cannot read audio" in err, err


# --- network audio through ffmpeg --------------------------------------------------------------

FAKE_FFMPEG = """#!{python}
# Stands in for ffmpeg: notes its arguments and start time, writes 0.3 s of a 500 Hz tone as
# s16le at the -ar rate, then dies (a camera dropping its stream).
import sys, time, numpy as np
with open({log!r}, "a") as f:
    f.write(repr((time.monotonic(), sys.argv[1:])) + "\\n")
rate = int(sys.argv[sys.argv.index("-ar") + 1])
t = np.arange(int(0.3 * rate)) / rate
sys.stdout.buffer.write((0.3 * np.sin(2 * np.pi * 500 * t) * 32767).astype("<i2").tobytes())
sys.exit(1)
"""


def test_ffmpeg_source_restarts_with_backoff(tmp_path):
    import ast
    import sys
    from clap_rt.serve.sources import FfmpegSource
    log = tmp_path / "starts.log"
    exe = tmp_path / "ffmpeg"
    exe.write_text(FAKE_FFMPEG.format(python=sys.executable, log=str(log)))
    exe.chmod(0o755)
    messages = []
    src = FfmpegSource("rtsp://127.0.0.1:8554/cam", 16000, ffmpeg=str(exe), backoff=0.1, log=messages.append)
    src.start()
    samples, deadline = 0, time.monotonic() + 15
    while src.restarts < 4 and time.monotonic() < deadline:
        chunk = src.read(timeout=0.05)
        samples += 0 if chunk is None else len(chunk)
    src.stop()
    while (chunk := src.read(timeout=0.0)) is not None:
        samples += len(chunk)
    starts = [ast.literal_eval(line) for line in log.read_text().splitlines()]
    assert len(starts) >= 4 and src.ended
    assert starts[0][1] == ["-nostdin", "-hide_banner", "-loglevel", "error", "-i", "rtsp://127.0.0.1:8554/cam",
                            "-vn", "-ac", "1", "-ar", "16000", "-f", "s16le", "-"]
    # the delay between one run's end and the next start doubles: 0.1, 0.2, 0.4 s (+ start-up time)
    gaps = np.diff([t for t, _ in starts[:4]])
    assert all(later > earlier + 0.05 for earlier, later in zip(gaps, gaps[1:])), gaps
    assert samples >= 4 * int(0.3 * 16000)
    assert messages[0] == "clap-rt serve: ffmpeg for rtsp://127.0.0.1:8554/cam exited with status 1; restarting in 0.1 s"


def test_a_url_stream_without_ffmpeg_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    cfg = write_config(tmp_path, '[[stream]]\nname = "cam"\nurl = "rtsp://127.0.0.1/x"\nrate = 16000\nlabels = "low"\n')
    with pytest.raises(UserError) as e:
        Service(load_config(str(cfg)), clap=FakeClap(BANDS))
    assert str(e.value) == (f"{cfg}: stream.cam: url rtsp://127.0.0.1/x: network audio needs ffmpeg on the PATH "
                            f"(apt install ffmpeg)")
