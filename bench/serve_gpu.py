"""python -m bench.serve_gpu [--streams 256] [--seconds 20] [--json OUT]: many streams on the cuda backend.

Needs only torch (CUDA build) + numpy on the GPU machine, like bench.gpu_check: the audio tower
of `--preset` with random weights on `CudaEngine` (fp16, CUDA graphs), labels as fixed random
directions, and synthetic audio played in memory at `--speed` times real time, so the
scheduler, frontends, detectors and engine batching are what is measured. Two passes over the
same streams: one window per engine call (what a process per stream would do on one GPU) and
batches of up to `--max-batch`. Reported per pass: windows scored per second, windows skipped,
p95 window latency (due to scored), p95 engine call, mean batch size. Exit status 2 without a
CUDA GPU (the check is skipped).
"""
from __future__ import annotations

import argparse
import json
import sys
import threading
import time
import types
import zlib

import numpy as np

from bench.serve import LABELS, RATE, scene
from clap_rt.checkpoints import atomic_write_bytes
from clap_rt.errors import UserError, run_program

PROG = "python -m bench.serve_gpu"


class GpuClap:
    """What the service needs of a Clap: the frontend, thresholds, label directions, embed_mel."""

    def __init__(self, preset: str, dtype: str):
        from bench.gpu_check import audio_only_model
        from clap_rt.engine.cuda_engine import CudaEngine
        model = audio_only_model(preset)
        self.config = types.SimpleNamespace(event_thresholds=model.config.event_thresholds,
                                            short_clips=model.config.short_clips)
        self.frontend = model.config.frontend
        self.dim = model.config.projection.dim
        self.logit_scale = 1 / 0.07
        self.engine = CudaEngine(model, dtype=dtype)

    def label_embeddings(self, texts, template=None) -> np.ndarray:
        rows = [np.random.default_rng(zlib.crc32(t.encode())).standard_normal(self.dim) for t in texts]
        e = np.asarray(rows, np.float32).reshape(len(texts), self.dim)
        return e / np.linalg.norm(e, axis=1, keepdims=True)

    def embed_mel(self, mel: np.ndarray) -> np.ndarray:
        return self.engine.embed(mel)


def run_pass(clap, audio: list, args, max_batch: int) -> dict:
    from clap_rt.serve.config import parse_config
    from clap_rt.serve.service import Service
    from clap_rt.sources import ArraySource
    doc = {"engine": {"max_batch": max_batch}, "metrics": {"enabled": False}, "outbox": {"dir": "/tmp/serve-gpu-outbox"},
           "stream": [{"name": f"s{i}", "file": f"synthetic-{i}.wav", "labels": list(LABELS), "hop": args.hop,
                       "speed": args.speed, "queue": 2} for i in range(len(audio))]}
    by_name = {f"s{i}": x for i, x in enumerate(audio)}
    service = Service(parse_config(doc, "serve-gpu.toml"), clap=clap, log=lambda m: None,
                      open_source=lambda s: ArraySource(by_name[s.name], RATE, realtime=True, queue_size=128,
                                                        speed=s.speed))
    t0 = time.perf_counter()
    service.run(threading.Event())
    wall = time.perf_counter() - t0
    sched = service.scheduler
    windows = sum(r.windows for r in service.runners)
    skipped = sum(r.skipped for r in service.runners)
    return {"max_batch": max_batch, "windows": windows, "skipped": skipped, "wall_s": round(wall, 3),
            "windows_per_s": round(windows / wall, 1),
            "skipped_pct": round(100 * skipped / max(1, windows + skipped), 2),
            "p95_latency_ms": round(1e3 * sched.latency.quantile(0.95), 2),
            "p95_engine_call_ms": round(1e3 * sched.inference.quantile(0.95), 2),
            "mean_batch": round(windows / max(1, sched.batches), 1)}


def run(args) -> int:
    import torch
    if not torch.cuda.is_available():
        raise UserError(f"skipped: no CUDA GPU visible to torch {torch.__version__}")
    clap = GpuClap(args.preset, args.dtype)
    fe = clap.frontend
    for b in (1, args.max_batch):     # capture the CUDA graphs of both passes' largest shapes first
        clap.embed_mel(np.zeros((b, fe.n_mels, fe.n_frames), np.float32))
    audio = [scene(args.seconds, seed) for seed in range(args.streams)]
    info = {"gpu": torch.cuda.get_device_name(), "torch": torch.__version__, "streams": args.streams,
            "demand_windows_per_s": args.streams * args.speed / args.hop}
    print(f"# {info}", flush=True)
    rows = [run_pass(clap, audio, args, b) for b in (1, args.max_batch)]
    for r in rows:
        print(f"max_batch {r['max_batch']:4d}: {r['windows_per_s']:8.1f} windows/s, skipped {r['skipped_pct']:5.1f}%, "
              f"p95 latency {r['p95_latency_ms']:7.1f} ms, p95 engine call {r['p95_engine_call_ms']:6.2f} ms, "
              f"mean batch {r['mean_batch']:.1f}", flush=True)
    if args.json:
        atomic_write_bytes(args.json, (json.dumps({"machine": info, "args": vars(args), "rows": rows}, indent=1)
                                       + "\n").encode())
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    p.add_argument("--streams", type=int, default=256)
    p.add_argument("--seconds", type=float, default=20.0, help="audio per stream (default: 20)")
    p.add_argument("--speed", type=float, default=1.0, help="playback speed (default: real time)")
    p.add_argument("--hop", type=float, default=0.5)
    p.add_argument("--max-batch", type=int, default=256)
    p.add_argument("--preset", default="clap-rt-small")
    p.add_argument("--dtype", default="fp16", choices=("fp16", "bf16"))
    p.add_argument("--json", default=None, help="write the results as JSON to this path")
    args = p.parse_args(argv)
    return run_program(PROG, lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
