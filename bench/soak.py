"""Soak run of the `clap-rt listen` pipeline on a day of generated audio, faster than real time.

    python -m bench.soak [--hours 24] [--speed 60] [--threads 1] [--json soak.json]

The objects `listen` builds: a `BlockSource` (a producer thread playing blocks into the bounded
`ChunkQueue` at `--speed` times real time), `ClapStream` (frontend + incremental audio tower) and
`EventDetector`, joined by `run_stream` in live mode, so windows the engine cannot keep up with
are skipped and counted, never queued. The producer waits for room in a full queue, so the whole
signal reaches the stream and the pace is at most what the consumer takes (`--speed inf`: no
more than that); `--drop` makes a full queue lose chunks instead, as a microphone's does.
The signal is made a second at a time, never held whole: white / pink / brown noise at -60 to
-6 dBFS, tones and chirps, digital silence, short bursts over quiet noise, clipped loud
passages; now and then a few NaN / Inf samples (the stream zeroes and counts them), an
input-overflow flag with the block it lost, and a pause where the producer sleeps, then
catches up at full speed.
Every `--sample-minutes` of audio: RSS (VmRSS, and its floor since the last sample), open file
descriptors and queue depth. Printed: audio hours, wall time, windows scored / skipped, NaN
samples zeroed, peak RSS, the RSS slope per audio hour (least squares on the floors after the
first `--warmup` of the audio), fds at start and end, the largest queue depth, and the CPU
flags. Exit status 1 with one line when the RSS slope exceeds --max-rss-slope-mb-per-hour, the
fd count grew, the queue passed its bound, or the zeroed samples differ from those injected.
With one thread the bundled model scores every window at about 18x real time (a day of audio
in 80 minutes); at the default --speed 60 a day takes 24 minutes where the consumer keeps that
pace, and the windows the model cannot reach are skipped, as a live stream on a slow machine
skips them.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

# One-thread figures: numpy's BLAS (the label scores) too, not only the engine (--threads).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402  (after the BLAS thread count it reads at import)

from bench.report import cpu_line, print_rows, write_json  # noqa: E402
from clap_rt.errors import UserError, run_program  # noqa: E402
from train.corpus.noise import coloured_noise  # noqa: E402

PROG = "python -m bench.soak"
BLOCK = 1024                 # samples per chunk, as `listen` reads its input
SEGMENT_SECONDS = (0.5, 20.0)
PIECE = 43 * BLOCK           # samples made at a time (~1 s): the harness's own buffers stay small
NAN_EVERY_S = 120.0          # mean audio seconds between injected NaN / Inf samples
OVERFLOW_EVERY_S = 600.0     # ... between input-overflow flags
PAUSE_EVERY_S = 900.0        # ... between producer pauses
PAUSE_WALL_S = (0.05, 0.5)
KINDS = ("white", "pink", "brown", "tone", "silence", "burst", "clipped")
# Power slope of each noise colour (power ~ 1/f^slope), as train.corpus.noise makes them.
SLOPES = {"white": 0.0, "pink": 1.0, "brown": 2.0}


def level(rng: np.random.Generator, lo_db: float = -60.0, hi_db: float = -6.0) -> float:
    return float(10 ** (rng.uniform(lo_db, hi_db) / 20))


class SoakSignal:
    """`seconds` of varied audio at `rate` Hz as (BLOCK,) float32 blocks, made a piece at a time,
    with NaN / Inf samples, input-overflow flags and producer pauses sprinkled in; counts what
    it injected. `device`: the source whose `overflows` counter an overflow raises, as a
    device callback's status flag does."""

    def __init__(self, rate: int, seconds: float, seed: int = 0):
        self.rate, self.seconds = rate, seconds
        self.rng = np.random.default_rng(seed)
        self.device = None
        self.nonfinite = self.overflows = self.lost_blocks = self.pauses = 0
        self.pause_seconds = 0.0
        self.segments = dict.fromkeys(KINDS, 0)

    def segment(self, n: int):
        """One segment of a random kind, n samples in pieces of at most PIECE."""
        rng, rate = self.rng, self.rate
        kind = KINDS[rng.integers(len(KINDS))]
        self.segments[kind] += 1
        gain = level(rng, -40, -3) if kind == "tone" else level(rng)
        slope = SLOPES.get(kind, SLOPES["pink"])

        def noise(k: int) -> np.ndarray:      # unit-RMS noise of the segment's colour, a piece at a time
            return coloured_noise(k, slope, rng).astype(np.float32)

        f0, f1 = rng.uniform(50, 15000, 2) if rng.random() < 0.3 else [rng.uniform(50, 15000)] * 2
        drive = rng.uniform(3, 30)
        for at in range(0, n, PIECE):
            k = min(PIECE, n - at)
            t = (at + np.arange(k)) / rate
            if kind in SLOPES:
                yield gain * noise(k)
            elif kind == "silence":
                yield np.zeros(k, np.float32)
            elif kind == "tone":        # a steady tone or a linear chirp from f0 to f1
                phase = 2 * np.pi * (f0 * t + (f1 - f0) * t ** 2 * rate / (2 * n))
                yield (gain * np.sin(phase)).astype(np.float32)
            elif kind == "burst":       # quiet pink noise, now and then a loud hit of 10-200 ms
                x = 10 ** (-3) * noise(k)
                if rng.random() < 0.3:
                    m = min(int(rng.uniform(0.01, 0.2) * rate), k)
                    s = int(rng.integers(0, k - m + 1))
                    x[s:s + m] += level(rng, -20, 0) * rng.standard_normal(m, dtype=np.float32)
                yield x
            else:                       # clipped: a loud tone over noise driven far past full scale
                x = np.sin(2 * np.pi * f0 / 4 * t) + 0.3 * noise(k)
                yield np.clip(drive * x, -1, 1).astype(np.float32)

    def blocks(self):
        rng, rate = self.rng, self.rate
        total = int(self.seconds * rate)
        at = 0
        next_nan, next_overflow, next_pause = (rng.exponential(e) * rate for e in
                                               (NAN_EVERY_S, OVERFLOW_EVERY_S, PAUSE_EVERY_S))
        while at < total:
            for piece in self.segment(min(total - at, int(rng.uniform(*SEGMENT_SECONDS) * rate))):
                for i in range(0, piece.shape[0], BLOCK):
                    b = piece[i:i + BLOCK]
                    at += b.shape[0]
                    if at >= next_nan:
                        k = int(rng.integers(1, 9))
                        b[rng.integers(0, b.shape[0], k)] = rng.choice([np.nan, np.inf, -np.inf], k)
                        self.nonfinite += int((~np.isfinite(b)).sum())
                        next_nan = at + rng.exponential(NAN_EVERY_S) * rate
                    if at >= next_overflow:
                        # The device flags an overflow in the callback after the samples it lost.
                        self.overflows += 1
                        self.device.overflows += 1
                        self.lost_blocks += 1
                        next_overflow = at + rng.exponential(OVERFLOW_EVERY_S) * rate
                        continue
                    if at >= next_pause:
                        pause = float(rng.uniform(*PAUSE_WALL_S))
                        time.sleep(pause)
                        self.pauses += 1
                        self.pause_seconds += pause
                        next_pause = at + rng.exponential(PAUSE_EVERY_S) * rate
                    yield b


