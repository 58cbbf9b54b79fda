"""python -m export.to_trt CKPT [--fp16] [--int8 --calib FOLDER] [--batch MIN,OPT,MAX] -o engine.plan

Checkpoint -> ONNX (to_onnx.py, parity-checked) -> TensorRT engine with one optimisation
profile over the batch sizes. TensorRT 10.x: precision through the FP16 / INT8 builder flags
(int8 runs the static Q/DQ graph). TensorRT 11.x: strongly typed networks, so the precision
comes from the graph itself: --fp16 builds the fp16 graph of quantize.py, --int8 the Q/DQ one.
Without TensorRT or a CUDA GPU: one line saying what is missing, exit status 2.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from clap_rt.errors import UserError, run_program
from export.common import AUDIO_ONNX, FAILURES

PROG = "python -m export.to_trt"


def parse_batch(text: str) -> tuple[int, int, int]:
    try:
        b = tuple(int(v) for v in text.split(","))
    except ValueError:
        b = ()
    if len(b) != 3 or not 1 <= b[0] <= b[1] <= b[2]:
        raise UserError(f"--batch: expected MIN,OPT,MAX with 1 <= MIN <= OPT <= MAX, got {text!r}")
    return b


def build(ckpt: str, out: str, fp16: bool, int8: bool, batch: tuple[int, int, int],
          calib: str | None) -> Path:
    """Export, optionally convert / quantise, build; returns the plan path."""
    from clap_rt.checkpoints import atomic_write_bytes
    from clap_rt.engine.trt_engine import build_plan, require_tensorrt, trt_major
    from export import quantize, to_onnx
    trt = require_tensorrt()                       # fail fast, before any export work
    if int8 and not calib:
        raise UserError("--int8: needs --calib FOLDER (audio for the static Q/DQ calibration)")
    with tempfile.TemporaryDirectory() as tmp:
        meta = to_onnx.export(ckpt, tmp)
        if meta["parity_min_cosine"] < to_onnx.PARITY_MIN:
            raise RuntimeError(f"ONNX disagrees with PyTorch (cosine {meta['parity_min_cosine']:.7f})")
        graph = Path(tmp) / AUDIO_ONNX
        if int8:
            graph = quantize.quantize(tmp, "static", calib)
        elif fp16 and trt_major(trt) >= 11:
            graph = quantize.quantize(tmp, "fp16")
        import onnx
        from export.trt_ops import trt_unsupported
        problems = trt_unsupported(onnx.load(str(graph)))
        if problems:
            raise RuntimeError(f"{graph.name}: TensorRT cannot import {problems[0]} ({len(problems)} problems)")
        n_frames = to_onnx.model_frames(meta)
        plan = build_plan(graph, n_frames, fp16=fp16, int8=int8, batch=batch)
    atomic_write_bytes(Path(out), plan)
    return Path(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    p.add_argument("ckpt", help="clap_rt model folder")
    p.add_argument("-o", "--out", required=True, help="engine file to write (.plan)")
    p.add_argument("--fp16", action="store_true", help="fp16 engine")
    p.add_argument("--int8", action="store_true", help="int8 engine from the calibrated Q/DQ graph")
    p.add_argument("--calib", default=None, help="folder of audio for --int8 calibration")
    p.add_argument("--batch", default="1,8,64", help="optimisation profile MIN,OPT,MAX (default 1,8,64)")
    args = p.parse_args(argv)

    def run() -> int:
        path = build(args.ckpt, args.out, args.fp16, args.int8, parse_batch(args.batch), args.calib)
        print(f"wrote {path}")
        return 0

    return run_program(PROG, run, also=FAILURES)


if __name__ == "__main__":
    sys.exit(main())
