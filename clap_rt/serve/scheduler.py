"""One engine for many streams: the windows that are due across streams go into one forward,
or, for streams whose audio tower runs incrementally (the CPU engines), each stream's into its
own steady steps on the model's shared step graphs, `workers` streams at a time (one thread
each: a step is too small to split across cores, while streams side by side use them all).

    sched = Scheduler(clap, [StreamRunner(...), ...], max_batch=32, on_events=fan_out, workers=4)
    while sched.step():       # pump audio, batch due windows, score, decide, emit
        pass

Each stream keeps at most `queue` windows waiting for the engine; when the engine falls
behind, the oldest waiting window of that stream is skipped and counted, so the output never
lags more than `queue` hops behind and memory stays bounded. A batch takes windows round-robin
from a rotating first stream, one window per stream per round, so a busy stream cannot starve
a quiet one, and a stream whose source stalls or dies simply has nothing due.
"""
from __future__ import annotations

import time
from collections import Counter, deque
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Sequence

import numpy as np

from ..detect import EventDetector
from ..errors import UserError
from ..stream import ClapStream, ScoredWindow
from .metrics import Histogram

# Engine-call and window-latency buckets (s): from a fast GPU batch to a CPU falling behind.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
IDLE_SLEEP = 0.005          # s between polls when no stream has audio or windows due


class StreamRunner:
    """One stream: its source, its `ClapStream`, its detector and its queue of due windows.

    Event ids are `<stream>-<run>-<n>`: `run` tells runs of the service apart, `n` counts this
    stream's events from 1, so ids are unique and ordered per stream.
    """

    def __init__(self, name: str, source, stream: ClapStream, detector: EventDetector, queue: int,
                 run_id: str, clock: Callable[[], float] = time.monotonic,
                 log: Callable[[str], None] = lambda m: None):
        self.name, self.source, self.stream, self.detector, self.log = name, source, stream, detector, log
        self.queue_max, self.run_id, self.clock = queue, run_id, clock
        self.due: deque = deque()            # (Window, seconds when it became due)
        self.windows = 0                     # scored
        self.skipped = 0                     # due but dropped because the engine fell behind
        self.events = Counter()              # (label, kind) -> count
        self.seq = 0
        self.input_done = False
        self.failed = False                  # the source raised: no more audio from it
        self.done = False

    def pump(self) -> bool:
        """Move the source's audio into the stream and its ready windows into the queue.
        Returns whether anything arrived."""
        got = False
        try:
            while (chunk := self.source.read(timeout=0.0)) is not None:
                self.stream.accept_waveform(chunk)
                got = True
        except UserError as e:          # this stream's input broke (a damaged file): it ends, the others go on
            self.log(f"clap-rt serve: stream {self.name}: {e}; the stream ends here")
            self.failed = True
        if (self.source.ended or self.failed) and not self.input_done:
            self.stream.input_finished()
            self.input_done = got = True
        now = self.clock()
        while self.stream.windows_ready:
            self.due.append((self.stream.pop_window(), now))
            if len(self.due) > self.queue_max:
                self.due.popleft()
                self.skipped += 1
        return got

    def records(self, events, now_wall: float) -> list[dict]:
        """Detector events -> the records the sinks get (JSON-ready dicts with a stable id)."""
        out = []
        for e in events:
            self.seq += 1
            self.events[(e.label, e.kind)] += 1
            out.append({"id": f"{self.name}-{self.run_id}-{self.seq}", "stream": self.name, **e.to_json(),
                        "decided_at": round(e.decided_at, 3), "wall_time": round(now_wall, 3)})
        return out


