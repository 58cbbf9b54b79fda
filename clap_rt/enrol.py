"""Enrolment: a label known by example recordings instead of (or besides) words.

    pack = enrol(clap, "doorbell", ["ding1.wav", "ding2.wav", "ding3.wav"], text="a doorbell")
    pack.save("labels.clap")

Each example is cut into the model's windows as a file is (`audio.fit_windows`); the windows
that hold the sound (`pooling.sound_windows`: within 10 dB of the loudest, not the silence
around it) are embedded and kept as the label's prototypes. An optional description is embedded
with the model's prompt templates and mixed in with a weight (`prototypes`: how a label scores).

Thresholds (`fit_pack`), per label, on its open-set score (its share of one softmax with the
pack's other labels and the background prompts, as `clap-rt listen` scores the pack):
positives are leave-one-out peaks, each example scored by the label made from the *other*
examples, so no threshold is fitted on the scores it is judged by; negatives are the pack's
background windows and the other labels' prototypes, scored by the whole label.
`detect.fit_thresholds` places on / off between them.
With one example there is nothing to leave it out against: its description scores it, or,
without one, the thresholds come from the negatives alone.
"""
from __future__ import annotations

import os
from typing import Optional, Sequence

import numpy as np

from .audio import fit_windows
from .background import DESCRIPTION as DEFAULT_BACKGROUND_SOURCE
from .background import default_background
from .detect import DEFAULT_BACKGROUND, fit_thresholds, open_set_scores
from .errors import UserError
from .labelpack import EnrolledLabel, LabelPack
from .pooling import sound_windows
from .prototypes import (DEFAULT_SCORING, DEFAULT_TEXT_WEIGHT, SCORINGS, FitContext, label_scores,
                         scoring_vectors)

# Shorter than this (about four frames of the default model's frontend) the tower sees too
# little of a sound to know it again.
MIN_EXAMPLE_SECONDS = 0.1
# An example whose loudest sample stays below this holds no sound to learn.
SILENCE_DBFS = -60.0


def item_name(item, index: int) -> str:
    """How messages and the pack name an example: its path, or "array N"."""
    return f"array {index}" if isinstance(item, np.ndarray) else str(item)


def check_example(audio: np.ndarray, sample_rate: int, name: str) -> None:
    """UserError naming the example if `audio` ((n,) float32 at `sample_rate`) is too short or silent."""
    seconds = len(audio) / sample_rate
    if seconds < MIN_EXAMPLE_SECONDS:
        raise UserError(f"{name}: too short ({seconds:.3f} s); expected an example of at least "
                        f"{MIN_EXAMPLE_SECONDS} s")
    peak = float(np.max(np.abs(audio)))
    if peak < 10 ** (SILENCE_DBFS / 20):
        level = f"peak {20 * np.log10(peak):.1f} dBFS" if peak > 0 else "every sample 0"
        raise UserError(f"{name}: silent ({level}); expected an example with its sound above "
                        f"{SILENCE_DBFS:.0f} dBFS")


def example_prototypes(clap, audio: np.ndarray, name: str) -> tuple[np.ndarray, float]:
    """One example ((n,) float32 at the model rate) -> its (K, D) sound-window embeddings and
    its length in seconds."""
    from .frontend import log_mel
    check_example(audio, clap.sample_rate, name)
    windows = fit_windows(audio, clap.frontend.clip_samples, short=clap.config.short_clips)
    mel = log_mel(windows, clap.frontend)
    return clap.embed_mel_batches(mel[sound_windows(mel)]), len(audio) / clap.sample_rate


def background_embeddings(clap, files: Optional[Sequence] = None,
                          sample_rate: Optional[int] = None) -> tuple[np.ndarray, str]:
    """(B, D) embeddings of every window of the background `files` (paths or arrays), or of
    `background.default_background` without them; and where they came from, in words."""
    from .frontend import log_mel
    n = clap.frontend.clip_samples
    if not files:
        return clap.embed_mel_batches(log_mel(default_background(n, clap.sample_rate), clap.frontend)), \
            DEFAULT_BACKGROUND_SOURCE
    parts = []
    for i, item in enumerate(files):
        audio = clap.read(item, sample_rate)
        parts.append(clap.embed_mel_batches(log_mel(fit_windows(audio, n, short=clap.config.short_clips),
                                                    clap.frontend)))
    names = ", ".join(os.path.basename(item_name(f, i)) for i, f in enumerate(files))
    return np.concatenate(parts), f"files: {names}"


