"""python -m bench.encoders [--presets a,b] [--batches 1,8,64] [--json OUT]: encoder latency per backend.

For each preset (random weights: latency does not depend on them) the audio tower runs on
every backend present, all in this process so the ratios hold on a noisy machine:
  eager       PyTorch fp32 on the CPU (the baseline of every ratio)
  ort-fp32    onnxruntime, the exported graph
  ort-int8-dynamic / ort-int8-static   export/quantize.py's two int8 graphs
  cuda-fp16 / cuda-bf16   (GPU) PyTorch autocast + CUDA graphs
  trt-fp16    (GPU + TensorRT) engine built from the exported graph
plus the text tower (eager) on 10 label prompts. Each cell: median wall time of up to
--repeats calls after one warm-up call (which also gives the cosine vs eager), stopping
early once a cell has used --budget seconds.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from bench.report import cpu_flags, write_json
from clap_rt.errors import run_program

PROG = "python -m bench.encoders"
LABELS = ["dog barking", "siren", "glass breaking", "rain", "speech", "piano", "car engine",
          "footsteps", "door knock", "bird song"]


def time_cell(fn, repeats: int, budget: float) -> tuple[float, int]:
    """(median seconds, timed runs) of fn(); the caller has made one warm-up call."""
    times = []
    start = time.perf_counter()
    while len(times) < repeats and (not times or time.perf_counter() - start < budget):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), len(times)


def build_model(name: str):
    from clap_rt.config import preset
    from clap_rt.model import CLAP
    cfg = preset(name)
    cfg.text.pretrained = ""         # random weights everywhere: no package read
    torch.manual_seed(0)
    return CLAP(cfg).eval()


def tokenizer_for(cfg):
    import clap_rt
    from clap_rt.checkpoints import pretrained_tokenizer_dir
    from clap_rt.config import preset
    from clap_rt.tokenizer import TextTokenizer
    tok_dir = pretrained_tokenizer_dir(preset(cfg.name)) or Path(clap_rt.__file__).parent / "assets" / "gpt2"
    return TextTokenizer.from_dir(tok_dir, cfg.text)


def audio_engines(model, tmp: Path, threads: int):
    """(label, engine) for every backend available here; quantised graphs written into tmp."""
    from clap_rt.engine.graph import example_input, export_audio_onnx
    from clap_rt.engine.onnx_engine import OnnxEngine
    from clap_rt.engine.torch_engine import TorchEngine
    from export.quantize import MelReader, quantize_dynamic, quantize_static
    yield "eager", TorchEngine(model, threads=threads)
    fp32 = tmp / "audio.onnx"
    fp32.write_bytes(export_audio_onnx(model))
    yield "ort-fp32", OnnxEngine(model, threads, path=fp32)
    quantize_dynamic(fp32, tmp / "dyn.onnx")
    yield "ort-int8-dynamic", OnnxEngine(model, threads, path=tmp / "dyn.onnx")
    # Latency does not depend on the calibration data: a few synthetic windows do.
    quantize_static(fp32, tmp / "static.onnx", MelReader(example_input(model, 4).numpy()))
    yield "ort-int8-static", OnnxEngine(model, threads, path=tmp / "static.onnx")
    if torch.cuda.is_available():
        from clap_rt.engine.cuda_engine import CudaEngine
        for dtype in ("fp16", "bf16"):
            yield f"cuda-{dtype}", CudaEngine(model, dtype=dtype)
        try:
            from clap_rt.engine.trt_engine import TrtEngine
            yield "trt-fp16", TrtEngine(model, fp16=True)
        except RuntimeError as e:
            print(f"# trt-fp16 skipped: {e}", file=sys.stderr)


def bench_preset(name: str, batches: list[int], repeats: int, budget: float, threads: int) -> list[dict]:
    from clap_rt.engine.graph import example_input
    model = build_model(name)
    rows = []
    xs = {b: example_input(model, b).numpy() for b in batches}
    eager_ms, ref = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, engine in audio_engines(model, Path(tmp), threads):
            for b in batches:
                out = engine.embed(xs[b])          # also the warm-up call of the cell
                if label == "eager":
                    ref[b] = out
                cos = float((out * ref[b]).sum(axis=1).min())
                sec, n = time_cell(lambda: engine.embed(xs[b]), repeats, budget)
                ms = 1e3 * sec
                eager_ms.setdefault(b, ms)
                rows.append({"preset": name, "tower": "audio", "backend": label, "batch": b, "ms": ms,
                             "ms_per_item": ms / b, "speedup_vs_eager": eager_ms[b] / ms,
                             "min_cosine_vs_eager": cos, "runs": n})
                print(format_row(rows[-1]), flush=True)
            engine.close()
    tok = tokenizer_for(model.config)
    prompts = [model.config.prompt_template.format(label) for label in LABELS]

    def text():
        with torch.inference_mode():
            model.encode_text(*tok(prompts))
    text()
    sec, n = time_cell(text, repeats, budget)
    rows.append({"preset": name, "tower": "text", "backend": "eager", "batch": len(prompts), "ms": 1e3 * sec,
                 "ms_per_item": 1e3 * sec / len(prompts), "speedup_vs_eager": 1.0,
                 "min_cosine_vs_eager": 1.0, "runs": n})
    print(format_row(rows[-1]), flush=True)
    return rows


HEADER = (f"{'preset':<14} {'tower':<5} {'backend':<17} {'batch':>5} {'median ms':>10} {'ms/item':>8} "
          f"{'x eager':>8} {'cos':>9} {'runs':>4}")


def format_row(r: dict) -> str:
    return (f"{r['preset']:<14} {r['tower']:<5} {r['backend']:<17} {r['batch']:>5} {r['ms']:>10.1f} "
            f"{r['ms_per_item']:>8.2f} {r['speedup_vs_eager']:>8.2f} {r['min_cosine_vs_eager']:>9.6f} {r['runs']:>4}")


def run(args: argparse.Namespace) -> int:
    """Time every backend of each preset, print the table (and the JSON)."""
    torch.set_num_threads(args.threads)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    batches = [int(b) for b in args.batches.split(",")]
    import onnxruntime
    machine = {"cpu_flags": cpu_flags(), "threads": args.threads, "torch": torch.__version__,
               "onnxruntime": onnxruntime.__version__,
               "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None}
    print(f"# {machine}")
    print(HEADER)
    rows = []
    for name in args.presets.split(","):
        rows += bench_preset(name, batches, args.repeats, args.budget, args.threads)
    doc = {"machine": machine, "rows": rows}
    write_json(doc, args.json, indent=1)
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    p.add_argument("--presets", default="clap-rt-small,msclap-2023")
    p.add_argument("--batches", default="1,8,64")
    p.add_argument("--repeats", type=int, default=10, help="max timed calls per cell")
    p.add_argument("--budget", type=float, default=3.0, help="seconds after which a cell stops repeating")
    p.add_argument("--threads", type=int, default=2, help="CPU threads for torch and onnxruntime")
    p.add_argument("--json", default=None, help="write the results as JSON to this path ('-': stdout)")
    args = p.parse_args(argv)
    return run_program(PROG, lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
