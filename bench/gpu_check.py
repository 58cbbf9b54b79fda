"""python -m bench.gpu_check [--presets a,b] [--compile] [--json OUT]: every GPU path, one short run.

Needs only torch (CUDA build) + numpy on the GPU machine; no transformers (the towers are
built audio-side only, random weights). For each preset and each GPU path installed here
(PyTorch fp32 eager, `cuda` fp16 / bf16 with CUDA graphs, optionally torch.compile,
onnxruntime's CUDA provider, TensorRT fp16) it checks parity against CPU fp32 PyTorch
(min cosine >= 0.999 at batch 8) and prints batch-1 latency and batch-64 / 256 throughput.
Exit status 1 if any path fails parity, 2 without a CUDA GPU.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import types
from pathlib import Path

import torch

from clap_rt.errors import UserError, run_program

PROG = "python -m bench.gpu_check"
PARITY = 0.999


def audio_only_model(name: str):
    """What the engines need of a CLAP model, without building its text tower."""
    from clap_rt.config import preset
    from clap_rt.model import Projection, build_audio_tower
    cfg = preset(name)
    torch.manual_seed(0)
    return types.SimpleNamespace(config=cfg, audio=build_audio_tower(cfg.audio, cfg.frontend).eval(),
                                 audio_projection=Projection(cfg.audio.out_dim, cfg.projection).eval())


class EagerGpu:
    """fp32 PyTorch on the GPU, no graphs: the GPU baseline."""

    name = "gpu-fp32-eager"

    def __init__(self, model):
        import copy
        from clap_rt.engine.graph import AudioGraph
        self.graph = copy.deepcopy(AudioGraph(model)).eval().cuda()

    @torch.inference_mode()
    def embed(self, x):
        return self.graph(torch.from_numpy(x).cuda()).cpu().numpy()

    def close(self):
        pass


def gpu_paths(model, compile_too: bool):
    from clap_rt.engine.cuda_engine import CudaEngine
    yield "gpu-fp32-eager", lambda: EagerGpu(model)
    yield "cuda-fp16-graphs", lambda: CudaEngine(model, dtype="fp16")
    yield "cuda-bf16-graphs", lambda: CudaEngine(model, dtype="bf16")
    if compile_too:
        yield "cuda-fp16-compile-graphs", lambda: CudaEngine(model, dtype="fp16", compile=True)
    try:
        import onnxruntime as ort
        if "CUDAExecutionProvider" in ort.get_available_providers():
            from clap_rt.engine.onnx_engine import OnnxEngine
            yield "ort-cuda-fp32", lambda: OnnxEngine(model, providers=["CUDAExecutionProvider"])
    except ImportError:
        pass
    import importlib.util
    if importlib.util.find_spec("tensorrt") is not None:
        from clap_rt.engine.trt_engine import TrtEngine
        yield "trt-fp16", lambda: TrtEngine(model, fp16=True, batch=(1, 64, 256))


def timed(fn, repeats: int) -> float:
    """Median seconds of fn() (which synchronises by copying to the host) after 3 warm-ups."""
    for _ in range(3):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def check_preset(name: str, compile_too: bool, repeats: int) -> list[dict]:
    from clap_rt.engine.graph import AudioGraph, example_input
    model = audio_only_model(name)
    x8 = example_input(model, 8).numpy()
    with torch.inference_mode():
        ref = AudioGraph(model).eval()(torch.from_numpy(x8)).numpy()     # CPU fp32 reference
    rows = []
    for label, make in gpu_paths(model, compile_too):
        row = {"preset": name, "path": label}
        try:
            t0 = time.perf_counter()
            engine = make()
            out = engine.embed(x8)
            row["setup_s"] = time.perf_counter() - t0
            row["min_cosine"] = float((out * ref).sum(axis=1).min())
            row["parity_ok"] = row["min_cosine"] >= PARITY
            x1 = example_input(model, 1).numpy()
            row["batch1_ms"] = 1e3 * timed(lambda: engine.embed(x1), repeats)
            for b in (64, 256):
                xb = example_input(model, b).numpy()
                row[f"batch{b}_items_per_s"] = b / timed(lambda: engine.embed(xb), max(3, repeats // 10))
            engine.close()
        except Exception as e:                      # report and go on: one broken path must not hide the others
            row["error"] = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
            row["parity_ok"] = False
        rows.append(row)
        print(format_row(row), flush=True)
    return rows


def format_row(r: dict) -> str:
    if "error" in r:
        return f"{r['preset']:<14} {r['path']:<26} ERROR {r['error']}"
    return (f"{r['preset']:<14} {r['path']:<26} cos {r['min_cosine']:.5f} {'ok  ' if r['parity_ok'] else 'FAIL'} "
            f"b1 {r['batch1_ms']:8.2f} ms  b64 {r['batch64_items_per_s']:9.0f}/s  "
            f"b256 {r['batch256_items_per_s']:9.0f}/s  setup {r['setup_s']:.1f} s")


def run(args: argparse.Namespace) -> int:
    """Check and time every GPU path of each preset; status 1 if any fails parity."""
    if not torch.cuda.is_available():
        raise UserError(f"no CUDA GPU visible to torch {torch.__version__}")
    torch.backends.cudnn.benchmark = True
    info = {"gpu": torch.cuda.get_device_name(), "torch": torch.__version__, "cuda": torch.version.cuda}
    print(f"# {info}")
    rows = []
    for name in args.presets.split(","):
        rows += check_preset(name, args.compile, args.repeats)
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": info, "rows": rows}, indent=1))
    return 0 if all(r["parity_ok"] for r in rows) else 1


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    p.add_argument("--presets", default="clap-rt-small,msclap-2023")
    p.add_argument("--compile", action="store_true", help="also time torch.compile + CUDA graphs")
    p.add_argument("--repeats", type=int, default=50)
    p.add_argument("--json", default=None, help="write the results as JSON to this path")
    args = p.parse_args(argv)
    return run_program(PROG, lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
