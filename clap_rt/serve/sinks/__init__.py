"""Event sinks behind one small interface, each fed from its own outbox by a delivery thread.

A sink has `name`, `open(streams)` (start connecting; must not block on a peer that is down),
`send(record)` and `close()`. `send` returns once the peer has the record, or raises
`SinkDown` (try again later: the record stays at the head of the outbox) or `SinkRejected`
(the peer refused this record for good: it is dropped and counted, the next one goes on).
"""
from __future__ import annotations

import sys
import threading
from typing import Callable

from ..outbox import Outbox

FIRST_RETRY = 0.2           # s before the first retry after a failed send; doubles up to the cap


class SinkDown(Exception):
    """The peer is unreachable or did not acknowledge in time; retry the same record later."""


class SinkRejected(Exception):
    """The peer refused the record itself (e.g. HTTP 400); retrying it would not help."""


class Sink:
    name = "sink"

    def open(self, streams: dict) -> None:
        """streams: {stream name: [label names]} (for MQTT discovery and the like)."""

    def send(self, record: dict) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass


class Delivery:
    """Moves records from `outbox` to `sink` in order, one at a time, on its own thread,
    retrying with exponential backoff (FIRST_RETRY doubling up to `retry_max` s)."""

    def __init__(self, sink: Sink, outbox: Outbox, retry_max: float,
                 log: Callable[[str], None] = lambda m: print(m, file=sys.stderr, flush=True)):
        self.sink, self.outbox, self.retry_max, self.log = sink, outbox, retry_max, log
        self.delivered = 0
        self.rejected = 0
        self.failures = 0           # failed attempts (each retried)
        self.up = True              # the last attempt succeeded
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"sink-{sink.name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        delay = FIRST_RETRY
        while not self._stop.is_set():
            record = self.outbox.peek(timeout=0.2)
            if record is None:
                continue
            try:
                self.sink.send(record)
            except SinkDown as e:
                self.failures += 1
                if self.up:
                    self.log(f"clap-rt serve: sink {self.sink.name} is down ({e}); events wait in the outbox")
                self.up = False
                self._stop.wait(delay)
                delay = min(delay * 2, self.retry_max)
                continue
            except SinkRejected as e:
                self.rejected += 1
                self.log(f"clap-rt serve: sink {self.sink.name} refused event {record.get('id')} ({e}); dropped")
            else:
                self.delivered += 1
                if not self.up:
                    self.log(f"clap-rt serve: sink {self.sink.name} is back")
            self.up, delay = True, FIRST_RETRY
            self.outbox.ack()

    def drain(self, timeout: float) -> bool:
        """Wait up to `timeout` s for the outbox to empty; True if it did."""
        return self.outbox.wait_empty(timeout)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sink.close()
        self.outbox.close()


def make_sink(cfg) -> Sink:
    """A `SinkConfig` -> its sink (optional packages imported here, by the sinks that need them)."""
    if cfg.type == "jsonl":
        from .jsonl import JsonlSink
        return JsonlSink(cfg.name, **cfg.options)
    if cfg.type == "mqtt":
        from .mqtt import MqttSink
        return MqttSink(cfg.name, **cfg.options)
    from .webhook import WebhookSink
    return WebhookSink(cfg.name, **cfg.options)

