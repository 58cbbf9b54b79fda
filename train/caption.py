"""Train a small captioner for a model folder on a corpus's captions; the model stays frozen.

    python -m train.caption --manifest ~/.cache/clap_rt/corpus/manifest.jsonl [--model DIR]

Each clip is embedded once by the model (its loudest window, as `Clap.embed_audio`) and the
embeddings are cached under `$CLAP_RT_CACHE/caption/<model fingerprint>.npz`; training then
only runs the captioner: a GPT2-architecture decoder over the GPT2 BPE tokens of the training
captions, and a transformer mapper (msclap clapcap's, smaller). Clips of the validation
packages (`corpus.sfx.EVERYDAY_VAL`) choose the step kept (greedy CIDEr-D); the benchmark's
clips (`benchmark.jsonl` beside the manifest) are never read here. The captioner is written
into the model folder (`captioner.safetensors`, float16, + `captioner.json`).
"""
from __future__ import annotations

import argparse
import copy
import io
import json
import math
import sys
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from clap_rt.cache import cache_dir
from clap_rt.checkpoints import atomic_write_bytes
from clap_rt.errors import UserError, run_program

PROG = "python -m train.caption"
STOP_TOKEN = 50256                    # GPT2's <|endoftext|> ends every training caption
BENCHMARK_FILE = "benchmark.jsonl"


# --- data ----------------------------------------------------------------------------------

def caption_splits(manifest: str | Path) -> dict[str, list[dict]]:
    """A corpus manifest -> {"train", "val", "benchmark"}: rows of the training split outside
    the validation packages; rows of the validation packages; the rows of the benchmark's clips
    (listed in benchmark.jsonl beside the manifest), whose captions are the references."""
    from .corpus import load_manifest
    from .corpus.sfx import EVERYDAY_VAL
    from .data import read_rows
    manifest = Path(manifest)
    rows = load_manifest(manifest)
    bench_file = manifest.parent / BENCHMARK_FILE
    if not bench_file.is_file():
        raise UserError(f"{bench_file}: not found; expected the benchmark's clips beside the manifest")
    bench = {row["path"] for _, row in read_rows(bench_file)}
    val = set(EVERYDAY_VAL)
    return {"train": [r for r in rows if r["split"] == "train" and r["source"] not in val and r["path"] not in bench],
            "val": [r for r in rows if r["source"] in val and r["path"] not in bench],
            "benchmark": [r for r in rows if r["path"] in bench]}


def clip_embeddings(clap, rows: Sequence[dict], root: Path, progress: bool = False) -> np.ndarray:
    """(N, D) embeddings of the rows' clips (paths relative to `root`), cached per model."""
    where = cache_dir() / "caption" / f"{clap.model_id}.npz"
    cached: dict[str, np.ndarray] = {}
    if where.is_file():
        with np.load(where) as z:
            cached = dict(zip(z["paths"].tolist(), z["embeddings"]))
    missing = [r["path"] for r in rows if r["path"] not in cached]
    t0 = time.perf_counter()
    for i, path in enumerate(missing):
        cached[path] = clap.embed_audio([root / path])[0]
        if progress and (i + 1) % 250 == 0:
            print(f"embedded {i + 1}/{len(missing)} clips ({time.perf_counter() - t0:.0f} s)", flush=True)
    if missing:
        where.parent.mkdir(parents=True, exist_ok=True)
        buf = io.BytesIO()
        paths = sorted(cached)
        np.savez(buf, paths=np.array(paths), embeddings=np.stack([cached[p] for p in paths]))
        atomic_write_bytes(where, buf.getvalue())
    return np.stack([cached[r["path"]] for r in rows]).astype(np.float32)


def vocabulary(captions: Sequence[str]) -> list[int]:
    """Sorted GPT2 ids of every token in `captions`, and the stop token."""
    from clap_rt.caption import caption_token_ids
    return sorted({t for ids in caption_token_ids(captions) for t in ids} | {STOP_TOKEN})


