"""Labels by example on the everyday benchmark: per-class accuracy with k enrolled examples per
label against text labels alone, the enrolment time and the added cost per hop of a pack.

    python -m bench.enrol [--model DIR] [--manifest ~/.cache/clap_rt/corpus/benchmark.jsonl] \
        [--shots 1,3,5] [--draws 5] [--scorings mean,nearest,logistic] [--text-weights 0,0.3,0.5]

Accuracy: every clip is classified among all the benchmark's labels in one softmax, from the
embedding of its loudest window (as `clap-rt classify` does). Per draw and label, whole items
(the clips cut from one source file) are drawn in random order until they hold k clips, k of
those clips are enrolled (`enrol.add_examples` + `enrol.fit_pack`: their sound windows, the
label's name as text at the text weight), and only the clips of the other items are scored,
so no scored clip, nor a clip cut from the same recording, is an example or a negative of any
label; the text labels are scored on the same clips. A label with no item left to score in a
draw is left out of that draw. Per-class accuracy is the mean over labels of each label's
share of correct clips; mean and standard deviation over the draws.
Groups: the labels text alone gets wrong (per-class < 50% on all clips) and the others; for
the first their mean accuracy with 3 examples, for the second the largest drop (points) from
their text accuracy on the same clips. "mixed" enrols only the first group (3 examples + name),
the others stay text labels, in the same softmax.
Timing (one thread): `Clap.enrol` of 5 clips (decoding, windows, default background, fitted
thresholds); and `ClapStream.score_mel` per hop with the benchmark's text labels alone and with
a 100-label pack beside them (5 clips per label), timed window by window in the same run.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

# One-thread figures: numpy's BLAS (the label scores) too, not only the engine (--threads).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402  (after the BLAS thread count it reads at import)

from bench.report import cpu_line
from bench.stream import whole_items
from clap_rt.cache import cache_dir
from clap_rt.errors import UserError, run_program

PROG = "python -m bench.enrol"
DEFAULT_MANIFEST = cache_dir() / "corpus" / "benchmark.jsonl"
TEXT_WRONG = 0.5          # per-class text accuracy below this: a label the text gets wrong


def read_benchmark(manifest: Path) -> list[dict]:
    """[{"path", "label", "item"}] of the benchmark manifest (item: the source recording; the
    path when the row has none)."""
    from train.data import read_manifest, read_rows
    if not manifest.exists():
        raise UserError(f"--manifest {manifest}: not found; build the corpus first (python -m train.corpus)")
    clips = read_manifest(manifest)
    rows = [r for _, r in read_rows(manifest)]
    out = [{"path": c.path, "label": c.label, "item": r.get("item") or c.path} for c, r in zip(clips, rows)]
    if any(not r["label"] for r in out):
        raise UserError(f"--manifest {manifest}: every row needs a label")
    return out


def embed_clips(clap, rows: list[dict]) -> list[dict]:
    """Each clip's window embeddings once: its sound windows (enrolment) and loudest (scoring)."""
    from clap_rt.audio import fit_windows, load_audio
    from clap_rt.frontend import log_mel
    from clap_rt.pooling import selected_windows, sound_windows
    out = []
    for r in rows:
        wins = fit_windows(load_audio(r["path"], clap.sample_rate), clap.frontend.clip_samples,
                           short=clap.config.short_clips)
        mel = log_mel(wins, clap.frontend)
        emb = clap.embed_mel_batches(mel)
        out.append(dict(r, sound=emb[sound_windows(mel)], loudest=emb[selected_windows(mel, "loudest")[0]]))
    return out


