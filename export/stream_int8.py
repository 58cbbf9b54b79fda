"""python -m export.stream_int8 [--model DIR] [--manifest CORPUS/manifest.jsonl] [--hop 0.5]:
a static-int8 steady step for streams, shipped in the model folder only where it agrees.

A stream's steady windows run one onnxruntime graph (`clap_rt.engine.incremental_graph`):
the hop's new frames and the tower's held columns in, the embedding and the next held columns
out. This program
  1. records that graph's inputs over a stream of `--calib-clips` training clips (the held
     columns a real stream carries, not random ones) and quantises its convolutions to QDQ
     int8 on them (export.quantize.quantize_static; the input scaling and the first
     `--fp32-layers` conv layers stay fp32);
  2. streams `--eval-clips` clips of the validation split (held out of training; never the
     benchmark) through the fp32 and the int8 step, and compares window by window: embedding
     cosine, top label among the split's most frequent labels, and on decisions at the model's
     on threshold;
  3. writes the int8 step into the model folder (`int8_graph_name`: tied to the weights, window
     and hop) with the figures in stream-int8.json, only if every figure meets its bar
     (AGREEMENT); otherwise prints the figures, writes nothing and exits with status 1.
`--backend auto` streams then time both steps and keep the faster (`clap_rt.incremental.tower_for`).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from clap_rt.errors import UserError, run_program

PROG = "python -m export.stream_int8"
CHUNK = 4410                    # samples per accept_waveform call (0.1 s at 44.1 kHz)
LABELS = 28                     # the validation split's most frequent labels, scored per window
# The bars an int8 step must meet on held-out streams, decided before any run: the detector's
# decisions unchanged, the label users see unchanged on nearly every window.
AGREEMENT = {"cosine_mean": 0.995, "top_label": 0.95, "decisions": 0.999}


class FeedReader:
    """onnxruntime CalibrationDataReader over recorded steady-step feeds."""

    def __init__(self, feeds: list[dict]):
        self._it = iter(feeds)

    def get_next(self):
        return next(self._it, None)


def stream_audio(clips: list, n: int, rate: int, rng: np.random.Generator) -> np.ndarray:
    """`n` clips drawn from `clips`, decoded and joined: (samples,) float32 at `rate`."""
    from clap_rt.audio import load_audio
    pick = rng.choice(len(clips), min(n, len(clips)), replace=False)
    return np.concatenate([load_audio(clips[i].path, rate) for i in pick]).astype(np.float32)


def steady_windows(clap, labels: list[str], audio: np.ndarray, hop: float, session=None, record=None):
    """The windows of one stream -> ((N, D) embeddings, (N, L) label scores, median CPU s per
    steady step, the ClapStream, its SteadyGraph); `session` replaces the step for this stream
    (the graph is the model's streams' shared one: restored after), `record` (a list) collects
    the step's feeds."""
    from clap_rt.stream import ClapStream
    stream = ClapStream(clap, labels, clap.sample_rate, hop=hop)
    graph = stream.tower_state.graph if stream.incremental else None
    if graph is None or graph.session is None:
        raise UserError(f"--model: the audio tower has no steady-state step at hop {hop} s "
                        f"(incremental encoding on onnxruntime is needed)")
    kept = graph.session
    graph.session, graph.recorded = session or kept, record
    embs, scores, seconds = [], [], []
    try:
        for i in range(0, len(audio), CHUNK):
            stream.accept_waveform(audio[i:i + CHUNK])
            while stream.windows_ready:
                w = stream.pop_window()
                steady = w.frame is not None and graph.fits(stream.tower_state, stream.window_frames - stream.hop_frames)
                c0 = time.thread_time()
                e = stream.embed_window(w)
                if steady:
                    seconds.append(time.thread_time() - c0)
                embs.append(e)
                scores.append(stream.score_embeddings(e[None])[0][:len(labels)])
    finally:
        graph.session, graph.recorded = kept, None
    return np.array(embs), np.array(scores), float(np.median(seconds)), stream, graph


def agreement(e32: np.ndarray, s32: np.ndarray, e8: np.ndarray, s8: np.ndarray, on: float) -> dict:
    cos = (e32 * e8).sum(axis=1)
    return {"windows": int(len(cos)), "cosine_min": float(cos.min()), "cosine_mean": float(cos.mean()),
            "top_label": float(np.mean(s32.argmax(1) == s8.argmax(1))),
            "decisions": float(np.mean((s32 >= on) == (s8 >= on)))}


