"""Real-time discipline: a fake sounddevice microphone, skipped windows under slow inference."""
from __future__ import annotations

import sys
import threading
import time
import types

import numpy as np
import pytest

from clap_rt.detect import DetectorConfig, EventDetector, Thresholds
from clap_rt.sources import ArraySource, MicrophoneSource
from clap_rt.stream import ClapStream, StreamStats, run_stream
from fakes import FakeClap, soundscape

RATE = 16000


class FakeStatus:
    def __init__(self, overflow: bool):
        self.input_overflow = overflow

    def __bool__(self) -> bool:
        return self.input_overflow


def fake_sounddevice(signal: np.ndarray, speed: float, overflow_at: int, chunk_sizes):
    """A `sounddevice` stand-in whose InputStream plays `signal` (n, 2) through the callback in
    chunks of the given (uneven) sizes, `speed` times faster than real time, flags an input
    overflow on chunk `overflow_at`, then goes inactive (the device is unplugged) and cannot
    be opened again."""
    sd = types.ModuleType("sounddevice")

    class PortAudioError(Exception):
        pass

    sd.PortAudioError = PortAudioError
    sd.opened, sd.streams = 0, []

    class InputStream:
        def __init__(self, device=None, channels=1, samplerate=None, blocksize=0, dtype="float32", callback=None):
            if sd.opened:
                raise PortAudioError("Error opening InputStream: Device unavailable [PaErrorCode -9985]")
            sd.opened += 1
            assert (channels, samplerate, dtype) == (2, RATE, "float32")
            self.callback, self.active, self.closed = callback, False, False
            self._thread = threading.Thread(target=self._run, daemon=True)
            sd.streams.append(self)

        def _run(self):
            pos, i = 0, 0
            while pos < signal.shape[0] and self.active:
                n = int(chunk_sizes[i % len(chunk_sizes)])
                block = signal[pos:pos + n]
                self.callback(block.copy(), block.shape[0], None, FakeStatus(i == overflow_at))
                pos, i = pos + n, i + 1
                time.sleep(n / RATE / speed)
            self.active = False

        def start(self):
            self.active = True
            self._thread.start()

        def stop(self):
            self.active = False
            self._thread.join()

        def close(self):
            self.closed = True

    sd.InputStream = InputStream
    return sd


def test_fake_microphone_uneven_chunks_overflow_events_and_clean_shutdown(monkeypatch):
    mono = soundscape([(1000.0, 1.3, 2.2)], 3.5, seed=5)
    stereo = np.stack([mono, mono], axis=1)
    sd = fake_sounddevice(stereo, speed=4.0, overflow_at=7, chunk_sizes=[317, 1024, 45, 2048, 999])
    monkeypatch.setitem(sys.modules, "sounddevice", sd)
    logs: list = []
    source = MicrophoneSource(device=3, rate=RATE, channels=2, retries=2, backoff=0.01, log=logs.append)
    clap = FakeClap({"beep": 1000.0, "whistle": 3000.0})
    stream = ClapStream(clap, ["beep", "whistle"], source.rate, hop=0.25)
    det = EventDetector(["beep", "whistle"], Thresholds(), DetectorConfig())
    events: list = []
    source.start()
    try:
        stats = run_stream(source, stream, lambda w: events.extend(det.update(w)), live=True)
    finally:
        source.stop()
    events += det.finish()
    assert [(e.kind, e.label) for e in events] == [("start", "beep"), ("end", "beep")], events
    assert abs(events[1].onset - 1.3) <= 0.25 and abs(events[1].offset - 2.2) <= 0.25, events[1]
    assert stats.overflows == 1, stats
    assert stream.samples_in == mono.shape[0], f"{stream.samples_in} samples streamed of {mono.shape[0]}"
    # the unplugged device was retried with backoff, then the run ended on its own
    assert logs[0] == "clap-rt listen: audio input device lost; reopening in 0.0 s (attempt 1/2)", logs
    assert logs[-1] == "clap-rt listen: audio input device lost; giving up after 2 attempts", logs
    assert all(s.closed and not s._thread.is_alive() for s in sd.streams), "a stream was left open"


def test_slow_inference_skips_windows_instead_of_queueing():
    hop, delay, seconds = 0.1, 0.35, 3.0
    audio = soundscape([(1000.0, 1.0, 2.0)], seconds)
    clap = FakeClap({"beep": 1000.0}, delay=delay)
    stream = ClapStream(clap, ["beep"], RATE, hop=hop)
    source = ArraySource(audio, RATE, block=400, realtime=True, queue_size=64)   # 1.6 s of audio
    stats = StreamStats()
    source.start()
    t0 = time.monotonic()
    run_stream(source, stream, lambda w: None, live=True, stats=stats)
    wall = time.monotonic() - t0
    source.stop()
    total = (stream.window_frames, stream.hop_frames)
    frames = int(seconds * RATE) // 160 + 1
    n_windows = (frames - total[0]) // total[1] + 1 + int((frames - total[0]) % total[1] > 0)  # + a tail
    assert stats.skipped > 0.5 * n_windows, stats.summary()
    assert stats.windows + stats.skipped == n_windows, f"{stats.windows} + {stats.skipped} != {n_windows}"
    # no backlog: the run ends about when the audio does, not after n_windows * delay
    assert wall < seconds + 3 * delay, f"run took {wall:.2f} s for {seconds} s of audio"
    bound = total[0] + 2 * total[1] + (delay * RATE) // 160 + 5
    assert stats.max_frames_buffered <= bound, f"{stats.max_frames_buffered} frames buffered > {bound}"
    assert stats.max_queue <= 64 and stats.dropped_chunks == 0, stats.summary()