class Scheduler:
    """Batches the due windows of all `runners` into engine calls of at most `max_batch`.

    clap: the one model (`embed_mel((B, n_mels, W)) -> (B, D)`); on_events(records): called
    with each stream's new event records, in order, from the scheduling thread.
    """

    def __init__(self, clap, runners: Sequence[StreamRunner], max_batch: int,
                 on_events: Callable[[list], None], clock: Callable[[], float] = time.monotonic,
                 workers: int = 1):
        self.clap, self.runners, self.max_batch = clap, list(runners), max_batch
        incremental = any(r.stream.incremental for r in self.runners)
        self._pool = ThreadPoolExecutor(workers, "clap-rt-step") if workers > 1 and incremental else None
        self.parallel = workers if self._pool is not None else 1    # streams whose steps run side by side
        self.on_events, self.clock = on_events, clock
        self.inference = Histogram(LATENCY_BUCKETS)     # s per engine call (a batch, or one stream's steps)
        self.latency = Histogram(LATENCY_BUCKETS)       # s from a window being due to its scores
        self.batches = 0
        self.last_step = clock()                        # for /healthz: the loop is alive
        self._first = 0

    def take_batch(self) -> list:
        """Up to max_batch (runner, window, due_at), one per stream per round, round-robin."""
        n, batch = len(self.runners), []
        start, self._first = self._first, (self._first + 1) % max(1, n)
        while len(batch) < self.max_batch:
            took = False
            for k in range(n):
                r = self.runners[(start + k) % n]
                if r.due and len(batch) < self.max_batch:
                    batch.append((r, *r.due.popleft()))
                    took = True
            if not took:
                break
        return batch

    def step(self) -> bool:
        """One round: pump every stream, score one batch, finish streams that ended.
        Returns False when every stream is done (files and stdin end; devices never do)."""
        self.last_step = self.clock()
        arrived = any([r.pump() for r in self.runners if not r.done])
        batch = self.take_batch()
        if batch:
            self._score(batch)
        for r in self.runners:
            if r.input_done and not r.done and not r.due and not r.stream.windows_ready:
                r.done = True
                self._emit(r, r.detector.finish())
        if not batch and not arrived:
            time.sleep(IDLE_SLEEP)
        return not all(r.done for r in self.runners)

    def finish(self) -> None:
        """Stop: close the open events of streams still running (at the end of their last window)."""
        if self._pool is not None:
            self._pool.shutdown()
        for r in self.runners:
            if not r.done:
                r.done = True
                self._emit(r, r.detector.finish())

    def _score(self, batch: list) -> None:
        # A stream with an incremental tower embeds its own windows, in order (each continues
        # its columns); the others' windows are batched, one engine call per mel shape (streams
        # may use different window lengths).
        groups: dict = {}
        for item in batch:
            r, w, _ = item
            key = ("stream", id(r)) if r.stream.incremental and w.frame is not None else ("shape", w.mel.shape)
            groups.setdefault(key, []).append(item)
        streams = [items for (kind, _), items in groups.items() if kind == "stream"]
        steps = self._pool.map if self._pool is not None and len(streams) > 1 else map
        embedded = dict(zip(map(id, streams), steps(self._embed_stream, streams)))
        for (kind, _), items in groups.items():
            emb = embedded[id(items)] if kind == "stream" else self._embed_batch(items)      # (b, D)
            self.batches += 1
            rows: dict = {}
            for j, (r, _, _) in enumerate(items):
                rows.setdefault(id(r), []).append(j)
            for idx in rows.values():
                r = items[idx[0]][0]
                scores = r.stream.score_embeddings(emb[idx])                     # (b, L)
                now = self.clock()
                for j, s in zip(idx, scores):
                    _, w, due_at = items[j]
                    self.latency.observe(now - due_at)
                    r.windows += 1
                    self._emit(r, r.detector.update(ScoredWindow(w.index, w.start, w.end, w.hop, s)))

    def _embed_batch(self, items: list) -> np.ndarray:
        """Windows of one mel shape, re-encoded in one engine call -> (B, D)."""
        t0 = self.clock()
        emb = self.clap.embed_mel(np.stack([w.mel for _, w, _ in items]))
        self.inference.observe(self.clock() - t0)
        return emb

    def _embed_stream(self, items: list) -> np.ndarray:
        """One stream's due windows, in order, on its incremental tower -> (b, D)."""
        t0 = self.clock()
        emb = np.stack([items[0][0].stream.embed_window(w) for _, w, _ in items])
        self.inference.observe(self.clock() - t0)
        return emb

    def _emit(self, r: StreamRunner, events) -> None:
        if events:
            self.on_events(r.records(events, time.time()))

    def queue_depths(self) -> dict:
        return {r.name: len(r.due) for r in self.runners}