def main(argv: list[str] | None = None) -> int:
    from train.data import DEFAULT_MANIFEST
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    p.add_argument("--model", default=None, help="model folder (default: the bundled model); the int8 step is written there")
    p.add_argument("--manifest", type=Path, default=DEFAULT_MANIFEST, help="the corpus manifest (train and val splits)")
    p.add_argument("--hop", type=float, default=0.5, help="stream hop in seconds (rounded as listen rounds it)")
    p.add_argument("--calib-clips", type=int, default=60, help="training clips streamed for calibration")
    p.add_argument("--eval-clips", type=int, default=120, help="validation clips streamed for the agreement")
    p.add_argument("--fp32-layers", type=int, default=4,
                   help="leading conv layers kept fp32 (default: 4, the fewest that agree on the bundled model)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    def run() -> int:
        import onnx
        import torch
        from clap_rt.checkpoints import atomic_write_bytes
        from clap_rt.engine.incremental_graph import int8_graph_name
        from clap_rt.engine.onnx_engine import ort_session
        from clap_rt.zeroshot import Clap
        from export.quantize import quantize_static
        from train.data import read_manifest
        if not args.manifest.exists():
            raise UserError(f"--manifest {args.manifest}: not found; build the corpus first (python -m train.corpus)")
        torch.set_num_threads(1)
        clap = Clap.load(args.model, backend="onnx", threads=1)
        clips = read_manifest(args.manifest)
        train = [c for c in clips if c.split == "train"]
        val = [c for c in clips if c.split == "val"]
        if not train or not val:
            raise UserError(f"--manifest {args.manifest}: expected clips of the train and val splits")
        counts: dict = {}
        for c in val:
            counts[c.label] = counts.get(c.label, 0) + 1
        labels = sorted(counts, key=lambda k: (-counts[k], k))[:LABELS]
        rng = np.random.default_rng(args.seed)
        calib, evaluation = (stream_audio(train, args.calib_clips, clap.sample_rate, rng),
                             stream_audio(val, args.eval_clips, clap.sample_rate, rng))

        feeds: list = []
        _, _, _, stream, graph = steady_windows(clap, labels, calib, args.hop, record=feeds)
        name = int8_graph_name(clap.model, stream.window_frames, stream.hop_frames)
        with tempfile.TemporaryDirectory() as tmp:
            dst = Path(tmp) / name
            # The projections' MatMuls too: a fraction of the compute, but 13 of the graph's 19 MB in fp32.
            quantize_static(graph.path, dst, FeedReader(feeds), fp32_conv_layers=args.fp32_layers,
                            ops=("Conv", "MatMul"))
            int8 = ort_session(dst, 1)
            e32, s32, ms32, _, _ = steady_windows(clap, labels, evaluation, args.hop)
            e8, s8, ms8, _, _ = steady_windows(clap, labels, evaluation, args.hop, session=int8)
            figures = agreement(e32, s32, e8, s8, clap.config.event_thresholds[0])
            figures.update({"step_ms_cpu_fp32": 1e3 * ms32, "step_ms_cpu_int8": 1e3 * ms8,
                            "calibration_steps": len(feeds), "calib_clips": args.calib_clips,
                            "eval_clips": args.eval_clips, "labels": len(labels),
                            "fp32_conv_layers": args.fp32_layers, "window_frames": stream.window_frames,
                            "hop_frames": stream.hop_frames, "file": name})
            for k, v in figures.items():
                print(f"  {k:<20} {v:.4f}" if isinstance(v, float) else f"  {k:<20} {v}")
            failed = [k for k, bar in AGREEMENT.items() if figures[k] < bar]
            if failed:
                print(f"{PROG}: the int8 step does not agree with fp32 on held-out streams "
                      f"({', '.join(f'{k} {figures[k]:.4f} < {AGREEMENT[k]}' for k in failed)}); nothing written",
                      file=sys.stderr)
                return 1
            folder = Path(clap.model_dir)
            onnx.checker.check_model(str(dst))
            atomic_write_bytes(folder / name, dst.read_bytes())
        doc_path = folder / "stream-int8.json"
        doc = json.loads(doc_path.read_text()) if doc_path.exists() else {"format": "clap_rt.stream_int8", "graphs": {}}
        doc["graphs"] = {k: v for k, v in doc["graphs"].items() if (folder / k).exists()}
        doc["graphs"][name] = {**figures, "agreement_bars": AGREEMENT}
        atomic_write_bytes(doc_path, (json.dumps(doc, indent=1) + "\n").encode())
        print(f"wrote {folder / name} ({(folder / name).stat().st_size / 1e6:.1f} MB) and {doc_path}")
        return 0

    return run_program(PROG, run)


if __name__ == "__main__":
    sys.exit(main())
