"""/metrics (Prometheus text format 0.0.4) and /healthz over HTTP, on 127.0.0.1 by default.

    server = MetricsServer(("127.0.0.1", 9464), render=service.metrics_text, health=service.health)
    server.start(); ...; server.stop()

`render()` returns the exposition text; `health()` returns (ok, JSON-ready dict): /healthz
answers 200 when ok, else 503, so a supervisor can restart a wedged service.
"""
from __future__ import annotations

import bisect
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Sequence

from ..errors import UserError


class Histogram:
    """Cumulative-bucket histogram of seconds, as Prometheus reads it."""

    def __init__(self, buckets: Sequence[float]):
        self.buckets = tuple(buckets)
        self.counts = [0] * (len(self.buckets) + 1)      # the last one: above every bucket (+Inf)
        self.sum = 0.0
        self.count = 0
        self._values: list = []                          # the most recent values, for quantiles
        self._lock = threading.Lock()

    def observe(self, v: float) -> None:
        with self._lock:
            self.counts[bisect.bisect_left(self.buckets, v)] += 1
            self.sum += v
            self.count += 1
            self._values.append(v)
            if len(self._values) > 100_000:
                del self._values[:50_000]

    def quantile(self, q: float) -> float:
        """The q-quantile (0..1) of the recent values (0.0 when none)."""
        with self._lock:
            v = sorted(self._values)
        return v[min(len(v) - 1, int(q * len(v)))] if v else 0.0

    def lines(self, name: str, labels: str = "") -> list[str]:
        sep = "," if labels else ""
        out, acc = [], 0
        with self._lock:
            for b, c in zip((*self.buckets, float("inf")), self.counts):
                acc += c
                le = "+Inf" if b == float("inf") else repr(b)
                out.append(f'{name}_bucket{{{labels}{sep}le="{le}"}} {acc}')
            brace = f"{{{labels}}}" if labels else ""
            out += [f"{name}_sum{brace} {self.sum:.6f}", f"{name}_count{brace} {self.count}"]
        return out


def label_value(v: str) -> str:
    """A Prometheus label value, escaped (backslash, quote, newline)."""
    return str(v).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class MetricsText:
    """Builds an exposition: `family(name, type, help)` then `sample(name, value, **labels)`."""

    def __init__(self):
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help_: str) -> None:
        self.lines += [f"# HELP {name} {help_}", f"# TYPE {name} {kind}"]

    def sample(self, name: str, value, **labels) -> None:
        lab = ",".join(f'{k}="{label_value(v)}"' for k, v in labels.items())
        self.lines.append(f"{name}{{{lab}}} {value}" if lab else f"{name} {value}")

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


class MetricsServer:
    """A small threaded HTTP server for /metrics and /healthz; port 0 picks a free port."""

    def __init__(self, address: tuple, render: Callable[[], str], health: Callable[[], tuple]):
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                if self.path == "/metrics":
                    body, status, ctype = render().encode(), 200, "text/plain; version=0.0.4; charset=utf-8"
                elif self.path == "/healthz":
                    ok, doc = health()
                    body, status, ctype = json.dumps(doc).encode(), 200 if ok else 503, "application/json"
                else:
                    body, status, ctype = b"not found; try /metrics or /healthz\n", 404, "text/plain"
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):    # no access log on stderr
                pass

        try:
            self.httpd = ThreadingHTTPServer(address, Handler)
        except OSError as e:
            raise UserError(f"metrics.listen: cannot listen on {address[0]}:{address[1]} ({e.strerror}); "
                            f"expected a free local port")
        self.httpd.daemon_threads = True
        self.address = self.httpd.server_address[:2]
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="metrics", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
