"""The service's config file (TOML), loaded into validated dataclasses.

    cfg = load_config("streams.toml")     # ServeConfig; UserError naming the key on bad input

Every error names the file and the key, e.g. `streams.toml: stream.kitchen.hop: expected
seconds > 0, got -1`; unknown keys are errors too (a typo must not silently keep a default).
Secrets (MQTT password, webhook token / HMAC key) never appear in the file itself: the file
names an environment variable (`*_env`) or a file (`*_file`) readable by its owner only.
"""
from __future__ import annotations

import ipaddress
import os
import re
import stat
import tomllib
import urllib.parse
from dataclasses import dataclass, field
from typing import Any, Optional

from ..detect import DetectorConfig
from ..engine import BACKENDS
from ..errors import UserError
from ..sources import PCM_FORMATS

STREAM_INPUTS = ("file", "stdin", "device", "url")
SINK_TYPES = ("jsonl", "mqtt", "webhook")
NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")       # stream and sink names: MQTT topics, file names
LOOPBACK_HOSTS = ("localhost",)


class Secret:
    """A secret's value that never prints: repr / str show only where it came from."""

    def __init__(self, value: str, origin: str):
        self.value, self.origin = value, origin

    def __repr__(self) -> str:
        return f"Secret(from {self.origin})"

    __str__ = __repr__


@dataclass
class EngineConfig:
    model: Optional[str] = None         # model folder (None: the bundled model)
    backend: str = "auto"
    threads: Optional[int] = None
    max_batch: int = 32                 # windows per engine call
    incremental: bool = True            # streams keep the audio tower's columns where it can (CPU engines)


@dataclass
class StreamConfig:
    name: str
    input: str                          # one of STREAM_INPUTS
    target: Any                         # file path, device (index or name), URL; None for stdin
    labels: str                         # comma-separated, @FILE for packs (LabelSet.parse)
    hop: float = 0.5
    window: Optional[float] = None
    template: Optional[str] = None
    background: Optional[list] = None
    thresholds: Optional[str] = None    # a file from `clap-rt calibrate`
    on: Optional[float] = None
    off: Optional[float] = None
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    speed: float = 1.0                  # file: playback speed (1: real time)
    rate: Optional[int] = None          # stdin / url: PCM rate; device: its rate (None: default)
    channels: int = 1
    format: str = "s16le"
    queue: int = 2                      # windows waiting for the engine; older ones are skipped


@dataclass
class SinkConfig:
    type: str                           # one of SINK_TYPES
    name: str
    options: dict                       # validated per type (see _SINK_KEYS)


@dataclass
class ServeConfig:
    path: str
    engine: EngineConfig
    streams: list
    sinks: list
    metrics: Optional[tuple] = ("127.0.0.1", 9464)   # (host, port); None: no endpoint
    outbox_dir: str = "clap-rt-outbox"
    outbox_max_events: int = 100_000
    retry_max_seconds: float = 30.0                    # longest backoff between delivery attempts
    drain_seconds: float = 5.0                         # at exit: time for sinks to empty their outboxes


class _Table:
    """One TOML table being read: typed getters that name `where.key` in errors, and a check
    that every key was known."""

    def __init__(self, doc: dict, where: str, path: str):
        if not isinstance(doc, dict):
            raise UserError(f"{path}: {where}: expected a table, got {doc!r}")
        self.doc, self.where, self.path, self.used = doc, where, path, set()

    def error(self, key: str, msg: str) -> UserError:
        return UserError(f"{self.path}: {self.where}.{key}: {msg}" if key else f"{self.path}: {self.where}: {msg}")

    def get(self, key: str, types, default=None, expected: str = ""):
        self.used.add(key)
        if key not in self.doc:
            return default
        v = self.doc[key]
        if not isinstance(v, types) or (isinstance(v, bool) and bool not in _as_tuple(types)):
            raise self.error(key, f"expected {expected or _type_names(types)}, got {v!r}")
        return v

    def number(self, key: str, default, lo: float, hi: float = float("inf"), lo_open: bool = False,
               unit: str = "a number"):
        v = self.get(key, (int, float), default, unit)
        if v is not None and not ((v > lo if lo_open else v >= lo) and v <= hi):
            bound = f"> {lo:g}" if lo_open else f">= {lo:g}"
            raise self.error(key, f"expected {unit} {bound}" + (f" and <= {hi:g}" if hi != float("inf") else "")
                             + f", got {v!r}")
        return v

    def integer(self, key: str, default, lo: int):
        v = self.get(key, int, default, f"an integer >= {lo}")
        if v is not None and v < lo:
            raise self.error(key, f"expected an integer >= {lo}, got {v!r}")
        return v

    def choice(self, key: str, default, choices):
        v = self.get(key, str, default, f"one of {', '.join(choices)}")
        if v is not None and v not in choices:
            raise self.error(key, f"expected one of {', '.join(choices)}, got {v!r}")
        return v

    def finish(self) -> None:
        unknown = sorted(set(self.doc) - self.used)
        if unknown:
            raise self.error("", f"unknown key {unknown[0]!r}; expected one of {', '.join(sorted(self.used))}")


