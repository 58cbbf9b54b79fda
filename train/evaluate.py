"""Zero-shot classification and text<->audio retrieval scores, and a confusion-matrix plot.

The metric functions are pure functions of unit-norm embedding arrays, reusable by any recipe:

    zero_shot_scores(audio (N, D), class_text (C, D), targets (N,))     -> {"top1", "top5", "per_class"}
    retrieval_recalls(audio (N, D), text (M, D), text_owner (M,))      -> {"t2a_R@1", ..., "a2t_R@10"}

CLI: python -m train.evaluate --model DIR --manifest m.jsonl --split test --json out.json
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from clap_rt.errors import UserError, run_program
from clap_rt.pooling import pool_windows, selected_windows

PROG = "python -m train.evaluate"


# --- metrics on embeddings -------------------------------------------------------------------

def _rank_of(scores: np.ndarray, correct: np.ndarray) -> np.ndarray:
    """scores (N, C), correct (N,) column index -> 0-based rank of the correct column
    (how many columns score strictly higher; ties count in the model's favour)."""
    own = scores[np.arange(len(scores)), correct]
    return (scores > own[:, None]).sum(axis=1)


def zero_shot_scores(audio: np.ndarray, class_text: np.ndarray, targets: np.ndarray,
                     ks: Sequence[int] = (1, 5)) -> dict[str, float]:
    """Top-k accuracy (fraction) of classifying each audio row among the class text rows, and
    "per_class": the top-1 accuracy of each class present in `targets`, averaged over them."""
    targets = np.asarray(targets)
    ranks = _rank_of(audio @ class_text.T, targets)
    out = {f"top{k}": float(np.mean(ranks < k)) for k in ks}
    out["per_class"] = float(np.mean([np.mean(ranks[targets == c] < 1) for c in np.unique(targets)]))
    return out


def predictions(audio: np.ndarray, class_text: np.ndarray) -> np.ndarray:
    """(N,) index of the best class per audio row."""
    return np.argmax(audio @ class_text.T, axis=1)


def retrieval_recalls(audio: np.ndarray, text: np.ndarray, text_owner: np.ndarray,
                      ks: Sequence[int] = (1, 5, 10)) -> dict[str, float]:
    """Recall@k both ways. text_owner[j] is the audio row that caption j describes.

    text->audio: caption j is a hit if its audio is in its top k.
    audio->text: audio i is a hit if any of its captions is in its top k.
    """
    owner = np.asarray(text_owner)
    sims = text @ audio.T                                     # (M, N)
    t2a = _rank_of(sims, owner)                               # (M,)
    a2t_scores = sims.T                                       # (N, M)
    a2t = np.full(len(audio), np.iinfo(np.int64).max)
    for j, i in enumerate(owner):
        r = (a2t_scores[i] > a2t_scores[i, j]).sum()
        a2t[i] = min(a2t[i], r)
    out = {f"t2a_R@{k}": float(np.mean(t2a < k)) for k in ks}
    out.update({f"a2t_R@{k}": float(np.mean(a2t < k)) for k in ks})
    return out


def confusion_matrix(targets: np.ndarray, preds: np.ndarray, n_classes: int) -> np.ndarray:
    """(C, C) counts, row = true class, column = predicted class."""
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(cm, (np.asarray(targets), np.asarray(preds)), 1)
    return cm


def plot_confusion(cm: np.ndarray, labels: Sequence[str], path: str | Path, title: str = "") -> None:
    """Write the row-normalised confusion matrix as a PNG."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        raise RuntimeError("the confusion-matrix plot requires the matplotlib package (pip install matplotlib)") from e
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    size = max(4.0, 0.35 * len(labels) + 2)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=7)
    ax.set_yticks(range(len(labels)), labels, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# --- embedding with a model ------------------------------------------------------------------

@torch.no_grad()
def embed_clip_windows(model, features: Sequence[np.ndarray], batch_size: int = 64) -> np.ndarray:
    """Per clip (W, n_mels, T) dB windows -> (N, D) unit-norm clip embeddings, pooled as
    `clap-rt classify` pools them (`clap_rt.pooling.pool_windows`)."""
    device = next(model.parameters()).device
    chosen = [np.asarray(f, dtype=np.float32)[selected_windows(f)] for f in features]   # only these are encoded
    wins = np.concatenate(chosen)
    embs = [model.encode_audio(torch.from_numpy(wins[i:i + batch_size]).to(device)).float().cpu().numpy()
            for i in range(0, len(wins), batch_size)]
    e = np.split(np.concatenate(embs), np.cumsum([len(c) for c in chosen])[:-1])
    return np.stack([pool_windows(x, c, "mean") for x, c in zip(e, chosen)])


@torch.no_grad()
def embed_texts(model, tokenizer, texts: Sequence[str], batch_size: int = 256) -> np.ndarray:
    """Texts -> (M, D) unit-norm embeddings."""
    device = next(model.parameters()).device
    out = []
    for i in range(0, len(texts), batch_size):
        ids, mask = tokenizer(list(texts[i:i + batch_size]))
        out.append(model.encode_text(ids.to(device), mask.to(device)).float().cpu().numpy())
    return np.concatenate(out)


class ModelEncoder:
    """What `evaluate_clips` embeds with for a whole model: cached (W, n_mels, T) dB windows
    pooled as `clap-rt classify` pools them, and tokenized texts."""

    def __init__(self, model, tokenizer):
        self.module, self.tokenizer, self.config = model, tokenizer, model.config

    def audio(self, features: Sequence[np.ndarray]) -> np.ndarray:
        return embed_clip_windows(self.module, features)

    def text(self, texts: Sequence[str]) -> np.ndarray:
        return embed_texts(self.module, self.tokenizer, texts)


def class_embeddings(model, tokenizer, labels: Sequence[str], template: str | None = None) -> np.ndarray:
    """(C, D) unit-norm label embeddings as `Clap.label_embeddings` makes them: `template`, else
    the model's prompt template averaged with its prompt ensemble."""
    from clap_rt.zeroshot import prompt_templates, template_mean_embeddings
    return template_mean_embeddings(ModelEncoder(model, tokenizer).text, labels, prompt_templates(model.config, template))


def label_phrasings(clips, label: str) -> list[str]:
    """Three ways a user might type a label: the bare word and two of its clips' captions."""
    caps = sorted({c for clip in clips if clip.label == label for c in clip.captions})
    caps = [c for c in caps if c.lower() != label.lower()] or [label]
    return [label, caps[0], caps[len(caps) // 2]]


def evaluation_texts(clips, templates: Sequence[str]) -> set[str]:
    """Every text that `evaluate_clips` embeds for `clips`: prompts, captions, phrasings."""
    labels = {c.label for c in clips if c.label}
    texts = {u.format(x) for u in templates for x in labels}
    texts.update(c for clip in clips for c in clip.captions)
    texts.update(p for x in labels for p in label_phrasings(clips, x))
    return texts


def evaluate_clips(encoder, clips, features, template: str | None = None,
                   confusion_png: str | Path | None = None) -> dict:
    """All scores for `clips` (train.data.Clip) given their cached features, embedded by
    `encoder` (`ModelEncoder`, or train.prefix.PrefixEncoder): .audio(features) -> (N, D),
    .text(texts) -> (M, D), .module (put in eval mode meanwhile), .config.

    Retrieval uses every distinct caption of every clip. Zero-shot uses the clips that carry a
    `label` (classes = the distinct labels, prompts `template`, else the model's templates),
    and "phrasing_agreement" is how often three phrasings of each label (`label_phrasings`)
    give one clip the same top class.
    """
    from clap_rt.zeroshot import prompt_templates, template_mean_embeddings
    model = encoder.module
    was_training = model.training
    model.eval()
    try:
        audio = encoder.audio(features)
        caps = [list(dict.fromkeys(clip.captions)) for clip in clips]
        owner = np.repeat(np.arange(len(clips)), [len(c) for c in caps])
        out: dict = {"clips": len(clips), **retrieval_recalls(audio, encoder.text([c for cs in caps for c in cs]), owner)}
        labelled = [i for i, c in enumerate(clips) if c.label]
        if labelled:
            rows = [clips[i] for i in labelled]
            labels = sorted({c.label for c in rows})
            class_emb = template_mean_embeddings(encoder.text, labels, prompt_templates(encoder.config, template))
            targets = np.array([labels.index(c.label) for c in rows])
            out.update(classes=len(labels), **zero_shot_scores(audio[labelled], class_emb, targets))
            phrasings = [label_phrasings(rows, x) for x in labels]
            preds = [predictions(audio[labelled], encoder.text([p[j] for p in phrasings])) for j in range(3)]
            out["phrasing_agreement"] = float(np.mean((preds[0] == preds[1]) & (preds[1] == preds[2])))
            if confusion_png:
                cm = confusion_matrix(targets, predictions(audio[labelled], class_emb), len(labels))
                plot_confusion(cm, labels, confusion_png, title=f"zero-shot top-1 {out['top1']:.1%}")
                out["confusion_matrix"] = cm.tolist()
                out["labels"] = labels
    finally:
        model.train(was_training)
    return out


def format_table(scores: dict) -> str:
    rows = [(k, v) for k, v in scores.items() if isinstance(v, (int, float))]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v:.4f}" if isinstance(v, float) else f"{k:<{width}}  {v}"
                     for k, v in rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="clap_rt model folder")
    p.add_argument("--manifest", required=True, help="CSV or JSONL manifest")
    p.add_argument("--split", default="test", help="split to evaluate (default: test)")
    p.add_argument("--template", default=None, help="prompt template with {} (default: the model's)")
    p.add_argument("--cache-dir", default=None,
                   help="feature cache root (default: $CLAP_RT_CACHE/features, else ~/.cache/clap_rt/features)")
    p.add_argument("--json", default=None, help="write the scores here")
    p.add_argument("--confusion", default=None, help="write the confusion-matrix PNG here")
    args = p.parse_args(argv)

    def run() -> None:
        from clap_rt.checkpoints import load_model
        from .data import FeatureCache, read_manifest, select_split
        if args.template is not None and "{}" not in args.template:
            raise UserError(f"--template: expected a '{{}}' placeholder, got {args.template!r}")
        model, tokenizer = load_model(args.model)
        clips = select_split(read_manifest(args.manifest), args.split, args.manifest)
        cache = FeatureCache(model.config.frontend, args.cache_dir, short=model.config.short_clips)
        features = cache.load_all(clips, progress=True)
        scores = evaluate_clips(ModelEncoder(model, tokenizer), clips, features, args.template, args.confusion)
        print(format_table(scores))
        if args.json:
            Path(args.json).write_text(json.dumps(scores, indent=2))

    return run_program(PROG, run)


if __name__ == "__main__":
    sys.exit(main())