def proc_status_mb(field: str) -> float:
    """A memory figure of /proc/self/status (VmRSS, VmHWM) in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise UserError(f"/proc/self/status has no {field}; the soak needs Linux's /proc")


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


class Monitor:
    """RSS, open fds and queue depth every `every` audio seconds, with a progress line each.

    Each sample also holds the RSS floor: the least VmRSS read at any window since the last
    sample. A leak raises the floor; a segment being made or a window re-encoded after a skip
    only lifts single readings by tens of MB, which would swamp a slope fitted to them."""

    def __init__(self, every: float, queue, stats):
        self.every, self.queue, self.stats = every, queue, stats
        self.t0 = time.monotonic()
        self.next = 0.0
        self.floor = float("inf")
        self.rows: list[dict] = []

    def poll(self, audio_s: float) -> None:
        self.floor = min(self.floor, proc_status_mb("VmRSS"))
        if audio_s >= self.next:
            self.sample(audio_s)
            self.next += self.every

    def sample(self, audio_s: float) -> None:
        rss = proc_status_mb("VmRSS")
        r = {"audio_hours": audio_s / 3600, "wall_s": time.monotonic() - self.t0, "rss_mb": rss,
             "rss_floor_mb": min(self.floor, rss), "fds": open_fds(), "queue": self.queue.qsize(), "dropped": self.queue.dropped,
             "scored": self.stats.windows, "skipped": self.stats.skipped}
        self.rows.append(r)
        self.floor = float("inf")
        print(f"{PROG}: audio {r['audio_hours']:.2f} h, wall {r['wall_s']:.0f} s, RSS {r['rss_mb']:.1f} MB "
              f"(floor {r['rss_floor_mb']:.1f}), "
              f"fds {r['fds']}, queue {r['queue']} (dropped {r['dropped']}), windows scored {r['scored']} / skipped {r['skipped']}",
              file=sys.stderr, flush=True)


def rss_slope(rows: list[dict], after_hours: float) -> float | None:
    """Least-squares MB per audio hour of the RSS floors after `after_hours` (None: under 3 samples)."""
    pts = [(r["audio_hours"], r["rss_floor_mb"]) for r in rows if r["audio_hours"] >= after_hours]
    if len(pts) < 3:
        return None
    h, mb = np.asarray(pts).T
    return float(np.polyfit(h, mb, 1)[0])


def failures(res: dict, max_slope: float) -> list[str]:
    out = []
    if res["rss_slope_mb_per_hour"] is not None and res["rss_slope_mb_per_hour"] > max_slope:
        out.append(f"RSS grows {res['rss_slope_mb_per_hour']:.2f} MB per audio hour "
                   f"(limit --max-rss-slope-mb-per-hour {max_slope})")
    if res["fds_end"] > res["fds_start"]:
        out.append(f"open file descriptors grew from {res['fds_start']} to {res['fds_end']}")
    if res["max_queue_depth"] > res["queue_size"]:
        out.append(f"queue depth {res['max_queue_depth']} passed its bound {res['queue_size']}")
    if res["nan_zeroed"] != res["nan_injected"]:
        out.append(f"{res['nan_injected']} NaN/Inf samples injected but {res['nan_zeroed']} zeroed")
    return out


def run(args: argparse.Namespace) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from clap_rt.cli.common import load_clap, read_labels
    from clap_rt.cli.listen import background_prompts, load_thresholds
    from clap_rt.detect import DetectorConfig, EventDetector
    from clap_rt.sources import BlockSource
    from clap_rt.stream import ClapStream, StreamStats, run_stream

    if not args.hours > 0:
        raise UserError(f"--hours: expected audio hours > 0, got {args.hours}")
    if not 0 <= args.warmup < 1:
        raise UserError(f"--warmup: expected a fraction in [0, 1), got {args.warmup}")
    torch.set_num_threads(args.threads)
    labels = read_labels(args)
    clap = load_clap(args)
    thresholds = load_thresholds(args, labels, clap.config.event_thresholds)
    detector = EventDetector(labels.names, thresholds, DetectorConfig())
    rate = args.rate or clap.sample_rate
    signal = SoakSignal(rate, args.hours * 3600, args.seed)
    source = BlockSource(signal.blocks(), rate, realtime=True, queue_size=args.queue_size, speed=args.speed,
                         name="soak signal")
    # By default the producer waits for room, so the whole signal reaches the stream; --drop: a
    # full queue loses chunks, as from a microphone.
    source.queue.block = not args.drop
    signal.device = source
    stream = ClapStream(clap, labels, rate, hop=args.hop, window=args.window,
                        background=background_prompts(args, thresholds), template=args.template)
    stats = StreamStats()
    every = 60 * (args.sample_minutes or args.hours * 60 / 100)
    monitor = Monitor(every, source.queue, stats)
    events = {"start": 0, "end": 0}

    def on_window(w) -> None:
        for e in detector.update(w):
            events[e.kind] += 1
        monitor.poll(stream.seconds_in)

    flags = cpu_line()
    print(f"{PROG}: {clap.config.name}, engine {clap.engine.name}, {args.threads} thread(s), {flags}; "
          f"{args.hours} h of audio at {rate} Hz, {args.speed}x real time, queue {args.queue_size} chunks"
          + (f"; {stream.notice}" if stream.notice else ""), file=sys.stderr, flush=True)
    fds_start = open_fds()
    monitor.sample(0.0)
    source.start()
    try:
        run_stream(source, stream, on_window, live=True, stats=stats)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; figures of the audio so far", file=sys.stderr)
    finally:
        source.stop()
    for e in detector.finish():
        events[e.kind] += 1
    monitor.sample(stream.seconds_in)
    wall = time.monotonic() - monitor.t0
    res = {
        "model": clap.config.name, "engine": clap.engine.name, "threads": args.threads, "cpu_flags": flags,
        "speed": args.speed, "rate": rate, "hop_s": stream.hop_seconds, "queue_size": args.queue_size,
        "audio_hours": stream.seconds_in / 3600, "wall_seconds": wall,
        "windows_scored": stats.windows, "windows_skipped": stats.skipped,
        "dropped_chunks": source.dropped, "overflows": source.overflows, "lost_blocks": signal.lost_blocks,
        "pauses": signal.pauses, "pause_seconds": signal.pause_seconds,
        "nan_injected": signal.nonfinite, "nan_zeroed": source.nonfinite,
        "events_started": events["start"], "events_ended": events["end"], "segments": signal.segments,
        "compute_p50_ms": stats.summary()["compute_p50_ms"], "compute_p95_ms": stats.summary()["compute_p95_ms"],
        "peak_rss_mb": proc_status_mb("VmHWM"), "rss_start_mb": monitor.rows[0]["rss_mb"],
        "rss_end_mb": monitor.rows[-1]["rss_mb"], "warmup_hours": args.warmup * args.hours,
        "rss_slope_mb_per_hour": rss_slope(monitor.rows, args.warmup * args.hours),
        "fds_start": fds_start, "fds_end": open_fds(), "max_queue_depth": source.max_qsize,
        "samples": monitor.rows,
    }
    slope = res["rss_slope_mb_per_hour"]
    rows = [("audio / wall", f"{res['audio_hours']:.2f} h / {wall / 60:.1f} min "
                             f"({res['audio_hours'] * 3600 / wall:.1f}x real time)"),
            ("windows scored / skipped", f"{stats.windows} / {stats.skipped} (hop {stream.hop_seconds:.3f} s)"),
            ("compute per window p50 / p95", f"{res['compute_p50_ms']:.1f} / {res['compute_p95_ms']:.1f} ms"),
            ("NaN/Inf samples injected / zeroed", f"{res['nan_injected']} / {res['nan_zeroed']}"),
            ("overflow flags / chunks dropped", f"{res['overflows']} / {res['dropped_chunks']} "
                                                f"({res['pauses']} producer pauses, {res['pause_seconds']:.1f} s)"),
            ("events started / ended", f"{res['events_started']} / {res['events_ended']}"),
            ("RSS start / end / peak", f"{res['rss_start_mb']:.1f} / {res['rss_end_mb']:.1f} / "
                                       f"{res['peak_rss_mb']:.1f} MB"),
            ("RSS floor slope after warm-up", "n/a (too few samples)" if slope is None else
             f"{slope:+.3f} MB per audio hour ({len(monitor.rows)} samples, after {res['warmup_hours']:.2f} h)"),
            ("open fds start / end", f"{res['fds_start']} / {res['fds_end']}"),
            ("max queue depth / bound", f"{res['max_queue_depth']} / {args.queue_size}"),
            ("cpu", flags.removeprefix("cpu flags: "))]
    print_rows(rows)
    write_json(res, args.json)
    bad = failures(res, args.max_rss_slope_mb_per_hour)
    if bad:
        print(f"{PROG}: FAIL: " + "; ".join(bad), file=sys.stderr)
        return 1
    return 0


def main(argv=None) -> int:
    from clap_rt.cli.common import add_model_options
    from clap_rt.cli.listen import add_stream_options
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    p.add_argument("--hours", type=float, default=24.0, help="hours of audio (default: 24)")
    p.add_argument("--speed", type=float, default=60.0,
                   help="times real time the producer plays; inf: as fast as the consumer takes it (default: 60)")
    p.add_argument("--drop", action="store_true",
                   help="a full queue drops chunks, as a live input does (default: the producer waits)")
    p.add_argument("--labels", default="siren,glass breaking,dog barking,speech,alarm",
                   help="comma-separated labels (default: five everyday ones)")
    p.add_argument("--template", default=None, help="prompt template (default: the model's)")
    p.add_argument("--rate", type=int, default=None, help="Hz of the generated audio (default: the model's)")
    p.add_argument("--queue-size", type=int, default=128, help="chunks between producer and inference (default: 128)")
    p.add_argument("--sample-minutes", type=float, default=None,
                   help="audio minutes between RSS / fd / queue samples (default: 1/100 of the run)")
    p.add_argument("--warmup", type=float, default=0.05, help="share of the audio left out of the RSS slope")
    p.add_argument("--max-rss-slope-mb-per-hour", type=float, default=2.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None, help="write the figures as JSON to this file ('-' prints them)")
    add_model_options(p)
    add_stream_options(p)
    # listen's decisions: the model's thresholds and the default smoothing
    p.set_defaults(threads=1, labels_file=None, thresholds=None, on=None, off=None)
    args = p.parse_args(argv)
    return run_program(PROG, lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