def draw_split(clips: list[dict], label: str, k: int, rng: np.random.Generator,
               exclude: str = "item") -> tuple[list[int], list[int]]:
    """(example indices, scored indices) of one label for one draw: whole items in random order
    until they hold k clips; k of their clips enrolled; the clips of the other items scored.
    exclude="clip": k clips at random enrolled, all the others scored."""
    idx = [i for i, c in enumerate(clips) if c["label"] == label]
    if exclude == "clip":
        examples = sorted(rng.choice(idx, size=min(k, len(idx) - 1), replace=False).tolist())
        return examples, [i for i in idx if i not in examples]
    taken, pool = whole_items(idx, lambda i: clips[i]["item"], k, rng)
    examples = sorted(rng.choice(pool, size=min(k, len(pool)), replace=False).tolist())
    return examples, [i for i in idx if clips[i]["item"] not in taken]


def make_pack(clap, clips, examples: dict, scoring: str, weight: float, background, text_emb: dict):
    """A LabelPack of the labels in `examples` ({label: [clip indices]}), fitted, no thresholds."""
    from clap_rt.enrol import add_examples, fit_pack
    from clap_rt.labelpack import LabelPack
    pack = LabelPack(clap.config.name, clap.model_id, scoring, background, "default", list(_prompts()))
    for label, idx in examples.items():
        add_examples(pack, label, [clips[i]["sound"] for i in idx], [{} for _ in idx],
                     text=label if weight > 0 else None, text_embedding=text_emb[label], text_weight=weight)
    fit_pack(pack, clap, thresholds=False)
    return pack


def _prompts():
    from clap_rt.detect import DEFAULT_BACKGROUND
    return DEFAULT_BACKGROUND


def per_class(clap, labelset, clips, scored: dict) -> dict:
    """{label: share of its scored clips classified as it} in one softmax over `labelset`."""
    names = labelset.names
    order = [i for idx in scored.values() for i in idx]
    if not order:
        return {}
    pred = labelset.scorer(clap)(np.stack([clips[i]["loudest"] for i in order])).argmax(axis=1)
    got = dict(zip(order, (names[p] for p in pred)))
    return {label: float(np.mean([got[i] == label for i in idx])) for label, idx in scored.items() if idx}


def accuracy(clap, clips, labels, args, background, text_emb, text_all: dict) -> dict:
    """Per condition and shots: per-class accuracy over draws, and the targets' figures."""
    from clap_rt.labelset import LabelSet
    wrong = [lab for lab in labels if text_all[lab] < TEXT_WRONG]
    right = [lab for lab in labels if lab not in wrong]
    conditions = [(s, w) for s in args.scorings for w in args.text_weights]
    res: dict = {}
    for k in args.shots:
        for d in range(args.draws):
            rng = np.random.default_rng([args.seed, k, d])
            split = {lab: draw_split(clips, lab, k, rng, args.exclude) for lab in labels}
            examples = {lab: e for lab, (e, _) in split.items()}
            scored = {lab: s for lab, (_, s) in split.items()}
            text = per_class(clap, LabelSet(labels), clips, scored)
            runs = {f"{s} w={w}": LabelSet([make_pack(clap, clips, examples, s, w, background, text_emb)])
                    for s, w in conditions}
            if k == 3:
                for s, w in conditions:
                    pack = make_pack(clap, clips, {lab: examples[lab] for lab in wrong}, s, w, background, text_emb)
                    runs[f"mixed {s} w={w}"] = LabelSet([*right, pack])
            for name, ls in {"text": LabelSet(labels), **runs}.items():
                acc = text if name == "text" else per_class(clap, ls, clips, scored)
                res.setdefault(name, {}).setdefault(k, []).append({"acc": acc, "text": text})
    return summarise(res, wrong, right)