def new_pack(clap, background: Optional[Sequence] = None, scoring: Optional[str] = None,
             sample_rate: Optional[int] = None) -> LabelPack:
    """An empty pack for `clap`'s model with its background windows embedded."""
    scoring = scoring or DEFAULT_SCORING
    if scoring not in SCORINGS:
        raise UserError(f"--scoring: expected one of {', '.join(SCORINGS)}, got {scoring!r}")
    emb, source = background_embeddings(clap, background, sample_rate)
    return LabelPack(model_name=clap.config.name, fingerprint=clap.model_id, scoring=scoring,
                     background=emb, background_source=source, background_prompts=list(DEFAULT_BACKGROUND))


def check_name(name: str) -> str:
    name = name.strip()
    if not name or "," in name or name.startswith("@"):
        raise UserError(f"NAME {name!r}: expected a label name without commas that does not start with '@'")
    return name


def enrol(clap, name: str, examples: Sequence, text: Optional[str] = None,
          text_weight: Optional[float] = None, background: Optional[Sequence] = None,
          pack: Optional[LabelPack] = None, scoring: Optional[str] = None,
          sample_rate: Optional[int] = None) -> LabelPack:
    """Enrol `name` from `examples` (paths, or arrays at `sample_rate`) into a new pack, or into
    `pack` (grown in place: a new name adds a label, a name it holds gets more examples).

    text / text_weight: a description mixed into the label's score (weight in [0, 1], default
    prototypes.DEFAULT_TEXT_WEIGHT). background: recordings of the scene without the sound
    (default: `background.default_background`); with `pack`, they join its background.
    scoring: one of prototypes.SCORINGS for a new pack (a pack keeps its own). Every label's
    vectors and thresholds are refitted (`fit_pack`). Returns the pack.
    """
    name = check_name(name)
    if isinstance(examples, (str, os.PathLike, np.ndarray)):
        examples = [examples]
    if not examples:
        raise UserError(f"{name}: expected at least one example recording")
    if text is not None and not text.strip():
        raise UserError("--text: expected a description of the sound, got an empty string")
    if text_weight is not None:
        if text is None:
            raise UserError("--text-weight: expected --text, the description it weighs")
        if not 0.0 <= text_weight <= 1.0:
            raise UserError(f"--text-weight: expected a number in [0, 1], got {text_weight}")
    if pack is not None:
        pack.check_model(clap)
        if scoring is not None and scoring != pack.scoring:
            raise UserError(f"--scoring {scoring}: {pack.where} scores its labels with {pack.scoring!r}; "
                            f"a pack has one scoring")
    embs, meta = [], []
    for i, item in enumerate(examples):
        where = item_name(item, i)
        e, seconds = example_prototypes(clap, clap.read(item, sample_rate), where)
        embs.append(e)
        meta.append({"source": where, "seconds": round(seconds, 3), "windows": int(len(e))})
    if pack is None:
        pack = new_pack(clap, background, scoring, sample_rate)
    else:
        if background:
            emb, source = background_embeddings(clap, background, sample_rate)
            pack.background = np.concatenate([pack.background, emb])
            pack.background_source = f"{pack.background_source}; {source}"
    text_emb = clap.label_embeddings([text.strip()])[0] if text is not None else None
    add_examples(pack, name, embs, meta, text, text_emb, text_weight)
    fit_pack(pack, clap)
    return pack