def encode(captions: Sequence[str], vocab: Sequence[int], max_tokens: int) -> list[list[int]]:
    """Captions -> decoder indices, the stop token appended, cut to `max_tokens`."""
    from clap_rt.caption import caption_token_ids
    index = {t: i for i, t in enumerate(vocab)}
    return [[index[t] for t in ids][:max_tokens - 1] + [index[STOP_TOKEN]] for ids in caption_token_ids(captions)]


def batch_tokens(seqs: Sequence[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Sequences -> (B, L) right-padded indices and (B, L) bool mask of real tokens."""
    n = max(len(s) for s in seqs)
    tokens = torch.zeros(len(seqs), n, dtype=torch.long)
    mask = torch.zeros(len(seqs), n, dtype=torch.bool)
    for i, s in enumerate(seqs):
        tokens[i, :len(s)] = torch.tensor(s)
        mask[i, :len(s)] = True
    return tokens, mask


# --- the captioner -------------------------------------------------------------------------

def small_config(embed_dim: int, vocab_size: int, args) -> "CaptionerConfig":
    from clap_rt.caption import CaptionerConfig, MapperConfig
    p = args.prefix_length
    return CaptionerConfig(
        name="clap-rt-small-captioner", embed_dim=embed_dim, normalize_prefix=True,
        mapper=MapperConfig(kind="transformer", prefix_length=p, clip_length=p, num_layers=args.mapper_layers,
                            num_heads=8, mlp_ratio=2.0),
        decoder=dict(vocab_size=vocab_size, n_positions=p + args.max_tokens, n_embd=args.width,
                     n_layer=args.layers, n_head=args.heads, n_inner=4 * args.width,
                     resid_pdrop=args.dropout, embd_pdrop=args.dropout, attn_pdrop=args.dropout),
        stop_token=STOP_TOKEN, max_tokens=args.max_tokens)


def greedy_cider(captioner, emb: np.ndarray, refs: Sequence[Sequence[str]]) -> float:
    from .caption_metrics import cider_d
    was = captioner.training
    captioner.eval()
    hyps = [c for i in range(0, len(emb), 64) for c in captioner.caption(emb[i:i + 64])]
    captioner.train(was)
    return cider_d(hyps, refs)


def train_captioner(train_emb: np.ndarray, train_caps: Sequence[Sequence[str]], val_emb: np.ndarray,
                    val_refs: Sequence[Sequence[str]], args, log=print):
    """Embeddings (N, D) with their captions -> (the captioner of the best validation step, log)."""
    from clap_rt.caption import Captioner
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    vocab = vocabulary([c for caps in train_caps for c in caps])
    captioner = Captioner(small_config(train_emb.shape[1], len(vocab), args))
    captioner.vocab = torch.tensor(vocab, dtype=torch.long)
    owner = np.array([i for i, caps in enumerate(train_caps) for _ in caps])
    seqs = encode([c for caps in train_caps for c in caps], vocab, args.max_tokens)
    emb = torch.from_numpy(train_emb)
    opt = torch.optim.AdamW(captioner.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    warmup = min(200, args.steps // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / warmup if s < warmup else 0.5 * (1 + math.cos(math.pi * (s - warmup) / (args.steps - warmup))))
    best, best_state, history = -1.0, None, []
    t0 = time.perf_counter()
    captioner.train()
    for step in range(1, args.steps + 1):
        pick = rng.integers(0, len(seqs), args.batch)
        tokens, mask = batch_tokens([seqs[i] for i in pick])
        x = emb[owner[pick]]
        if args.noise > 0:
            # noise on the unit-norm embedding: held-out packages' embeddings sit off the
            # training points; the mapper normalises again
            x = F.normalize(x, dim=-1) + args.noise * torch.randn(x.shape)
        logits = captioner(x, tokens)                                        # (B, L, V)
        loss = F.cross_entropy(logits[mask], tokens[mask])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(captioner.parameters(), 1.0)
        opt.step()
        sched.step()
        if step % args.eval_every == 0 or step == args.steps:
            score = greedy_cider(captioner, val_emb, val_refs)
            history.append({"step": step, "loss": round(loss.item(), 4), "val_cider_d": round(score, 4),
                            "seconds": round(time.perf_counter() - t0, 1)})
            log(f"step {step}  loss {loss.item():.3f}  val CIDEr-D {score:.3f}  ({time.perf_counter() - t0:.0f} s)")
            if score > best:
                best, best_state = score, copy.deepcopy(captioner.state_dict())
    captioner.load_state_dict(best_state)
    return captioner.eval(), history


# --- command line --------------------------------------------------------------------------

def parse_args(argv):
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    p.add_argument("--manifest", required=True, help="the corpus's manifest.jsonl (benchmark.jsonl beside it)")
    p.add_argument("--model", default=None, help="model folder the captioner is trained for and written into "
                                                 "(default: the bundled model)")
    p.add_argument("--steps", type=int, default=6000)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--dropout", type=float, default=0.1)
    p.add_argument("--noise", type=float, default=0.01, help="std of Gaussian noise per embedding dimension")
    p.add_argument("--width", type=int, default=192, help="decoder and mapper width")
    p.add_argument("--layers", type=int, default=4, help="decoder layers")
    p.add_argument("--heads", type=int, default=4, help="decoder heads")
    p.add_argument("--mapper-layers", type=int, default=2)
    p.add_argument("--prefix-length", type=int, default=8)
    p.add_argument("--max-tokens", type=int, default=24)
    p.add_argument("--eval-every", type=int, default=500)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--dry-run", action="store_true", help="train and report, write nothing into the model folder")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    def run() -> None:
        from clap_rt import Clap
        from clap_rt.caption import save_captioner
        from clap_rt.checkpoints import DEFAULT_MODEL_DIR
        if args.steps < 1 or args.batch < 1 or args.eval_every < 1:
            raise UserError("--steps, --batch, --eval-every: expected integers >= 1")
        torch.set_num_threads(args.threads)
        model_dir = Path(args.model) if args.model else DEFAULT_MODEL_DIR
        clap = Clap.load(model_dir, backend="torch", threads=args.threads)
        splits = caption_splits(args.manifest)
        root = Path(args.manifest).parent
        print(f"clips: train {len(splits['train'])}, validation {len(splits['val'])} "
              f"(benchmark {len(splits['benchmark'])} not read)", flush=True)
        train_emb = clip_embeddings(clap, splits["train"], root, progress=True)
        val_emb = clip_embeddings(clap, splits["val"], root, progress=True)
        t0 = time.perf_counter()
        captioner, history = train_captioner(
            train_emb, [r["captions"] for r in splits["train"]], val_emb, [r["captions"] for r in splits["val"]],
            args, log=lambda s: print(s, flush=True))
        n_params = sum(p.numel() for p in captioner.parameters())
        best = max(history, key=lambda h: h["val_cider_d"])
        meta = {"trained_on": str(args.manifest), "train_clips": len(splits["train"]),
                "validation_clips": len(splits["val"]), "best_step": best["step"],
                "val_cider_d": best["val_cider_d"], "train_seconds": round(time.perf_counter() - t0, 1),
                "threads": args.threads, "args": {k: v for k, v in vars(args).items() if k != "dry_run"},
                "history": history}
        print(f"captioner: {n_params:,} parameters, best step {best['step']} (val CIDEr-D {best['val_cider_d']:.3f})")
        if not args.dry_run:
            save_captioner(captioner, model_dir, clap.model_id, meta=meta, dtype=torch.float16)
            print(f"wrote {model_dir / 'captioner.safetensors'}")
        else:
            print(json.dumps(meta["history"]))

    return run_program(PROG, run)


if __name__ == "__main__":
    sys.exit(main())