def _as_tuple(types) -> tuple:
    return types if isinstance(types, tuple) else (types,)


def _type_names(types) -> str:
    names = {str: "a string", int: "an integer", float: "a number", bool: "true or false",
             list: "a list", dict: "a table"}
    return " or ".join(names.get(t, t.__name__) for t in _as_tuple(types))


def load_config(path: str) -> ServeConfig:
    """Read and validate the TOML file `path` (relative paths inside it are relative to it)."""
    try:
        with open(path, "rb") as f:
            doc = tomllib.load(f)
    except FileNotFoundError:
        raise UserError(f"{path}: config file not found; expected a TOML file (see README: Running as a service)")
    except tomllib.TOMLDecodeError as e:
        raise UserError(f"{path}: invalid TOML ({e})")
    return parse_config(doc, path)


def parse_config(doc: dict, path: str = "config") -> ServeConfig:
    """A parsed TOML document -> ServeConfig; `path` names the file in errors and anchors
    relative paths."""
    base = os.path.dirname(os.path.abspath(path))
    top = _Table(doc, "config", path)
    e = _Table(top.get("engine", dict, {}), "engine", path)
    engine = EngineConfig(model=_path(e.get("model", str), base), backend=e.choice("backend", "auto", BACKENDS),
                          threads=e.integer("threads", None, 1), max_batch=e.integer("max_batch", 32, 1),
                          incremental=e.get("incremental", bool, True))
    e.finish()

    defaults = top.get("defaults", dict, {})
    streams_doc = top.get("stream", list, None, "[[stream]] tables")
    if not streams_doc:
        raise top.error("stream", "expected at least one [[stream]] table with a name, an input and labels")
    streams = [_stream(s, i, defaults, path, base) for i, s in enumerate(streams_doc)]
    _unique([s.name for s in streams], top, "stream", "stream names")
    if sum(s.input == "stdin" for s in streams) > 1:
        raise top.error("stream", "expected at most one stream with stdin = true (there is one stdin)")

    sinks = [_sink(s, i, path, base) for i, s in enumerate(top.get("sink", list, [], "[[sink]] tables"))]
    _unique([s.name for s in sinks], top, "sink", "sink names (set name = ... on sinks of one type)")

    m = _Table(top.get("metrics", dict, {}), "metrics", path)
    metrics = None if m.get("enabled", bool, True) is False else _listen_address(m, "listen", "127.0.0.1:9464")
    m.finish()
    o = _Table(top.get("outbox", dict, {}), "outbox", path)
    cfg = ServeConfig(path, engine, streams, sinks, metrics,
                      outbox_dir=_path(o.get("dir", str, "clap-rt-outbox"), base),
                      outbox_max_events=o.integer("max_events", 100_000, 1),
                      retry_max_seconds=o.number("retry_max_seconds", 30.0, 0.0, lo_open=True, unit="seconds"),
                      drain_seconds=o.number("drain_seconds", 5.0, 0.0, unit="seconds"))
    o.finish()
    top.finish()
    return cfg


def _unique(names: list, table: _Table, key: str, what: str) -> None:
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise table.error(key, f"duplicate {what}: {dupes}")


def _path(p: Optional[str], base: str) -> Optional[str]:
    return None if p is None else os.path.join(base, os.path.expanduser(p))


def _name(t: _Table, key: str, default: Optional[str]) -> str:
    name = t.get(key, str, default)
    if name is None:
        raise t.error(key, "expected a name (letters, digits, _ and -), e.g. name = \"kitchen\"")
    if not NAME_RE.match(name):
        raise t.error(key, f"expected 1-64 letters, digits, _ or -, got {name!r}")
    return name