def add_examples(pack: LabelPack, name: str, embs: Sequence[np.ndarray], meta: Sequence[dict],
                 text: Optional[str] = None, text_embedding: Optional[np.ndarray] = None,
                 text_weight: Optional[float] = None) -> EnrolledLabel:
    """Add examples (each a (K, D) array of sound-window embeddings, with its `meta` entry) to
    label `name` of `pack`, made if new; a description replaces the label's. Vectors and
    thresholds are stale until `fit_pack`."""
    label = pack.get(name)
    if label is None:
        label = EnrolledLabel(name, np.zeros((0, pack.background.shape[1]), np.float32), np.zeros(0, np.int32))
        pack.labels.append(label)
    first = int(label.example_ids.max()) + 1 if len(label.example_ids) else 0
    label.prototypes = np.concatenate([label.prototypes, *embs]).astype(np.float32)
    label.example_ids = np.concatenate([label.example_ids, *[np.full(len(e), first + i, np.int32)
                                                             for i, e in enumerate(embs)]]).astype(np.int32)
    label.examples = label.examples + list(meta)
    if text is not None:
        label.text, label.text_embedding = text.strip(), text_embedding
        label.text_weight = DEFAULT_TEXT_WEIGHT if text_weight is None else float(text_weight)
    return label


def fit_pack(pack: LabelPack, clap, thresholds: bool = True) -> None:
    """Every label's scoring vectors and (unless `thresholds` is False) its leave-one-out
    thresholds (see the module), in place. clap: `label_embeddings` and `logit_scale`."""
    prompts = clap.label_embeddings(list(pack.background_prompts))
    contexts = []
    for i, label in enumerate(pack.labels):
        others = [lab.prototypes for j, lab in enumerate(pack.labels) if j != i]
        negatives = np.concatenate([pack.background, *others]).astype(np.float32)
        contexts.append(FitContext(negatives, prompts, clap.logit_scale, label.text_embedding, label.weight))
        label.vectors = scoring_vectors(pack.scoring, label.prototypes, label.example_ids, contexts[-1])
    if not thresholds:
        return
    for i, (label, context) in enumerate(zip(pack.labels, contexts)):
        rivals = [lab for j, lab in enumerate(pack.labels) if j != i]
        peaks = leave_one_out_peaks(label, pack.scoring, context, rivals)
        neg = open_set(label_scores(context.negatives, label.vectors, label.text_embedding, label.weight),
                       context.negatives, prompts, clap.logit_scale, rivals)
        on, off, note = fit_thresholds(peaks, neg)
        n = len(np.unique(label.example_ids))
        how = ("leave-one-out over" if n > 1 else "its description scoring") + f" {n} example{'s' * (n > 1)}"
        label.on, label.off, label.note = on, off, f"{how}; {note}"


def leave_one_out_peaks(label: EnrolledLabel, scoring: str, context: FitContext,
                        rivals: Sequence[EnrolledLabel] = ()) -> list[float]:
    """Each example's highest open-set score (`open_set`) when the label is made from the other
    examples (one example: from its description alone; neither: none)."""
    ids = np.unique(label.example_ids)
    peaks = []
    for e in ids:
        held = label.example_ids == e
        x = label.prototypes[held]
        if len(ids) > 1:
            vectors = scoring_vectors(scoring, label.prototypes[~held], label.example_ids[~held], context)
            s = label_scores(x, vectors, label.text_embedding, label.weight)
        elif label.text_embedding is not None:
            s = x @ label.text_embedding
        else:
            return []
        peaks.append(float(open_set(s, x, context.prompts, context.logit_scale, rivals).max()))
    return peaks


def open_set(scores: np.ndarray, audio: np.ndarray, prompts: np.ndarray, logit_scale: float,
             rivals: Sequence[EnrolledLabel] = ()) -> np.ndarray:
    """(N,) one label's scores of (N, D) audio -> (N,) its open-set share against the prompts
    and `rivals` (the pack's other labels), as a stream of the pack scores it: a window of a
    rival's sound goes mostly to the rival, so confusable labels do not push each other's
    thresholds up."""
    cols = [scores[:, None], *[label_scores(audio, r.vectors, r.text_embedding, r.weight)[:, None] for r in rivals],
            audio @ prompts.T]
    return open_set_scores(np.concatenate(cols, axis=1), logit_scale, 1)[:, 0]
