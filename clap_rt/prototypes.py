"""How an enrolled label scores audio: its prototypes made into scoring vectors, mixed with text.

An enrolled label holds prototypes: the (P, D) unit-norm embeddings of its examples' sound
windows, each tagged with the example it came from. Its score for a unit-norm audio embedding
`a` is a cosine on the scale of a text label's `a . t`, so enrolled and text labels share one
softmax (and the open-set competition with the background prompts):

    score(a) = (1 - w) * max_k a . v_k + w * a . t        (w = 0 without a text description)

The scoring vectors v come from the prototypes by one of SCORINGS:

- "mean": one vector, the renormalised mean of the examples' mean embeddings (each example
  weighs the same however many windows it has);
- "nearest": every prototype; the nearest one scores;
- "logistic": one vector fitted to the label's open-set score: its prototypes should win the
  softmax against the background prompts, the background windows and the other labels'
  prototypes should lose it; started at, and held near, the "mean" vector.

bench/enrol.py measures them on the everyday benchmark (docs/enrol.md); DEFAULT_SCORING and
DEFAULT_TEXT_WEIGHT are what it chose.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

SCORINGS = ("mean", "nearest", "logistic")
DEFAULT_SCORING = "logistic"
DEFAULT_TEXT_WEIGHT = 0.5
# The logistic vector's pull back to the mean vector (squared distance), against overfitting a
# few examples; iterations of L-BFGS, enough for the loss to settle on the benchmark's labels.
LOGISTIC_L2 = 1.0
LOGISTIC_STEPS = 40


@dataclass
class FitContext:
    """What a "logistic" vector is fitted against (the other scorings ignore it).

    negatives: (N, D) embeddings that are not the label (background windows, other labels'
    prototypes); prompts: (G, D) the background prompts' text embeddings; logit_scale: the
    model's; text: (D,) the label's description embedding or None, mixed in with `text_weight`.
    """
    negatives: np.ndarray
    prompts: np.ndarray
    logit_scale: float
    text: Optional[np.ndarray] = None
    text_weight: float = 0.0


def unit(v: np.ndarray) -> np.ndarray:
    """Rows (or a vector) scaled to unit norm."""
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)


def mean_vector(prototypes: np.ndarray, example_ids: np.ndarray) -> np.ndarray:
    """(P, D) prototypes and their (P,) example ids -> (D,) unit mean of the examples' means."""
    means = [unit(prototypes[example_ids == e].mean(axis=0)) for e in np.unique(example_ids)]
    return unit(np.mean(means, axis=0)).astype(np.float32)


def scoring_vectors(scoring: str, prototypes: np.ndarray, example_ids: np.ndarray,
                    context: Optional[FitContext] = None) -> np.ndarray:
    """The label's (K, D) float32 scoring vectors (see the module); `context` for "logistic"."""
    if scoring not in SCORINGS:
        raise ValueError(f"scoring: expected one of {', '.join(SCORINGS)}, got {scoring!r}")
    if scoring == "nearest":
        return np.asarray(prototypes, np.float32).copy()
    mean = mean_vector(prototypes, example_ids)
    if scoring == "mean":
        return mean[None]
    if context is None:
        raise ValueError("scoring 'logistic': expected a FitContext (negatives and prompts)")
    return fit_logistic(prototypes, mean, context)[None]


def fit_logistic(positives: np.ndarray, start: np.ndarray, c: FitContext) -> np.ndarray:
    """(P, D) positives, (D,) start vector -> (D,) unit float32 vector maximising the label's
    open-set log-likelihood: its softmax share among [label, background prompts] should be 1 on
    the positives and 0 on `c.negatives`, plus LOGISTIC_L2 * |v - start|^2."""
    import torch
    x = torch.from_numpy(np.concatenate([positives, c.negatives]).astype(np.float64))
    y = torch.cat([torch.ones(len(positives)), torch.zeros(len(c.negatives))]).double()
    weight = torch.cat([torch.full((len(positives),), 0.5 / len(positives)),
                        torch.full((len(c.negatives),), 0.5 / max(1, len(c.negatives)))]).double()
    scale, w = float(c.logit_scale), float(c.text_weight if c.text is not None else 0.0)
    text_part = (x @ torch.from_numpy(c.text.astype(np.float64)) if c.text is not None
                 else torch.zeros(len(x), dtype=torch.float64))
    prompt_logits = scale * x @ torch.from_numpy(c.prompts.astype(np.float64)).T       # (N, G)
    prompt_lse = torch.logsumexp(prompt_logits, dim=1)
    v0 = torch.from_numpy(start.astype(np.float64))
    v = v0.clone().requires_grad_(True)
    opt = torch.optim.LBFGS([v], max_iter=LOGISTIC_STEPS, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        vn = v / v.norm()
        label = scale * ((1 - w) * (x @ vn) + w * text_part)
        # log p(label) - log p(background) = label logit - logsumexp(prompt logits): a logistic
        # on that margin is the open-set share, as `detect.open_set_scores` computes it.
        margin = label - prompt_lse
        loss = (weight * torch.nn.functional.binary_cross_entropy_with_logits(margin, y, reduction="none")).sum()
        loss = loss + LOGISTIC_L2 * ((vn - v0) ** 2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return unit(v.detach().numpy()).astype(np.float32)


def label_scores(audio: np.ndarray, vectors: np.ndarray, text: Optional[np.ndarray] = None,
                 text_weight: float = 0.0) -> np.ndarray:
    """(N, D) audio embeddings -> (N,) one enrolled label's scores (the formula of the module)."""
    s = (audio @ vectors.T).max(axis=1)
    if text is None or text_weight == 0:
        return s
    return (1 - text_weight) * s + text_weight * (audio @ text)
