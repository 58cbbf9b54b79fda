"""Many streams: one `clap-rt serve` engine against one `clap-rt listen` process per stream.

    nice -n 10 python -m bench.serve [--counts 1,4,16,64] [--seconds 8] [--speed 2] [--hop 0.5]
                                     [--threads 2] [--listen-max 16] [--json out.json]

Every stream plays the same kind of audio (noise with tones, `--seconds` long) at `--speed`
times real time, so N streams ask for N * speed / hop windows per second. Both sides meet the
same demand in the same run:
  serve    one Service (in this process, the model loaded once beforehand) with N file streams,
           each stream's steady step on the shared incremental graphs, `--threads` for the engine;
  batched  the same with `incremental = false`: all windows due across streams re-encoded in
           batches (`--max-batch`);
  listen   N `clap-rt listen --input -` processes (`--threads` / N threads each, at least 1),
           each fed raw PCM on stdin at the same pace; pacing starts once every process reads
           its stdin (its model is loaded), so the streams run at the same time.
Reported per N: aggregate windows scored per second of streaming (wall time from the first
sample to the last stream's summary), windows skipped (%), and p95 window latency: for serve,
from a window being due to its scores (queueing for the batch included); for listen, the median
over processes of their p95 compute per window (what `listen` reports; its queueing is not
counted, which favours listen, and each process's first window is a cold start, which does
not). A count keeps real time when no window was skipped.
"""
from __future__ import annotations

import argparse
import array
import fcntl
import json
import os
import re
import subprocess
import sys
import tempfile
import termios
import threading
import time
from pathlib import Path

import numpy as np

from clap_rt.checkpoints import atomic_write_bytes
from clap_rt.errors import UserError, run_program

PROG = "python -m bench.serve"
RATE = 44100                 # the bundled model's rate: no resampling on either side
BLOCK = 1024                 # samples per chunk written to a listen process
LABELS = ("dog barking", "siren", "glass breaking", "door knock")
SUMMARY = re.compile(r"windows (\d+), skipped (\d+).*p95 ([\d.]+) ms")


def scene(seconds: float, seed: int) -> np.ndarray:
    """(n,) float32 noise with a few tones: audio for one stream."""
    rng = np.random.default_rng(seed)
    n = int(seconds * RATE)
    x = 0.02 * rng.standard_normal(n)
    t = np.arange(n) / RATE
    for _ in range(3):
        on = rng.uniform(0, seconds - 0.5)
        m = (t >= on) & (t < on + 0.5)
        x[m] += 0.3 * np.sin(2 * np.pi * rng.uniform(300, 3000) * t[m])
    return x.astype(np.float32)


def run_serve(clap, files: list, args, incremental: bool) -> dict:
    from clap_rt.serve.config import parse_config
    from clap_rt.serve.service import Service
    doc = {"engine": {"max_batch": args.max_batch, "incremental": incremental}, "metrics": {"enabled": False},
           "outbox": {"dir": str(Path(files[0]).parent / "outbox")},
           "stream": [{"name": f"s{i}", "file": str(f), "labels": list(LABELS), "hop": args.hop,
                       "speed": args.speed, "queue": 2} for i, f in enumerate(files)]}
    service = Service(parse_config(doc, str(Path(files[0]).parent / "bench.toml")), clap=clap, log=lambda m: None)
    t0 = time.perf_counter()
    service.run(threading.Event())
    wall = time.perf_counter() - t0
    windows = sum(r.windows for r in service.runners)
    skipped = sum(r.skipped for r in service.runners)
    return {"windows": windows, "skipped": skipped, "wall_s": wall,
            "p95_latency_ms": 1e3 * service.scheduler.latency.quantile(0.95),
            "batches": service.scheduler.batches, "engine_s": service.scheduler.inference.sum}


def _pending(fd: int) -> int:
    buf = array.array("i", [0])
    fcntl.ioctl(fd, termios.FIONREAD, buf)      # bytes still in the pipe (works on the write end)
    return buf[0]


