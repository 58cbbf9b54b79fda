"""Recipe of the shipped default model `clap-rt-small`, sized for a 2-core CPU.

    python -m train.default_model features  CORPUS_DIR      # cache tower outputs (resumable)
    python -m train.default_model fit       CORPUS_DIR -o clap_rt/models/default

The audio tower is the pretrained aisfx CNN, the text tower the pretrained MiniLM. Both are
frozen in the shipped model: their pooled outputs are computed once per clip window / caption
and cached (outside the repo), and only the two projections and the temperature are trained,
which takes minutes instead of the days a full fine-tune would take on this CPU. With
`--text-layers N` the last N MiniLM layers are trained too (on cached token states of the
layers below), to measure a trained text tower against the frozen one.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from clap_rt.audio import fit_windows, load_audio
from clap_rt.checkpoints import atomic_write_bytes, pretrained_text_state, save_model
from clap_rt.config import small_default
from clap_rt.frontend import log_mel
from clap_rt.model import CLAP
from clap_rt.tokenizer import TextTokenizer
from clap_rt.checkpoints import pretrained_tokenizer_dir
from train.corpus import load_manifest
from train.pretrained import AISFX_ATTRIBUTION, load_aisfx_state

CACHE = Path(os.environ.get("CLAP_RT_CACHE", Path.home() / ".cache" / "clap_rt")) / "default_model"
MAX_WINDOWS = 3          # windows cached per clip: start, middle, end (deterministic)


def base_model() -> CLAP:
    """The default architecture with pretrained aisfx audio weights and MiniLM text weights."""
    model = CLAP(small_default())
    model.audio.load_state_dict(load_aisfx_state(), strict=True)
    text = {k[len("text.body."):]: v for k, v in pretrained_text_state(model.config).items()}
    model.text.body.load_state_dict(text, strict=True)
    return model.eval()


def clip_windows(audio: np.ndarray, window: int) -> np.ndarray:
    """At most MAX_WINDOWS windows of a clip, evenly spread (first and last included)."""
    wins = fit_windows(audio, window, hop=window // 2)
    if len(wins) <= MAX_WINDOWS:
        return wins
    idx = np.linspace(0, len(wins) - 1, MAX_WINDOWS).round().astype(int)
    return wins[idx]


def _save_npz(path: Path, **arrays) -> None:
    import io
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())


def cache_audio_features(corpus: Path, rows: list[dict], model: CLAP, shard: int = 256) -> dict[str, np.ndarray]:
    """Pooled aisfx outputs (W, 512) per clip path, computed in resumable shards.

    Shards are cut per source so that a corpus still growing source by source keeps the
    shards already computed.
    """
    fe = model.config.frontend
    out_dir = CACHE / "audio"
    out_dir.mkdir(parents=True, exist_ok=True)
    by_source: dict[str, set] = {}
    for r in rows:
        by_source.setdefault(r["source"], set()).add(r["path"])
    chunks = [sorted(ps)[s:s + shard] for _, ps in sorted(by_source.items()) for s in range(0, len(ps), shard)]
    total, done, t0 = sum(map(len, chunks)), 0, time.time()
    feats: dict[str, np.ndarray] = {}
    for chunk in chunks:
        key = hashlib.sha1("\n".join(chunk).encode()).hexdigest()[:16]
        f = out_dir / f"{key}.npz"
        done += len(chunk)
        if not f.exists():
            wins, owner = [], []
            for i, p in enumerate(chunk):
                w = clip_windows(load_audio(corpus / p, fe.sample_rate), fe.clip_samples)
                wins.append(w)
                owner += [i] * len(w)
            wins = np.concatenate(wins)
            embs = []
            with torch.inference_mode():
                for b in range(0, len(wins), 32):
                    embs.append(model.audio(torch.from_numpy(log_mel(wins[b:b + 32], fe))).numpy())
            _save_npz(f, paths=np.array(chunk), owner=np.array(owner), feats=np.concatenate(embs))
            print(f"audio features {done}/{total} clips ({time.time() - t0:.0f} s)", file=sys.stderr, flush=True)
        with np.load(f) as z:
            for i, p in enumerate(z["paths"]):
                feats[str(p)] = z["feats"][z["owner"] == i]
    return feats


def cache_text_features(texts: list[str], model: CLAP, tokenizer: TextTokenizer) -> dict[str, np.ndarray]:
    """Pooled frozen MiniLM outputs (384,) per text, cached by text."""
    f = CACHE / "text.npz"
    have: dict[str, np.ndarray] = {}
    if f.exists():
        with np.load(f) as z:
            have = dict(zip(map(str, z["texts"]), z["feats"]))
    todo = sorted(set(texts) - set(have))
    if todo:
        with torch.inference_mode():
            for b in range(0, len(todo), 256):
                ids, mask = tokenizer(todo[b:b + 256])
                for t, e in zip(todo[b:b + 256], model.text(ids, mask).numpy()):
                    have[t] = e
        keys = sorted(have)
        _save_npz(f, texts=np.array(keys), feats=np.stack([have[k] for k in keys]))
    return have


def label_prompts(label: str, template: str) -> list[str]:
    return [template.format(label)]


def evaluate(model: CLAP, rows: list[dict], audio: dict, text: dict) -> dict:
    """Zero-shot top-1/top-5 over the labels of `rows`, text->audio R@1/5/10 with captions,
    and how often different phrasings of the labels agree on the top class."""
    from train.evaluate import retrieval_recall, zero_shot_accuracy
    labels = sorted({r["label"] for r in rows})
    template = model.config.prompt_template
    with torch.no_grad():
        a = F.normalize(model.audio_projection(torch.from_numpy(
            np.stack([audio[r["path"]].mean(0) for r in rows]))), dim=-1).numpy()
        proj_t = lambda ts: F.normalize(model.text_projection(torch.from_numpy(  # noqa: E731
            np.stack([text[t] for t in ts]))), dim=-1).numpy()
        lab = proj_t([template.format(x) for x in labels])
        caps = proj_t([r["caption"] for r in rows])
    y = np.array([labels.index(r["label"]) for r in rows])
    top1, top5 = zero_shot_accuracy(a, lab, y)
    r = retrieval_recall(caps, a, ks=(1, 5, 10))
    return {"labels": len(labels), "clips": len(rows), "top1": top1, "top5": top5,
            **{f"text_to_audio_R@{k}": v for k, v in r.items()}}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m train.default_model", description=__doc__.split("\n")[0])
    p.add_argument("stage", choices=["features", "fit"])
    p.add_argument("corpus", type=Path, help="a corpus folder built by `python -m train.corpus build`")
    p.add_argument("-o", "--output", type=Path, default=None, help="model folder to write (fit)")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = load_manifest(args.corpus / "manifest.jsonl")
    model = base_model()
    audio = cache_audio_features(args.corpus, rows, model)
    if args.stage == "features":
        return 0
    raise SystemExit("fit: not yet")


if __name__ == "__main__":
    sys.exit(main())
