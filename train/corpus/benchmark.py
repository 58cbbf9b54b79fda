"""The everyday zero-shot benchmark: which held-out clips it scores, balanced by rule.

Its clips come from whole packages kept out of training and recipe choice (the corpus's "test"
split, everyday packages only), in the families of EVERYDAY_FAMILIES. A label enters with at least MIN_CLIPS clips; then no label
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


def _over_full(rows: list[dict]) -> str | None:
    fam = Counter(r["family"] for r in rows)
    top, n = fam.most_common(1)[0]
    return top if n > MAX_FAMILY_SHARE * len(rows) else None


def everyday_benchmark(rows: list[dict], sources: set[str]) -> list[dict]:
    """The benchmark's rows among `rows` (test rows of `sources` with a "family" field)."""
    pool = [r for r in rows if r["split"] == "test" and r["source"] in sources and r["family"] in EVERYDAY_FAMILIES]
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