class RestartCostStream(ClapStream):
    """A stream whose window costs `first` seconds when it does not follow the last one scored
    (an incremental tower starting afresh) and `steady` seconds when it does."""

    def __init__(self, *args, first: float, steady: float, catch_up: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.first, self.steady, self._catch_up, self.last = first, steady, catch_up, None

    @property
    def catch_up_windows(self) -> int:
        return self._catch_up

    def score(self, window):
        time.sleep(self.steady if self.last is not None and window.index == self.last + 1 else self.first)
        self.last = window.index
        return super().score(window)


@pytest.mark.parametrize("catch_up", [1, 5])
def test_a_stream_behind_by_fewer_windows_than_a_restart_costs_catches_up(catch_up):
    # a restart costs 2.5 hops, a steady window half a hop: skipping to the newest window
    # restarts every time (a third of the windows scored); catching up keeps the steady state
    hop, seconds = 0.1, 3.0
    audio = soundscape([(1000.0, 1.0, 2.0)], seconds)
    stream = RestartCostStream(FakeClap({"beep": 1000.0}), ["beep"], RATE, hop=hop, first=0.25, steady=0.05,
                               catch_up=catch_up)
    source = ArraySource(audio, RATE, block=400, realtime=True, queue_size=64)
    source.start()
    stats = run_stream(source, stream, lambda w: None, live=True)
    source.stop()
    total = stats.windows + stats.skipped
    if catch_up == 1:
        assert stats.skipped > 0.4 * total, stats.summary()
    else:
        assert stats.skipped <= 2 and stats.windows >= 0.9 * total, stats.summary()


def test_a_producer_faster_than_the_frontend_cannot_hold_the_loop_in_the_drain():
    class Flood:                    # a chunk is always waiting, as from a producer faster than the frontend
        capacity, dropped, overflows, max_qsize = 8, 0, 0, 8

        def __init__(self, chunks):
            self.chunks, self.ended = chunks, False

        def read(self, timeout=0.0):
            if not self.chunks:
                self.ended = True
                return None
            return self.chunks.pop()

    audio = soundscape([(1000.0, 1.0, 2.0)], 4.0)
    stream = ClapStream(FakeClap({"beep": 1000.0}), ["beep"], RATE, hop=0.1)
    stats = run_stream(Flood([audio[i:i + 400] for i in range(0, len(audio), 400)][::-1]), stream,
                       lambda w: None, live=True)
    # windows are scored while the audio flows (every 8 chunks), not once at the end, and the
    # frames held stay within a window and the chunks of one drain
    assert stats.windows >= 10 and stats.windows + stats.skipped >= 30, stats.summary()
    assert stats.max_frames_buffered <= stream.window_frames + 8 * 400 // 160 + 2 * stream.hop_frames, stats


def test_full_queue_drops_chunks_and_counts_them():
    source = ArraySource(np.zeros(RATE, np.float32), RATE, block=100, realtime=True, queue_size=4)
    for _ in range(10):
        source.queue.put(np.zeros(100, np.float32))
    assert (source.dropped, source.queue.qsize(), source.max_qsize) == (6, 4, 4)
    source.queue.end()
    got = [source.read(0.0) for _ in range(5)]
    assert sum(g is not None for g in got) == 3 and source.ended and source.dropped == 7


@pytest.mark.parametrize("speed", [0])
def test_summary_reports_real_time_factor(speed):
    stats = StreamStats(windows=3, audio_seconds=2.0, frontend_seconds=0.01)
    for seconds in (0.01, 0.02, 0.03):
        stats.add_compute(seconds)
    s = stats.summary()
    assert (s["compute_p50_ms"], s["compute_p95_ms"], s["real_time_factor"]) == (20.0, 29.0, 0.035), s


def test_summary_memory_is_bounded_and_the_rtf_counts_every_window():
    from clap_rt.stream import COMPUTE_KEPT
    stats = StreamStats(audio_seconds=100.0)
    for i in range(COMPUTE_KEPT + 500):
        stats.add_compute(0.5 if i < 500 else 0.001)      # the oldest, slow windows leave the percentiles
    s = stats.summary()
    assert len(stats.compute) == COMPUTE_KEPT and s["compute_p95_ms"] == 1.0
    assert s["real_time_factor"] == round((500 * 0.5 + COMPUTE_KEPT * 0.001) / 100.0, 5)