def summarise(res: dict, wrong: list, right: list) -> dict:
    out = {}
    for name, by_k in res.items():
        out[name] = {}
        for k, draws in by_k.items():
            macro = [np.mean(list(d["acc"].values())) for d in draws]
            lab_acc = {lab: np.mean([d["acc"][lab] for d in draws if lab in d["acc"]])
                       for lab in wrong + right if any(lab in d["acc"] for d in draws)}
            drops = {lab: 100 * np.mean([d["text"][lab] - d["acc"][lab] for d in draws if lab in d["acc"]])
                     for lab in right if lab in lab_acc}
            out[name][k] = {"per_class": float(np.mean(macro)), "sd": float(np.std(macro)),
                            "text_wrong": float(np.mean([lab_acc[lab] for lab in wrong if lab in lab_acc])),
                            "text_wrong_min": min((float(lab_acc[lab]), lab) for lab in wrong if lab in lab_acc),
                            "text_right": float(np.mean([lab_acc[lab] for lab in right if lab in lab_acc])),
                            "largest_drop": max((float(v), lab) for lab, v in drops.items())}
    return out


def ceiling(clap, clips, labels, text_emb, weight: float) -> float:
    """Per-class accuracy when each clip's label is enrolled from every clip of its other items
    and each other label from all its clips ("mean" scoring: no negatives, so the scored clip
    is in no label it is compared with): what more examples of these recordings could give."""
    from clap_rt.labelset import LabelSet
    from clap_rt.labelpack import EnrolledLabel
    from clap_rt.prototypes import mean_vector

    def label(name, idx):
        protos = np.concatenate([clips[i]["sound"] for i in idx])
        ids = np.concatenate([np.full(len(clips[i]["sound"]), n) for n, i in enumerate(idx)])
        return EnrolledLabel(name, protos, ids, vectors=mean_vector(protos, ids)[None],
                             text_embedding=text_emb[name] if weight > 0 else None, text_weight=weight)
    full = {lab: label(lab, [i for i, c in enumerate(clips) if c["label"] == lab]) for lab in labels}
    right = {lab: [] for lab in labels}
    for c, clip in enumerate(clips):
        own = [i for i, o in enumerate(clips) if o["label"] == clip["label"] and o["item"] != clip["item"]]
        if not own:
            continue
        ls = LabelSet([label(lab, own) if lab == clip["label"] else full[lab] for lab in labels])
        right[clip["label"]].append(ls.names[int(ls.scorer(clap)(clip["loudest"][None]).argmax())] == clip["label"])
    return float(np.mean([np.mean(v) for v in right.values() if v]))


def enrol_seconds(clap, clips, repeats: int = 3) -> float:
    """Median seconds of `Clap.enrol` of the 5 first clips of the first label (model fingerprint
    excluded: computed once per process, before)."""
    label = clips[0]["label"]
    paths = [c["path"] for c in clips if c["label"] == label][:5]
    clap.model_id
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        clap.enrol("timing", paths, text=label)
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def hop_cost(clap, clips, labels, scoring: str, weight: float, background, rng, n_pack: int = 100,
             seconds: float = 60.0) -> dict:
    """Median ms per hop (`ClapStream.score_mel`, batch 1) with the text labels alone and with a
    `n_pack`-label pack beside them, timed alternately window by window; and their ratio."""
    from clap_rt.background import coloured_noise
    from clap_rt.enrol import add_examples, fit_pack
    from clap_rt.frontend import log_mel
    from clap_rt.labelpack import LabelPack
    from clap_rt.labelset import LabelSet
    from clap_rt.stream import ClapStream
    pack = LabelPack(clap.config.name, clap.model_id, scoring, background, "default", list(_prompts()))
    names = [f"enrolled {i}" for i in range(n_pack)]
    text = clap.label_embeddings(names)
    for i, name in enumerate(names):
        idx = rng.choice(len(clips), 5, replace=False)
        add_examples(pack, name, [clips[j]["sound"] for j in idx], [{} for _ in idx], name, text[i], weight)
    fit_pack(pack, clap, thresholds=False)
    plain = ClapStream(clap, labels, clap.sample_rate)
    packed = ClapStream(clap, LabelSet([*labels, pack]), clap.sample_rate)
    fe = clap.frontend
    audio = (0.05 * coloured_noise(int(seconds * fe.sample_rate), 1.0, rng)).astype(np.float32)
    mel = log_mel(audio, fe)
    hop = plain.hop_frames
    windows = [mel[:, s:s + plain.window_frames] for s in range(0, mel.shape[1] - plain.window_frames + 1, hop)]
    # Alternating which goes first, over three passes: the two share whatever else the machine does.
    t: dict = {"text": [], "pack": []}
    for rep in range(3):
        for i, w in enumerate(windows):
            pair = [("text", plain), ("pack", packed)]
            for name, stream in (pair if (i + rep) % 2 == 0 else pair[::-1]):
                t0 = time.perf_counter()
                stream.score_mel(w[None])
                t[name].append(time.perf_counter() - t0)
    # The labels' part alone (the audio embedding is the same for both): scores of one window.
    emb = clap.embed_mel(windows[0][None])
    scorers = {"text": LabelSet(labels).scorer(clap), "pack": LabelSet([*labels, pack]).scorer(clap)}
    part = {}
    for name, scorer in scorers.items():
        t0 = time.perf_counter()
        for _ in range(1000):
            scorer(emb)
        part[name] = 1e3 * (time.perf_counter() - t0)         # us per call
    text_ms, pack_ms = (1e3 * float(np.median(t[k])) for k in ("text", "pack"))
    return {"scoring": scoring, "text_ms": text_ms, "pack_ms": pack_ms, "ratio": pack_ms / text_ms,
            "labels_us_text": part["text"], "labels_us_pack": part["pack"],
            "vectors": int(sum(len(lab.vectors) for lab in pack)), "windows": len(windows)}


