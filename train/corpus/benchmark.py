"""The everyday zero-shot benchmark: which held-out clips it scores, balanced by rule.

Its clips come from whole packages kept out of training and recipe choice (the corpus's "test"
split, everyday packages only), in the families of EVERYDAY_FAMILIES. Variants of one sound that a
listener cannot name apart without seeing the scene are scored under one name (BENCHMARK_NAMES: a
door opening, closing or slamming is "door"). A label enters with at least MIN_CLIPS clips; then no label
family (animal, human, domestic, ...) may hold more than MAX_FAMILY_SHARE of the clips, so the
figure is not one family's: the largest label of an over-full family gives up clips (in a fixed
hash order), never below MIN_CLIPS, and a family that still does not fit loses its smallest
label.
"""
from __future__ import annotations

from collections import Counter, defaultdict

from .manifest import key_hash

MIN_CLIPS = 8
MAX_FAMILY_SHARE = 0.15
# Sounds of the world a detector listens to; game-interface blips and sci-fi effects ("signals",
# "synthetic") and speech stay out of the benchmark (they are trained on).
EVERYDAY_FAMILIES = ("animal", "nature", "human", "domestic", "urban", "tools", "weapons", "impacts", "music")


# benchmark name <- taxonomy labels scored under it; every name is itself a taxonomy label, so its
# prompt is the one a user types for it.
BENCHMARK_NAMES = {
    "dog": ("dog growl", "dog howl"),
    "cat": ("cat purring", "cat hiss"),
    "door": ("door open", "door close", "door slam", "door creak", "sliding door"),
    "explosion": ("distant explosion",),
    "gunshot": ("shotgun", "sniper rifle"),
    "car engine": ("engine start", "engine stop"),
    "siren": ("police siren",),
    "laughing": ("evil laugh",),
    "screaming": ("wilhelm scream",),
    "pain groan": ("death cry",),
    "fire": ("fire crackling", "torch"),
    "sword": ("sword fight",),
    "punch": ("flesh hit",),
}
_NAME_OF = {label: name for name, labels in BENCHMARK_NAMES.items() for label in labels}


def benchmark_name(label: str) -> str:
    """The name a taxonomy label is scored under in the benchmark (itself unless merged)."""
    return _NAME_OF.get(label, label)


def _over_full(rows: list[dict]) -> str | None:
    fam = Counter(r["family"] for r in rows)
    top, n = fam.most_common(1)[0]
    return top if n > MAX_FAMILY_SHARE * len(rows) else None


def everyday_benchmark(rows: list[dict], sources: set[str]) -> list[dict]:
    """The benchmark's rows among `rows` (test rows of `sources` with a "family" field), their
    "label" replaced by the benchmark name and the taxonomy's kept as "corpus_label"."""
    pool = [dict(r, label=benchmark_name(r["label"]), corpus_label=r["label"]) for r in rows
            if r["split"] == "test" and r["source"] in sources and r["family"] in EVERYDAY_FAMILIES]
    counts = Counter(r["label"] for r in pool)
    pool = sorted((r for r in pool if counts[r["label"]] >= MIN_CLIPS), key=lambda r: key_hash(r["path"]))
    while pool and (family := _over_full(pool)) is not None:
        by_label: dict[str, list[dict]] = defaultdict(list)
        for r in pool:
            if r["family"] == family:
                by_label[r["label"]].append(r)
        biggest = max(by_label, key=lambda lab: (len(by_label[lab]), lab))
        if len(by_label[biggest]) > MIN_CLIPS:
            drop = by_label[biggest][-1]["path"]
            pool = [r for r in pool if r["path"] != drop]
        else:
            smallest = min(by_label, key=lambda lab: (len(by_label[lab]), lab))
            pool = [r for r in pool if r["label"] != smallest]
    return sorted(pool, key=lambda r: (r["label"], r["path"]))


def describe(rows: list[dict]) -> dict:
    """{"clips", "labels", "families": {family: share}, "chance"} of a benchmark."""
    fam = Counter(r["family"] for r in rows)
    labels = {r["label"] for r in rows}
    return {"clips": len(rows), "labels": len(labels),
            "families": {f: round(n / len(rows), 3) for f, n in fam.most_common()},
            "chance": round(1 / max(len(labels), 1), 4)}