def run_listen(audio: list, args) -> dict:
    threads = max(1, args.threads // len(audio))
    cmd = [sys.executable, "-m", "clap_rt", "listen", "--labels", ",".join(LABELS), "--input", "-",
           "--rate", str(RATE), "--format", "f32le", "--hop", str(args.hop), "--json", "--threads", str(threads)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    procs = [subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
             for _ in audio]
    errs = [b""] * len(procs)
    done_at = [0.0] * len(procs)

    def collect(i):     # the summary line is the end of streaming (not of the interpreter's exit)
        for line in procs[i].stderr:
            errs[i] += line
            if SUMMARY.search(line.decode(errors="replace")):
                done_at[i] = time.perf_counter()
    readers = [threading.Thread(target=collect, args=(i,), daemon=True) for i in range(len(procs))]
    for r in readers:
        r.start()
    # One block of silence each; a process whose pipe is empty again reads its input: ready.
    prime = np.zeros(BLOCK, np.float32).tobytes()
    for p in procs:
        p.stdin.write(prime)
        p.stdin.flush()
    deadline = time.monotonic() + 600
    while any(_pending(p.stdin.fileno()) for p in procs):
        if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
            raise UserError(f"{PROG}: a listen process did not start: {[e.decode()[-300:] for e in errs]}")
        time.sleep(0.05)
    t0 = time.perf_counter()
    n_blocks = -(-len(audio[0]) // BLOCK)
    for k in range(n_blocks):
        delay = t0 + (k + 1) * BLOCK / (RATE * args.speed) - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        for p, x in zip(procs, audio):
            p.stdin.write(x[k * BLOCK:(k + 1) * BLOCK].tobytes())
            p.stdin.flush()
    for p in procs:
        p.stdin.close()
    for p in procs:
        p.wait()
    for r in readers:
        r.join()
    wall = max(done_at) - t0
    stats = []
    for p, e in zip(procs, errs):
        m = SUMMARY.search(e.decode())
        if p.returncode != 0 or m is None:
            raise UserError(f"{PROG}: clap-rt listen failed (status {p.returncode}): {e.decode()[-300:]}")
        stats.append((int(m[1]), int(m[2]), float(m[3])))
    return {"windows": sum(s[0] for s in stats), "skipped": sum(s[1] for s in stats), "wall_s": wall,
            "p95_latency_ms": float(np.median([s[2] for s in stats])), "threads_each": threads}


def rate(r: dict) -> float:
    return r["windows"] / r["wall_s"]


def skipped_pct(r: dict) -> float:
    total = r["windows"] + r["skipped"]
    return 100.0 * r["skipped"] / total if total else 0.0


def run(args) -> int:
    import soundfile as sf
    from clap_rt.zeroshot import Clap
    counts = [int(c) for c in args.counts.split(",")]
    clap = Clap.load(args.model, threads=args.threads)
    fe = clap.frontend
    clap.embed_mel(np.zeros((args.max_batch, fe.n_mels, fe.n_frames), np.float32))   # warm the engine once
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in counts:
            audio = [scene(args.seconds, seed) for seed in range(n)]
            files = []
            for i, x in enumerate(audio):
                files.append(Path(tmp) / f"n{n}-{i}.wav")
                sf.write(files[-1], x, RATE)
            row = {"streams": n, "demand_windows_per_s": n * args.speed / args.hop,
                   "serve": run_serve(clap, files, args, incremental=True),
                   "serve_batched": run_serve(clap, files, args, incremental=False)}
            row["listen"] = run_listen(audio, args) if n <= args.listen_max else None
            rows.append(row)
            print(f"{n} streams done", file=sys.stderr, flush=True)
    hop_ms = 1e3 * args.hop
    print(f"{'streams':>7} {'demand/s':>8} | {'serve win/s':>11} {'skip%':>6} {'p95 ms':>7} | "
          f"{'batched win/s':>13} {'skip%':>6} {'p95 ms':>7} | "
          f"{'listen win/s':>12} {'skip%':>6} {'p95 ms':>7} | {'ratio':>5}")
    for row in rows:
        s, b, l = row["serve"], row["serve_batched"], row["listen"]
        right = (f"{rate(l):12.1f} {skipped_pct(l):6.1f} {l['p95_latency_ms']:7.0f} | {rate(s) / rate(l):5.2f}"
                 if l else f"{'not run (--listen-max)':>28} | {'':>5}")
        print(f"{row['streams']:7d} {row['demand_windows_per_s']:8.1f} | {rate(s):11.1f} {skipped_pct(s):6.1f} "
              f"{s['p95_latency_ms']:7.0f} | {rate(b):13.1f} {skipped_pct(b):6.1f} {b['p95_latency_ms']:7.0f} | "
              + right)
    real_time = [r["streams"] for r in rows if r["serve"]["skipped"] == 0]
    print(f"serve keeps pace (no window skipped) up to {max(real_time) if real_time else 0} streams at "
          f"{args.speed}x real time, i.e. {max(real_time) * args.speed if real_time else 0:g} real-time streams; "
          f"hop {hop_ms:.0f} ms")
    if args.json:
        atomic_write_bytes(args.json, (json.dumps({"args": vars(args), "rows": rows}, indent=2) + "\n").encode())
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    p.add_argument("--model", default=None, help="model folder (default: the bundled model)")
    p.add_argument("--counts", default="1,4,16,64", help="stream counts (default: 1,4,16,64)")
    p.add_argument("--seconds", type=float, default=8.0, help="audio per stream (default: 8)")
    p.add_argument("--speed", type=float, default=2.0, help="playback speed (default: 2x real time)")
    p.add_argument("--hop", type=float, default=0.5, help="seconds between windows (default: 0.5)")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="CPU threads in all (default: all)")
    p.add_argument("--max-batch", type=int, default=8, help="serve: windows per engine call (default: 8)")
    p.add_argument("--listen-max", type=int, default=16,
                   help="run the listen baseline up to this many processes (each loads the model; default: 16)")
    p.add_argument("--json", default=None, help="write the results as JSON to this file")
    args = p.parse_args(argv)
    return run_program(PROG, lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