def run(args: argparse.Namespace) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from clap_rt.checkpoints import load_model
    from clap_rt.enrol import background_embeddings
    from clap_rt.prototypes import DEFAULT_TEXT_WEIGHT
    from clap_rt.zeroshot import Clap
    torch.set_num_threads(args.threads)
    rows = read_benchmark(args.manifest)
    clap = Clap(*load_model(args.model), backend=args.backend, threads=args.threads)
    t0 = time.perf_counter()
    clips = embed_clips(clap, rows)
    embed_s = time.perf_counter() - t0
    labels = sorted({c["label"] for c in clips})
    background, _ = background_embeddings(clap)
    text_emb = dict(zip(labels, clap.label_embeddings(labels)))
    from clap_rt.labelset import LabelSet
    text_all = per_class(clap, LabelSet(labels), clips,
                         {lab: [i for i, c in enumerate(clips) if c["label"] == lab] for lab in labels})
    acc = accuracy(clap, clips, labels, args, background, text_emb, text_all)
    top = {f"mean w={w}": ceiling(clap, clips, labels, text_emb, w) for w in (0.0, DEFAULT_TEXT_WEIGHT)}
    enrol_s = enrol_seconds(clap, clips)
    rng = np.random.default_rng(args.seed)
    costs = [hop_cost(clap, clips, labels, s, DEFAULT_TEXT_WEIGHT, background, rng) for s in args.scorings]
    res = {"model": clap.config.name, "fingerprint": clap.model_id, "backend": clap.engine.name,
           "threads": args.threads, "clips": len(clips),
           "labels": len(labels), "draws": args.draws, "exclude": args.exclude, "cpu": cpu_line(), "embed_seconds": embed_s,
           "text_per_class_all": text_all, "text_wrong": [lab for lab in labels if text_all[lab] < TEXT_WRONG],
           "accuracy": acc, "ceiling_other_items": top, "enrol_5_clips_s": enrol_s, "hop_cost": costs}
    report(res, args)
    if args.json:
        from clap_rt.checkpoints import atomic_write_bytes
        atomic_write_bytes(args.json, (json.dumps(res, indent=2, default=str) + "\n").encode())
    return 0


