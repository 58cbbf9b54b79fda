"""Captions of the everyday benchmark's clips: the model's captioner against retrieval baselines,
BLEU-4 and CIDEr-D in one run, and the decoding time per clip on one thread.

    python -m bench.caption [--manifest ~/.cache/clap_rt/corpus/manifest.jsonl] [--model DIR] \
        [--beam 3] [--json out.json]

References: each benchmark clip's captions in the corpus manifest (3 to 5 per clip). Every
system reads the clip's embedding (its loudest window, as `clap-rt caption`):
- retrieval, text: the training caption whose text embedding is nearest the clip's audio
  embedding in the joint space (the unique captions of the captioner's training clips);
- retrieval, audio: the first caption of the nearest training clip by audio embedding;
- the captioner, greedy and with a beam.
Timing: `Captioner.caption` one clip at a time (decoding only), and `Clap.embed_audio` of a
clip (decoding the file, log-mel, the audio tower), one thread.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

# One-thread figures: numpy's BLAS too, not only torch.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402  (after the BLAS thread count it reads at import)

from bench.report import cpu_line  # noqa: E402
from train.data import DEFAULT_MANIFEST  # noqa: E402
from clap_rt.errors import UserError, run_program  # noqa: E402

PROG = "python -m bench.caption"
TIMED_CLIPS = 50


def timed_captions(captioner, emb: np.ndarray, beam: int) -> tuple[list[str], float]:
    """One clip at a time -> (captions, mean seconds per clip)."""
    out, t0 = [], time.perf_counter()
    for e in emb:
        out.extend(captioner.caption(e[None], beam=beam))
    return out, (time.perf_counter() - t0) / len(emb)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    p.add_argument("--manifest", default=str(DEFAULT_MANIFEST), help="the corpus manifest (benchmark.jsonl beside it)")
    p.add_argument("--model", default=None, help="model folder with a captioner (default: the bundled model)")
    p.add_argument("--beam", type=int, default=3, help="beam width of the beam-search row (default: 3)")
    p.add_argument("--json", default=None, help="write the figures and every caption here")
    args = p.parse_args(argv)

    def run() -> None:
        import torch
        from clap_rt import Clap
        from train.caption import caption_splits, clip_embeddings
        from train.caption_metrics import bleu, cider_d
        if args.beam < 2:
            raise UserError(f"--beam: expected a beam width of at least 2 (greedy is always run), got {args.beam}")
        torch.set_num_threads(1)
        clap = Clap.load(args.model, backend="torch", threads=1)
        captioner = clap.captioner
        splits = caption_splits(args.manifest)
        root = Path(args.manifest).parent
        bench, train = splits["benchmark"], splits["train"]
        emb = clip_embeddings(clap, bench, root)
        train_emb = clip_embeddings(clap, train, root)
        refs = [r["captions"] for r in bench]

        texts = sorted({c for r in train for c in r["captions"]})
        text_emb = clap.embed_text(texts)
        systems = {
            "retrieval, text (nearest training caption)": [texts[i] for i in (emb @ text_emb.T).argmax(axis=1)],
            "retrieval, audio (nearest training clip)": [train[i]["caption"] for i in (emb @ train_emb.T).argmax(axis=1)],
        }
        greedy, greedy_s = timed_captions(captioner, emb, 1)
        beam, beam_s = timed_captions(captioner, emb, args.beam)
        systems["captioner, greedy"] = greedy
        systems[f"captioner, beam {args.beam}"] = beam
        seconds = {"captioner, greedy": greedy_s, f"captioner, beam {args.beam}": beam_s}
        t0 = time.perf_counter()
        for r in bench[:TIMED_CLIPS]:
            clap.embed_audio([root / r["path"]])
        embed_s = (time.perf_counter() - t0) / min(TIMED_CLIPS, len(bench))

        rows = {name: {"bleu4": bleu(hyps, refs), "cider_d": cider_d(hyps, refs),
                       "decode_ms_per_clip": round(1000 * seconds[name], 2) if name in seconds else None}
                for name, hyps in systems.items()}
        width = max(len(n) for n in rows)
        print(f"{len(bench)} benchmark clips, {len(train)} training clips; one thread, {cpu_line()}")
        print(f"{'system':<{width}}  BLEU-4  CIDEr-D  ms/clip (decode)")
        for name, r in rows.items():
            ms = f"{r['decode_ms_per_clip']:.1f}" if r["decode_ms_per_clip"] is not None else "-"
            print(f"{name:<{width}}  {r['bleu4']:.4f}  {r['cider_d']:.4f}   {ms}")
        print(f"embedding a clip (file, log-mel, audio tower): {1000 * embed_s:.1f} ms")
        if args.json:
            from clap_rt.checkpoints import atomic_write_bytes
            res = {"clips": len(bench), "train_clips": len(train), "cpu": cpu_line(), "threads": 1,
                   "embed_ms_per_clip": round(1000 * embed_s, 2), "systems": rows,
                   "captions": [{"path": r["path"], "references": r["captions"],
                                 **{name: hyps[i] for name, hyps in systems.items()}} for i, r in enumerate(bench)]}
            atomic_write_bytes(args.json, (json.dumps(res, indent=2) + "\n").encode())

    return run_program(PROG, run)


if __name__ == "__main__":
    sys.exit(main())
