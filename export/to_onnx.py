"""python -m export.to_onnx CKPT -o DIR: the audio tower as ONNX, checked against PyTorch.

Writes into DIR:
  audio.onnx      log-mel frames `mel_db` (batch, n_mels, T) -> `embedding` (batch, dim), unit
                  norm; dynamic batch axis, opset 17, passes onnx.checker (the portable graph:
                  TensorRT, onnxruntime, any runtime). The frontend stays outside the graph.
  audio.ort.onnx  the same after onnxruntime's extended graph optimisation (ORT only).
  labels.npz      with --labels / --labels-file: the text side as a label-embedding table
                  (labels, template, embeddings (L, dim), logit_scale).
  export.json     model config, input spec and the measured ONNX-vs-PyTorch cosine.
The export fails (exit 1) if ONNX and PyTorch disagree (min cosine < 0.99999 on batches 1 and 5).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from clap_rt.engine.graph import INPUT_NAME, OPSET, OUTPUT_NAME
from clap_rt.errors import UserError, run_program
from export.common import AUDIO_ONNX, AUDIO_ORT, FAILURES, LABELS_NPZ, META_JSON, load_checkpoint

PROG = "python -m export.to_onnx"
PARITY_MIN = 0.99999


def parity(model, onnx_path: Path, batches=(1, 5)) -> float:
    """Min cosine between ORT and eager PyTorch embeddings over one call per batch size."""
    from clap_rt.engine.graph import example_input
    from clap_rt.engine.onnx_engine import ort_session
    sess = ort_session(onnx_path, threads=2)
    worst = 1.0
    x = example_input(model, sum(batches))
    start = 0
    for b in batches:
        xb = x[start:start + b]
        start += b
        with torch.no_grad():
            ref = model.encode_audio(xb).numpy()
        out = sess.run(None, {INPUT_NAME: xb.numpy()})[0]
        worst = min(worst, float((ref * out).sum(axis=1).min()))
    return worst


def optimise_for_ort(src: Path, dst: Path) -> None:
    """Save onnxruntime's extended-level optimised graph (not ALL: that one is CPU-layout specific)."""
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    so.optimized_model_filepath = str(dst)
    ort.InferenceSession(str(src), sess_options=so, providers=["CPUExecutionProvider"])


def model_frames(meta: dict) -> int:
    """Frames per clip window of the exported model (the T an engine is built for)."""
    from export.common import model_config
    return model_config(meta).frontend.n_frames


def export(ckpt: str, out_dir: str, labels=None, template: str | None = None,
           opset: int = OPSET) -> dict:
    """Export `ckpt` into `out_dir`; returns the export.json content. labels: names or a
    `LabelSet` (enrolled labels of one vector export as that vector mixed with their text)."""
    import onnx
    from clap_rt.checkpoints import atomic_write_bytes
    from clap_rt.engine.graph import AudioGraph, export_audio_onnx
    model, tokenizer = load_checkpoint(ckpt)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    proto = onnx.load_from_string(export_audio_onnx(model, opset))
    proto = onnx.shape_inference.infer_shapes(proto)
    onnx.checker.check_model(proto, full_check=True)
    atomic_write_bytes(out / AUDIO_ONNX, proto.SerializeToString())
    optimise_for_ort(out / AUDIO_ONNX, out / AUDIO_ORT)
    cos = parity(model, out / AUDIO_ONNX)
    fe = model.config.frontend
    graph = AudioGraph(model)
    meta = {"model": model.config.to_dict(), "opset": opset, "input": INPUT_NAME, "output": OUTPUT_NAME,
            "input_shape": ["batch", fe.n_mels, fe.n_frames if graph.fixed_time else "frames"],
            "dim": model.config.projection.dim, "parity_min_cosine": cos,
            "torch": torch.__version__, "onnx": onnx.__version__}
    if labels:
        from clap_rt.labelset import LabelSet
        from clap_rt.zeroshot import Clap
        clap = Clap(model, tokenizer, backend="torch")
        template = template or model.config.prompt_template
        labels = LabelSet.of(labels)
        emb = labels.embedding_table(clap, template)
        np.savez(out / LABELS_NPZ, labels=np.array(labels.names), template=np.array(template),
                 embeddings=emb.astype(np.float32), logit_scale=np.float32(clap.logit_scale))
        meta["labels"] = LABELS_NPZ
    atomic_write_bytes(out / META_JSON, json.dumps(meta, indent=1).encode())
    return meta


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    p.add_argument("ckpt", help="clap_rt model folder")
    p.add_argument("-o", "--out", required=True, help="output folder")
    p.add_argument("--opset", type=int, default=OPSET)
    g = p.add_mutually_exclusive_group()
    g.add_argument("--labels", help='comma-separated labels for a label-embedding table, e.g. "siren,dog"')
    g.add_argument("--labels-file", help="a text file with one label per line")
    p.add_argument("--template", default=None, help="prompt template with {} (default: the model's)")
    args = p.parse_args(argv)

    def run() -> int:
        from clap_rt.cli.common import read_labels
        if args.opset < 17:
            raise UserError(f"--opset: expected >= 17 (LayerNormalization), got {args.opset}")
        labels = read_labels(args) if (args.labels or args.labels_file) else None
        meta = export(args.ckpt, args.out, labels, args.template, args.opset)
        cos = meta["parity_min_cosine"]
        print(f"wrote {args.out}/{AUDIO_ONNX} (+ {AUDIO_ORT}); ONNX vs PyTorch min cosine {cos:.7f}")
        if cos < PARITY_MIN:
            print(f"{PROG}: error: ONNX disagrees with PyTorch (cosine {cos:.7f} < {PARITY_MIN})",
                  file=sys.stderr)
            return 1
        return 0

    return run_program(PROG, run, also=FAILURES)


if __name__ == "__main__":
    sys.exit(main())