def report(res: dict, args) -> None:
    n_wrong = len(res["text_wrong"])
    print(f"model {res['model']} (fingerprint {res['fingerprint']}), {res['labels']} labels, {res['clips']} clips, "
          f"{res['draws']} draws, examples from other {res['exclude']}s than the scored clips, "
          f"backend {res['backend']}, {res['threads']} thread(s)")
    print(res["cpu"])
    print(f"text alone, all clips: per-class {np.mean(list(res['text_per_class_all'].values())):.3f}; "
          f"{n_wrong} labels below {TEXT_WRONG:.0%} (text-wrong), {res['labels'] - n_wrong} at or above (text-right)")
    shots = args.shots
    head = "".join(f"  {k} ex: per-class (sd)" for k in shots)
    print(f"\n{'condition':<24}{head}  | 3 ex: text-wrong mean (min)   text-right mean, largest drop")
    for name, by_k in res["accuracy"].items():
        cells = "".join(f"  {by_k[k]['per_class']:.3f} ({by_k[k]['sd']:.3f})      " if k in by_k
                        else " " * 26 for k in shots)
        r3 = by_k.get(3)
        tail = (f"  | {r3['text_wrong']:.3f} ({r3['text_wrong_min'][0]:.2f} {r3['text_wrong_min'][1]})"
                f"   {r3['text_right']:.3f}, {r3['largest_drop'][0]:+.1f} pt ({r3['largest_drop'][1]})") if r3 else ""
        print(f"{name:<24}{cells}{tail}")
    print(f"\ntargets: text-wrong labels with 3 examples >= 0.80; text-right labels drop <= 2 points")
    print("every clip of the label's other items enrolled (the most these recordings give): " +
          ", ".join(f"{k} {v:.3f}" for k, v in res["ceiling_other_items"].items()))
    print(f"enrolment of 5 clips ({res['threads']} thread): {res['enrol_5_clips_s']:.2f} s")
    for c in res["hop_cost"]:
        print(f"per hop ({c['scoring']}): {res['labels']} text labels {c['text_ms']:.2f} ms, + 100-label pack "
              f"({c['vectors']} vectors) {c['pack_ms']:.2f} ms: ratio {c['ratio']:.3f} (median of 3 x {c['windows']} "
              f"windows); label scores alone {c['labels_us_text']:.0f} us -> {c['labels_us_pack']:.0f} us")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    p.add_argument("--model", default=None, help="model folder (default: the bundled default model)")
    p.add_argument("--manifest", type=Path, default=DEFAULT_MANIFEST)
    p.add_argument("--backend", default="auto")
    p.add_argument("--shots", default="1,3,5", help="examples per label, comma-separated")
    p.add_argument("--draws", type=int, default=5, help="seeded draws of the examples")
    p.add_argument("--scorings", default="mean,nearest,logistic")
    p.add_argument("--text-weights", default="0,0.3", help="weights of the label's name mixed in")
    p.add_argument("--exclude", choices=("item", "clip"), default="item",
                   help="item: examples and scored clips from different source recordings (default); "
                        "clip: only different clips")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None, help="also write the results as JSON to this file")
    args = p.parse_args(argv)

    def body():
        try:
            args.shots = [int(v) for v in args.shots.split(",")]
            args.text_weights = [float(v) for v in args.text_weights.split(",")]
        except ValueError:
            raise UserError("--shots / --text-weights: expected comma-separated numbers")
        args.scorings = [s.strip() for s in args.scorings.split(",")]
        from clap_rt.prototypes import SCORINGS
        bad = [s for s in args.scorings if s not in SCORINGS]
        if bad:
            raise UserError(f"--scorings {bad}: expected some of {', '.join(SCORINGS)}")
        if any(k < 1 for k in args.shots) or args.draws < 1:
            raise UserError("--shots / --draws: expected numbers >= 1")
        return run(args)
    return run_program(PROG, body)


if __name__ == "__main__":
    sys.exit(main())