def _stream(doc: dict, i: int, defaults: dict, path: str, base: str) -> StreamConfig:
    name = doc.get("name") if isinstance(doc, dict) else None
    t = _Table({**defaults, **doc} if isinstance(doc, dict) else doc,
               f"stream.{name}" if isinstance(name, str) else f"stream[{i}]", path)
    name = _name(t, "name", None)
    given = [k for k in STREAM_INPUTS if k in t.doc]
    if len(given) != 1:
        raise t.error("", f"expected exactly one input key of {', '.join(STREAM_INPUTS)}, got "
                          f"{', '.join(given) or 'none'}")
    kind = given[0]
    if kind == "file":
        target = _path(t.get("file", str), base)
    elif kind == "stdin":
        if t.get("stdin", bool) is not True:
            raise t.error("stdin", "expected true (raw PCM on stdin; set rate, channels, format)")
        target = None
    elif kind == "device":
        target = t.get("device", (int, str), expected="a device index or a name")
    else:
        target = t.get("url", str)
        if not urllib.parse.urlsplit(target).scheme:
            raise t.error("url", f"expected a URL ffmpeg reads (rtsp://, http://, ...), got {target!r}")
    labels = t.get("labels", (str, list), None, "a string or a list of labels")
    if labels is None:
        raise t.error("labels", 'expected labels, e.g. labels = ["smoke alarm", "@doorbell.clap"]')
    if isinstance(labels, list):
        bad = [x for x in labels if not isinstance(x, str) or "," in x]
        if bad:
            raise t.error("labels", f"expected a list of strings without commas, got {bad[0]!r}")
        labels = ", ".join(labels)
    if labels.strip().startswith("@") or ", @" in labels:   # packs are relative to the config file
        labels = ", ".join("@" + _path(x.strip()[1:].strip(), base) if x.strip().startswith("@") else x
                           for x in labels.split(","))
    background = t.get("background", list, None, "a list of prompts")
    if background is not None and (not background or not all(isinstance(b, str) and b.strip() for b in background)):
        raise t.error("background", f"expected a non-empty list of prompts, got {background!r}")
    det = DetectorConfig(smoothing=t.choice("smoothing", "median", ("median", "ema", "none")),
                         smooth_windows=t.integer("smooth_windows", 3, 1),
                         ema_alpha=t.number("ema_alpha", 0.5, 0.0, 1.0, lo_open=True),
                         min_duration=t.number("min_duration", 0.0, 0.0, unit="seconds"),
                         debounce=t.number("debounce", 0.0, 0.0, unit="seconds"))
    if det.smooth_windows % 2 == 0:
        raise t.error("smooth_windows", f"expected an odd number >= 1, got {det.smooth_windows}")
    s = StreamConfig(
        name=name, input=kind, target=target, labels=labels,
        hop=t.number("hop", 0.5, 0.0, lo_open=True, unit="seconds"),
        window=t.number("window", None, 0.0, lo_open=True, unit="seconds"),
        template=t.get("template", str), background=background,
        thresholds=_path(t.get("thresholds", str), base),
        on=t.number("on", None, 0.0, 1.0, lo_open=True), off=t.number("off", None, 0.0, 1.0, lo_open=True),
        detector=det, speed=t.number("speed", 1.0, 0.0, lo_open=True, unit="a playback speed"),
        rate=t.integer("rate", None, 1), channels=t.integer("channels", 1, 1),
        format=t.choice("format", "s16le", tuple(PCM_FORMATS)), queue=t.integer("queue", 2, 1))
    if kind in ("stdin", "url") and s.rate is None:
        raise t.error("rate", f"expected the sample rate in Hz of the {kind} PCM, e.g. rate = 16000")
    if s.on is not None and s.off is not None and not s.off <= s.on:
        raise t.error("off", f"expected off <= on, got on={s.on} off={s.off}")
    t.finish()
    return s


_SINK_KEYS = {
    # type: {key: (types, default)}; secrets come as KEY_env / KEY_file pairs (see _secret)
    "jsonl": {"path": (str, "-"), "rotate_bytes": (int, 0), "keep": (int, 5)},
    "mqtt": {"host": (str, "127.0.0.1"), "port": (int, None), "username": (str, None),
             "client_id": (str, "clap-rt"), "topic_prefix": (str, "clap_rt"),
             "discovery_prefix": (str, "homeassistant"), "discovery": (bool, True), "qos": (int, 1),
             "tls": (bool, False), "ca_file": (str, None), "keepalive": (int, 30)},
    "webhook": {"url": (str, None), "timeout": ((int, float), 5.0), "max_attempts": (int, 3),
                "signature_header": (str, "X-Clap-Rt-Signature")},
}
_SINK_SECRETS = {"jsonl": (), "mqtt": ("password",), "webhook": ("token", "hmac_secret")}


