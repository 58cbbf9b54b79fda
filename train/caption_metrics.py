"""Caption metrics in pure Python: corpus BLEU-4 and CIDEr-D, as the COCO caption evaluation
computes them (its tokenisation reduced to lowercase words without punctuation).

BLEU-4 (Papineni et al. 2002): clipped n-gram precisions p_1..p_4 pooled over the corpus,
their geometric mean times the brevity penalty exp(1 - r/c) when the hypotheses' total length c
is below r, the sum of the reference lengths closest to each hypothesis.

CIDEr-D (Vedantam et al. 2015): per n = 1..4, TF-IDF vectors of n-gram counts (document
frequency over the reference sets of the evaluated clips); the cosine of hypothesis and each
reference, with the hypothesis counts clipped at the reference's, times a Gaussian penalty
exp(-(len_h - len_r)^2 / (2 sigma^2)); averaged over references and n, times 10.
"""
from __future__ import annotations

import math
import re
from collections import Counter
from typing import Sequence

MAX_N = 4
CIDER_SIGMA = 6.0
CIDER_SCALE = 10.0
_WORD = re.compile(r"[a-z0-9']+")


def words(text: str) -> list[str]:
    """Lowercase words; punctuation is dropped ("a dog, barking." -> ["a", "dog", "barking"])."""
    return _WORD.findall(text.lower())


def ngrams(tokens: Sequence[str], n: int) -> Counter:
    return Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))


def bleu(hyps: Sequence[str], refs: Sequence[Sequence[str]], max_n: int = MAX_N) -> float:
    """Corpus BLEU-`max_n` of hypotheses `hyps[i]` against reference sets `refs[i]`, in [0, 1]."""
    _check(hyps, refs)
    matches, totals = [0] * max_n, [0] * max_n
    hyp_len = ref_len = 0
    for hyp, rs in zip(hyps, refs):
        h = words(hyp)
        r_toks = [words(r) for r in rs]
        hyp_len += len(h)
        # closest reference length; a tie goes to the shorter
        ref_len += min((abs(len(r) - len(h)), len(r)) for r in r_toks)[1]
        for n in range(1, max_n + 1):
            counts = ngrams(h, n)
            most: Counter = Counter()
            for r in r_toks:
                most |= ngrams(r, n)                       # per n-gram, the max count in one reference
            matches[n - 1] += sum(min(c, most[g]) for g, c in counts.items())
            totals[n - 1] += max(len(h) - n + 1, 0)
    if hyp_len == 0 or any(m == 0 for m in matches):
        return 0.0
    log_p = sum(math.log(m / t) for m, t in zip(matches, totals)) / max_n
    brevity = 1.0 if hyp_len >= ref_len else math.exp(1 - ref_len / hyp_len)
    return brevity * math.exp(log_p)


def cider_d(hyps: Sequence[str], refs: Sequence[Sequence[str]], sigma: float = CIDER_SIGMA) -> float:
    """Corpus CIDEr-D (mean over clips) of `hyps[i]` against reference sets `refs[i]`."""
    _check(hyps, refs)
    ref_grams = [[[ngrams(words(r), n) for n in range(1, MAX_N + 1)] for r in rs] for rs in refs]
    df: Counter = Counter()
    for clip in ref_grams:
        df.update({g for r in clip for counts in r for g in counts})   # once per clip
    log_n = math.log(len(refs))

    def vector(grams: list[Counter]) -> tuple[list[dict], list[float]]:
        vec = [{g: c * (log_n - math.log(max(1.0, df[g]))) for g, c in counts.items()} for counts in grams]
        return vec, [math.sqrt(sum(v * v for v in d.values())) for d in vec]

    total = 0.0
    for hyp, clip in zip(hyps, ref_grams):
        h_grams = [ngrams(words(hyp), n) for n in range(1, MAX_N + 1)]
        h_vec, h_norm = vector(h_grams)
        h_len = sum(h_grams[0].values())
        score = 0.0
        for r in clip:
            r_vec, r_norm = vector(r)
            penalty = math.exp(-((h_len - sum(r[0].values())) ** 2) / (2 * sigma ** 2))
            for n in range(MAX_N):
                if h_norm[n] == 0 or r_norm[n] == 0:
                    continue
                dot = sum(min(v, r_vec[n].get(g, 0.0)) * r_vec[n].get(g, 0.0) for g, v in h_vec[n].items())
                score += penalty * dot / (h_norm[n] * r_norm[n])
        total += CIDER_SCALE * score / (MAX_N * len(clip))
    return total / len(hyps)


def _check(hyps: Sequence[str], refs: Sequence[Sequence[str]]) -> None:
    if len(hyps) != len(refs) or not hyps:
        raise ValueError(f"expected one reference set per hypothesis, got {len(hyps)} and {len(refs)}")
    if any(not rs for rs in refs):
        raise ValueError("every hypothesis needs at least one reference")
