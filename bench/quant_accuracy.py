"""Accuracy of the exported / quantised audio graphs against eager PyTorch, on held-out audio.

    python -m bench.quant_accuracy [--model DIR] [--manifest CORPUS/manifest.jsonl] [--json out.json]

Exports the model to ONNX, writes the fp16, int8-dynamic and int8-static variants (static
calibrated on training clips, never on the evaluated ones), then embeds every window of the
corpus's held-out "test" split with each graph and reports the window cosine to eager PyTorch
(min / mean) and zero-shot top-1 among the test labels, same windows, same process.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

from bench.stream import DEFAULT_MANIFEST, corpus_clips
from clap_rt.errors import UserError, run_program
from train.data import Clip

PROG = "python -m bench.quant_accuracy"


def test_windows(clips: list[Clip], clap, max_clips: int) -> tuple[list[str], list[np.ndarray]]:
    from clap_rt.audio import fit_windows, load_audio
    from clap_rt.frontend import log_mel
    test = [c for c in clips if c.split == "test"][:max_clips]
    fe = clap.frontend
    mels = [log_mel(fit_windows(load_audio(c.path, fe.sample_rate), fe.clip_samples,
                                short=clap.config.short_clips), fe) for c in test]
    return [c.label for c in test], mels


def calibration_folder(clips: list[Clip], n: int, tmp: Path) -> Path:
    """A folder of links to `n` training clips spread over the manifest."""
    train = [c for c in clips if c.split == "train"]
    for i in np.linspace(0, len(train) - 1, n).round().astype(int):
        src = Path(train[i].path)
        (tmp / f"{i:06d}{src.suffix}").symlink_to(src)
    return tmp


def run(args: argparse.Namespace) -> int:
    """Embed the held-out windows with every graph, print (and write) the comparison."""
    clips = corpus_clips(args.manifest)
    if not any(c.split == "train" for c in clips):     # checked before any work: calibration needs them
        raise UserError(f"{args.manifest}: expected training clips (split 'train') to calibrate the static "
                        "int8 graph on, found none")
    from clap_rt.checkpoints import DEFAULT_MODEL_DIR
    from clap_rt.engine.onnx_engine import OnnxEngine
    from clap_rt.pooling import pool_windows
    from clap_rt.zeroshot import Clap
    from export.quantize import quantize
    from export.to_onnx import export
    model_dir = args.model or str(DEFAULT_MODEL_DIR)
    clap = Clap.load(model_dir, backend="torch", threads=args.threads)
    labels, mels = test_windows(clips, clap, args.max_clips)
    names = sorted(set(labels))
    y = np.array([names.index(x) for x in labels])
    lab = clap.label_embeddings(names)
    flat = np.concatenate(mels)
    clip_starts = np.cumsum([len(m) for m in mels])[:-1]

    def embed(engine) -> np.ndarray:
        return np.concatenate([engine.embed(flat[i:i + 16]) for i in range(0, len(flat), 16)])

    def top1(win_emb: np.ndarray) -> float:
        """Zero-shot top-1 of clips pooled as `Clap.embed_audio` pools them."""
        clip = np.stack([pool_windows(e, m) for e, m in zip(np.split(win_emb, clip_starts), mels)])
        return float(np.mean((clip @ lab.T).argmax(1) == y))

    ref = embed(clap.engine)
    results = {"torch fp32": {"top1": top1(ref), "min_cos": 1.0, "mean_cos": 1.0}}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "export"
        export(model_dir, str(out))
        calib_dir = Path(tmp) / "calib"
        calib_dir.mkdir()
        calib = calibration_folder(clips, args.calib_windows, calib_dir)
        graphs = {"onnx fp32": out / "audio.onnx"}
        for mode in ("fp16", "dynamic", "static"):
            graphs[f"onnx {'int8 ' if mode != 'fp16' else ''}{mode}"] = quantize(
                out, mode, str(calib) if mode == "static" else None, args.calib_windows)
        for name, path in graphs.items():
            emb = embed(OnnxEngine(clap.model, args.threads, path=path))
            cos = np.sum(emb * ref, axis=1)
            results[name] = {"top1": top1(emb), "min_cos": float(cos.min()), "mean_cos": float(cos.mean())}
    base = results["torch fp32"]["top1"]
    print(f"{len(mels)} held-out clips, {len(flat)} windows, {len(names)} labels")
    print(f"{'graph':18s} {'top-1':>7s} {'vs fp32':>8s} {'min cos':>9s} {'mean cos':>9s}")
    for name, r in results.items():
        print(f"{name:18s} {100 * r['top1']:6.2f}% {100 * (r['top1'] - base):+7.2f} {r['min_cos']:9.5f} {r['mean_cos']:9.5f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"clips": len(mels), "windows": len(flat), "labels": len(names),
                                               "results": results}, indent=1))
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n")[0])
    p.add_argument("--model", default=None, help="model folder (default: the bundled model)")
    p.add_argument("--manifest", type=Path, default=DEFAULT_MANIFEST)
    p.add_argument("--max-clips", type=int, default=10_000)
    p.add_argument("--calib-windows", type=int, default=128)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", default=None, help="write the results as JSON here")
    args = p.parse_args(argv)
    return run_program(PROG, lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