def _sink(doc: dict, i: int, path: str, base: str) -> SinkConfig:
    t = _Table(doc, f"sink[{i}]", path)
    kind = t.choice("type", None, SINK_TYPES)
    if kind is None:
        raise t.error("type", f"expected one of {', '.join(SINK_TYPES)}")
    name = _name(t, "name", kind)
    t.where = f"sink.{name}"
    opts = {k: t.get(k, types, default) for k, (types, default) in _SINK_KEYS[kind].items()}
    for key in _SINK_SECRETS[kind]:
        opts[key] = _secret(t, key)
    if kind == "jsonl":
        if opts["path"] != "-":
            opts["path"] = _path(opts["path"], base)
        for k in ("rotate_bytes", "keep"):
            if opts[k] < 0:
                raise t.error(k, f"expected an integer >= 0, got {opts[k]}")
    elif kind == "mqtt":
        opts["ca_file"] = _path(opts["ca_file"], base)
        if opts["port"] is None:
            opts["port"] = 8883 if opts["tls"] else 1883
        if not 0 < opts["port"] < 65536:
            raise t.error("port", f"expected a TCP port 1-65535, got {opts['port']}")
        if opts["qos"] not in (0, 1, 2):
            raise t.error("qos", f"expected 0, 1 or 2, got {opts['qos']}")
        if opts["qos"] == 0:
            raise t.error("qos", "expected 1 or 2: QoS 0 is not acknowledged, so the outbox could not know "
                                 "an event arrived")
        if opts["password"] is not None and opts["username"] is None:
            raise t.error("username", "expected a username with password_env / password_file")
        if opts["ca_file"] is not None and not opts["tls"]:
            raise t.error("ca_file", "expected tls = true with a ca_file")
        for k in ("topic_prefix", "discovery_prefix"):
            if not opts[k] or any(c in opts[k] for c in "#+") or opts[k].startswith("/") or opts[k].endswith("/"):
                raise t.error(k, f"expected an MQTT topic prefix without wildcards or outer slashes, got {opts[k]!r}")
    else:
        opts["url"] = check_webhook_url(opts["url"], t)
        if opts["token"] is not None and opts["hmac_secret"] is not None:
            raise t.error("token_env", "expected a bearer token or an HMAC secret, not both")
        if not opts["timeout"] > 0:
            raise t.error("timeout", f"expected seconds > 0, got {opts['timeout']}")
        if opts["max_attempts"] < 1:
            raise t.error("max_attempts", f"expected an integer >= 1, got {opts['max_attempts']}")
    t.finish()
    return SinkConfig(kind, name, opts)


def check_webhook_url(url: Optional[str], t: _Table) -> str:
    """A webhook URL: https, or http to a loopback host only (a token or an event must not
    cross a network in clear); no credentials in the URL (they would be logged)."""
    if url is None:
        raise t.error("url", "expected the URL to POST events to, e.g. https://example.org/hooks/clap")
    u = urllib.parse.urlsplit(url)
    if u.scheme not in ("http", "https") or not u.hostname:
        raise t.error("url", f"expected an http:// or https:// URL with a host, got {url!r}")
    if u.username or u.password:
        raise t.error("url", "expected no user:password in the URL; use token_env / token_file")
    if u.scheme == "http" and not _is_loopback(u.hostname):
        raise t.error("url", f"expected https:// for a host that is not loopback, got {url!r}")
    try:
        u.port
    except ValueError:
        raise t.error("url", f"expected a port 1-65535 in {url!r}")
    return url


def _is_loopback(host: str) -> bool:
    if host in LOOPBACK_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _secret(t: _Table, key: str) -> Optional[Secret]:
    """KEY_env = "VAR" (the environment variable's value) or KEY_file = "path" (the file's
    first line; the file must not be readable by group or others)."""
    env, file = t.get(f"{key}_env", str), t.get(f"{key}_file", str)
    if env is not None and file is not None:
        raise t.error(f"{key}_env", f"expected {key}_env or {key}_file, not both")
    if env is not None:
        value = os.environ.get(env)
        if not value:
            raise t.error(f"{key}_env", f"environment variable {env} is not set or empty")
        return Secret(value, f"${env}")
    if file is None:
        return None
    file = _path(file, os.path.dirname(os.path.abspath(t.path)))
    try:
        st = os.stat(file)
        with open(file, encoding="utf-8") as f:
            value = f.readline().strip()
    except OSError as e:
        raise t.error(f"{key}_file", f"cannot read {file} ({e.strerror})")
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise t.error(f"{key}_file", f"{file} is readable by others (mode {stat.S_IMODE(st.st_mode):04o}); "
                                     f"expected mode 0600 (chmod 600 {file})")
    if not value:
        raise t.error(f"{key}_file", f"{file} is empty; expected the secret on its first line")
    return Secret(value, file)


def _listen_address(t: _Table, key: str, default: str) -> tuple:
    v = t.get(key, str, default, '"host:port", e.g. "127.0.0.1:9464"')
    host, sep, port = v.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise t.error(key, f'expected "host:port" with a port 0-65535 (0: any free port), got {v!r}')
    return host.strip("[]"), int(port)
