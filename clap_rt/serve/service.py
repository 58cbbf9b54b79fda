"""The service: config -> streams on one engine -> outboxes -> sinks; metrics and health.

    serve("streams.toml")                  # runs until every stream ended, or SIGTERM / Ctrl-C
    Service(load_config(path), clap=...)   # the same with a given model (tests, benchmarks)
"""
from __future__ import annotations

import os
import signal
import sys
import threading
import time
import types
from typing import Callable, Optional

from ..cli.listen import load_thresholds
from ..detect import DEFAULT_BACKGROUND, EventDetector
from ..errors import UserError
from ..labelset import LabelSet
from ..stream import ClapStream
from .config import ServeConfig, load_config
from .metrics import MetricsServer, MetricsText
from .outbox import Outbox
from .scheduler import Scheduler, StreamRunner
from .sinks import Delivery, make_sink
from .sources import open_stream_source

HEALTH_STALL = 5.0          # s without a scheduling round before /healthz reports a stall


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


class Service:
    """Everything `clap-rt serve` runs, built (and validated) from a `ServeConfig`.

    clap: the model (None: `Clap.load` of the config's engine); open_source(stream_config):
    where audio comes from (default: `open_stream_source`).
    """

    def __init__(self, cfg: ServeConfig, clap=None, open_source: Callable = open_stream_source,
                 log: Callable[[str], None] = _log):
        self.cfg, self.log = cfg, log
        if clap is None:
            from ..zeroshot import Clap
            e = cfg.engine
            clap = Clap.load(e.model, backend=e.backend, threads=e.threads)
        self.clap = clap
        self.run_id = _base36(int(time.time() * 1000))
        self.runners = [self._runner(s, open_source) for s in cfg.streams]
        self.scheduler = Scheduler(clap, self.runners, cfg.engine.max_batch, self._fan_out,
                                   workers=cfg.engine.threads or os.cpu_count() or 1)
        self.deliveries = [Delivery(make_sink(s), Outbox(os.path.join(cfg.outbox_dir, s.name), cfg.outbox_max_events),
                                    cfg.retry_max_seconds, log) for s in cfg.sinks]
        self.metrics: Optional[MetricsServer] = None
        self.started = time.monotonic()

    def _runner(self, s, open_source) -> StreamRunner:
        where = f"{self.cfg.path}: stream.{s.name}"
        try:
            labels = LabelSet.parse(s.labels, f"{where}.labels")
            labels.check_model(self.clap)
            th = load_thresholds(types.SimpleNamespace(thresholds=s.thresholds, on=s.on, off=s.off), labels,
                                 self.clap.config.event_thresholds)
            detector = EventDetector(labels.names, th, s.detector)
            source = open_source(s)
            stream = ClapStream(self.clap, labels, source.rate, hop=s.hop, window=s.window,
                                background=s.background or list(th.background or DEFAULT_BACKGROUND),
                                template=s.template or th.template,
                                # None: where the tower allows it; False: every window batched
                                incremental=None if self.cfg.engine.incremental else False,
                                tower_threads=1)    # the scheduler runs streams' steps side by side
        except UserError as e:
            msg = str(e)
            raise UserError(msg if msg.startswith(self.cfg.path) else f"{where}: {msg}")
        if stream.notice:
            self.log(f"clap-rt serve: stream {s.name}: {stream.notice}")
        return StreamRunner(s.name, source, stream, detector, s.queue, self.run_id, log=self.log)

    def _fan_out(self, records: list) -> None:
        for d in self.deliveries:
            for r in records:
                d.outbox.append(r)

    # --- lifecycle -----------------------------------------------------------------------

    def run(self, stop: threading.Event) -> int:
        """Serve until every stream ended or `stop` is set; then close open events, give the
        sinks `drain_seconds` to deliver, and leave what is left in the outboxes."""
        streams = {r.name: r.stream.labels for r in self.runners}
        for d in self.deliveries:
            d.sink.open(streams)
            d.start()
        if self.cfg.metrics is not None:
            self.metrics = MetricsServer(self.cfg.metrics, self.metrics_text, self.health)
            self.metrics.start()
            host, port = self.metrics.address
            self.log(f"clap-rt serve: metrics on http://{host}:{port}/metrics, health on /healthz")
        for r in self.runners:
            r.source.start()
        try:
            while not stop.is_set() and self.scheduler.step():
                pass
        finally:
            for r in self.runners:
                r.source.stop()
            self.scheduler.finish()
            self.close()
        return 0

    def close(self) -> None:
        for d in self.deliveries:
            if not d.drain(self.cfg.drain_seconds):
                self.log(f"clap-rt serve: sink {d.sink.name}: {len(d.outbox)} events left in the outbox "
                         f"for the next run")
        for d in self.deliveries:
            d.stop()
        if self.metrics is not None:
            self.metrics.stop()
        for r in self.runners:
            self.log(f"clap-rt serve: stream {r.name}: windows {r.windows}, skipped {r.skipped}, "
                     f"dropped chunks {r.source.dropped}, events {sum(r.events.values())}")

    # --- health and metrics --------------------------------------------------------------

    def health(self) -> tuple:
        stalled = time.monotonic() - self.scheduler.last_step > HEALTH_STALL
        doc = {"status": "stalled" if stalled else "ok",
               "uptime_seconds": round(time.monotonic() - self.started, 1),
               "streams": {r.name: {"windows": r.windows, "skipped": r.skipped, "queue": len(r.due),
                                    "ended": r.done} for r in self.runners},
               "sinks": {d.sink.name: {"up": d.up, "backlog": len(d.outbox)} for d in self.deliveries}}
        return not stalled, doc

    def metrics_text(self) -> str:
        m = MetricsText()
        per_stream = (
            ("clap_rt_windows_scored_total", "counter", "windows scored", lambda r: r.windows),
            ("clap_rt_windows_skipped_total", "counter", "windows skipped because the engine fell behind",
             lambda r: r.skipped),
            ("clap_rt_chunks_dropped_total", "counter", "audio chunks dropped by a full source queue",
             lambda r: r.source.dropped),
            ("clap_rt_queue_depth", "gauge", "windows waiting for the engine", lambda r: len(r.due)),
        )
        for name, kind, help_, get in per_stream:
            m.family(name, kind, help_)
            for r in self.runners:
                m.sample(name, get(r), stream=r.name)
        m.family("clap_rt_events_total", "counter", "events by stream, label and kind (start or end)")
        for r in self.runners:
            for (label, kind), n in sorted(r.events.items()):
                m.sample("clap_rt_events_total", n, stream=r.name, label=label, kind=kind)
        m.family("clap_rt_engine_batches_total", "counter", "engine calls")
        m.sample("clap_rt_engine_batches_total", self.scheduler.batches)
        for name, hist, help_ in (("clap_rt_inference_seconds", self.scheduler.inference, "seconds per engine call (a batch, or one stream's steps)"),
                                  ("clap_rt_window_latency_seconds", self.scheduler.latency,
                                   "seconds from a window being due to its scores")):
            m.family(name, "histogram", help_)
            m.lines += hist.lines(name)
        per_sink = (
            ("clap_rt_sink_backlog", "gauge", "events in the outbox", lambda d: len(d.outbox)),
            ("clap_rt_sink_delivered_total", "counter", "events delivered", lambda d: d.delivered),
            ("clap_rt_sink_rejected_total", "counter", "events the peer refused", lambda d: d.rejected),
            ("clap_rt_sink_dropped_total", "counter", "events dropped by a full outbox", lambda d: d.outbox.dropped),
            ("clap_rt_sink_failures_total", "counter", "failed delivery attempts (retried)", lambda d: d.failures),
            ("clap_rt_sink_up", "gauge", "1 if the last delivery attempt succeeded", lambda d: int(d.up)),
        )
        for name, kind, help_, get in per_sink:
            m.family(name, kind, help_)
            for d in self.deliveries:
                m.sample(name, get(d), sink=d.sink.name)
        return m.text()


def _base36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        n, k = divmod(n, 36)
        out = digits[k] + out
        if not n:
            return out


def serve(path: str, check: bool = False, clap=None, stop: Optional[threading.Event] = None) -> int:
    """`clap-rt serve --config path`: build everything (errors before any audio), then run
    until the streams end or SIGTERM / SIGINT; check: build, report, exit."""
    cfg = load_config(path)
    service = Service(cfg, clap=clap)
    if check:
        print(f"{path}: ok: {len(cfg.streams)} streams ({', '.join(r.name for r in service.runners)}), "
              f"{len(cfg.sinks)} sinks ({', '.join(s.name for s in cfg.sinks) or 'none'})")
        return 0
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    return service.run(stop)
