"""The user-facing API: embed audio and text, classify with label prompts, retrieve.

    clap = Clap.load()                                  # bundled default model
    clap.classify(["dog.wav"], ["dog", "siren"])        # -> [Classification(...)]
    pack = clap.enrol("doorbell", ["ding1.wav", "ding2.wav"])          # labels by example
    clap.classify(["x.wav"], LabelSet(["dog", *pack]))  # text and enrolled labels together
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterable, Iterator, Sequence, Union

import numpy as np
import torch

from .audio import iter_windows, load_audio, read_blocks, resample, to_mono
from .errors import UserError
from .labelset import LabelSet
from .pooling import pool_batches

AudioInput = Union[str, os.PathLike, np.ndarray]


@dataclass
class Classification:
    """One file's result: the best label, its softmax probability over the given labels, and
    every label's probability (they sum to 1)."""
    path: str
    label: str
    score: float
    scores: dict[str, float]

    def to_json(self) -> dict:
        return {"path": self.path, "label": self.label, "score": self.score, "scores": self.scores}


def parse_labels(text: str, source: str = "--labels") -> list[str]:
    """'siren, glass breaking' -> ['siren', 'glass breaking']; empty or duplicate labels are errors."""
    labels = [s.strip() for s in text.replace("\n", ",").split(",")]
    labels = [s for s in labels if s]
    if not labels:
        raise UserError(f"{source}: expected at least one label, e.g. \"siren,glass breaking\"")
    dupes = sorted({s for s in labels if labels.count(s) > 1})
    if dupes:
        raise UserError(f"{source}: duplicate labels {dupes}")
    return labels



def prompt_templates(config, template: str | None = None) -> tuple[str, ...]:
    """`template` alone, else the model's prompt template and its prompt ensemble."""
    return (template,) if template else (config.prompt_template, *config.prompt_ensemble)


def check_template(template: str, source: str) -> None:
    """A prompt template must hold one '{}' for the label and no other field str.format would
    fill ("{x}", "{0}", an unmatched brace; "{{" is a brace); else a UserError naming `source`."""
    try:
        ok = "{}" in template and bool(template.format("label"))
    except (KeyError, IndexError, ValueError):
        ok = False
    if not ok:
        raise UserError(f"{source}: expected a '{{}}' placeholder for the label and no other field, "
                        f"got {template!r}")


def template_mean_embeddings(embed_text, labels: Sequence[str], templates: Sequence[str]) -> np.ndarray:
    """(L, dim) unit-norm label embeddings: per label, the renormalised mean over `templates` of
    `embed_text` ((N texts) -> (N, dim) unit-norm) of `template.format(label)`."""
    emb = np.asarray(embed_text([t.format(label) for t in templates for label in labels]))
    emb = emb.reshape(len(templates), len(labels), -1).mean(axis=0)              # (L, dim)
    return emb / np.linalg.norm(emb, axis=1, keepdims=True)

# Windows cut, turned into log-mel frames and encoded together (a file's memory is about this
# many windows, whatever its length).
WINDOW_BATCH = 16


def _batches(items: Iterable, n: int) -> Iterator[list]:
    batch: list = []
    for x in items:
        batch.append(x)
        if len(batch) == n:
            yield batch
            batch = []
    if batch:
        yield batch


def item_name(item: AudioInput) -> str:
    """How results and errors name an input: its path, or "<array>"."""
    return "<array>" if isinstance(item, np.ndarray) else str(item)


class Clap:
    """A loaded model + an audio engine + cached label embeddings."""

    def __init__(self, model, tokenizer, backend: str = "auto", threads: int | None = None,
                 compile: bool = False):
        from .engine import create_engine
        if threads is not None and threads < 1:
            raise UserError(f"--threads: expected an integer >= 1, got {threads}")
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.config = model.config
        self.frontend = model.config.frontend
        self.engine = create_engine(model, backend, threads=threads, compile=compile)
        self.backend = backend          # as asked: "auto" lets a stream take a shipped int8 step
        self._label_cache: dict[tuple, np.ndarray] = {}
        self._model_id: str | None = None
        self.model_dir: str | os.PathLike | None = None    # where `captioner` is read from
        self._captioner = None
        # (window frames, hop frames, threads) -> the incremental tower's step graphs, shared by every
        # stream of this model (they hold no stream state: each stream passes its columns in)
        self.stream_graphs: dict = {}

    @classmethod
    def load(cls, path: str | os.PathLike | None = None, backend: str = "auto",
             threads: int | None = None, compile: bool = False) -> "Clap":
        """Load a model folder (None: the bundled default model); see `create_engine`."""
        from .checkpoints import load_model
        from .checkpoints import DEFAULT_MODEL_DIR
        model, tokenizer = load_model(path)
        clap = cls(model, tokenizer, backend=backend, threads=threads, compile=compile)
        clap.model_dir = path if path is not None else DEFAULT_MODEL_DIR
        return clap

    @property
    def sample_rate(self) -> int:
        """Hz the model's frontend expects (files at other rates are resampled on load)."""
        return self.frontend.sample_rate

    @property
    def model_id(self) -> str:
        """The model's fingerprint (`checkpoints.model_fingerprint`), which label packs carry."""
        if self._model_id is None:
            from .checkpoints import model_fingerprint
            self._model_id = model_fingerprint(self.model)
        return self._model_id

    @property
    def logit_scale(self) -> float:
        """The learned softmax temperature's inverse: probabilities are softmax(scale * cosine)."""
        return float(self.model.logit_scale.detach().exp())

    # --- audio ------------------------------------------------------------------------

    def embed_mel(self, mel_db: np.ndarray) -> np.ndarray:
        """(B, n_mels, T) dB frames -> (B, dim) unit-norm embeddings."""
        return self.engine.embed(mel_db)

    def embed_windows(self, windows: np.ndarray, batch_size: int = WINDOW_BATCH) -> np.ndarray:
        """(W, clip_samples) float32 audio at the model rate -> (W, dim) unit-norm embeddings."""
        from .frontend import log_mel
        return self.embed_mel_batches(log_mel(windows, self.frontend), batch_size)

    def embed_mel_batches(self, mel_db: np.ndarray, batch_size: int = WINDOW_BATCH) -> np.ndarray:
        """(W, n_mels, T) dB frames, any W >= 0 -> (W, dim) unit-norm embeddings, `batch_size`
        windows per engine call."""
        out = [self.embed_mel(mel_db[i:i + batch_size]) for i in range(0, len(mel_db), batch_size)]
        return np.concatenate(out) if out else np.zeros((0, self.config.projection.dim), np.float32)

    def read(self, item: AudioInput, sample_rate: int | None = None) -> np.ndarray:
        """A path or an array -> (n,) float32 mono at the model rate."""
        if isinstance(item, np.ndarray):
            if sample_rate is None:
                raise ValueError("sample_rate: required when passing an array")
            return resample(to_mono(item), sample_rate, self.sample_rate)
        return load_audio(item, self.sample_rate)

    def windows(self, item: AudioInput, sample_rate: int | None = None) -> Iterator[np.ndarray]:
        """A path or an array -> its (clip_samples,) model windows (`audio.fit_windows`) one at a
        time; a file is decoded block by block (`audio.read_blocks`), never held whole."""
        blocks = [self.read(item, sample_rate)] if isinstance(item, np.ndarray) else read_blocks(item, self.sample_rate)
        return iter_windows(blocks, self.frontend.clip_samples, short=self.config.short_clips)

    def embed_audio(self, items: Sequence[AudioInput], sample_rate: int | None = None,
                    pooling: str = "loudest") -> np.ndarray:
        """Paths or arrays -> (N, dim) unit-norm embeddings.

        Each item is cut into fixed windows of the model length (`audio.fit_windows`), whose
        embeddings are pooled into one (`pooling.pool_windows`: the loudest window, or the mean);
        only the windows that pooling needs are encoded, and a file of any length takes the
        memory of a few windows. A non-finite embedding is a UserError naming the item.
        """
        from .frontend import log_mel
        if isinstance(items, (str, os.PathLike, np.ndarray)):
            items = [items]
        out = []
        for item in items:
            mels = (log_mel(np.stack(b), self.frontend) for b in _batches(self.windows(item, sample_rate), WINDOW_BATCH))
            e = pool_batches(mels, self.embed_mel_batches, pooling)
            if not np.isfinite(e).all():
                raise UserError(f"{item_name(item)}: the model's embedding is not finite (NaN/Inf); expected "
                                f"audio samples in [-1, 1]")
            out.append(e)
        return np.stack(out).astype(np.float32)

    # --- captions ---------------------------------------------------------------------

    @property
    def captioner(self):
        """The model folder's `caption.Captioner`, loaded on first use; a model without one (or
        one made for other weights) is a UserError."""
        if self._captioner is None:
            from .caption import load_captioner
            if self.model_dir is None:
                raise UserError("this model was not loaded from a folder, so it has no captioner")
            self._captioner = load_captioner(self.model_dir, self.model_id)
        return self._captioner

    def caption(self, items: Sequence[AudioInput], beam: int = 1, sample_rate: int | None = None,
                pooling: str = "loudest") -> list[str]:
        """Paths or arrays -> one caption each, from the embedding `embed_audio` gives them;
        `beam` 1 decodes greedily, more runs a beam search of that width."""
        return self.captioner.caption(self.embed_audio(items, sample_rate, pooling), beam=beam)

    # --- text -------------------------------------------------------------------------

    @torch.inference_mode()
    def embed_text(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """Texts -> (N, dim) unit-norm embeddings."""
        out = []
        for i in range(0, len(texts), batch_size):
            ids, mask = self.tokenizer(list(texts[i:i + batch_size]))
            out.append(self.model.encode_text(ids, mask).float().numpy())
        return np.concatenate(out)

    def label_embeddings(self, labels: Sequence[str], template: str | None = None) -> np.ndarray:
        """(L, dim) unit-norm embeddings of `template.format(label)`, computed once per label set.

        Without `template`, the model's prompt template and its `prompt_ensemble` templates:
        each label's embedding is the renormalised mean over them."""
        if template is not None:
            check_template(template, "--template")
        templates = prompt_templates(self.config, template)
        key = (tuple(labels), templates)
        if key not in self._label_cache:
            self._label_cache[key] = template_mean_embeddings(self.embed_text, labels, templates)
        return self._label_cache[key]

    # --- zero-shot --------------------------------------------------------------------

    def probabilities(self, audio_emb: np.ndarray, label_emb: np.ndarray) -> np.ndarray:
        """(N, dim) x (L, dim) -> (N, L) softmax over labels of the scaled cosine similarity."""
        return self.softmax(audio_emb @ label_emb.T)

    def softmax(self, sims: np.ndarray) -> np.ndarray:
        """(N, L) cosine-scale label scores -> (N, L) softmax of logit_scale * scores."""
        logits = self.logit_scale * np.asarray(sims, np.float64)
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        return (p / p.sum(axis=1, keepdims=True)).astype(np.float32)

    def classify(self, items: Sequence[AudioInput], labels: Sequence[str] | LabelSet, template: str | None = None,
                 sample_rate: int | None = None, pooling: str = "loudest") -> list[Classification]:
        """Zero-shot classification of each item among `labels`: names, or a `LabelSet` mixing
        them with enrolled labels, all in one softmax (`pooling`: see `embed_audio`)."""
        if isinstance(items, (str, os.PathLike, np.ndarray)):
            items = [items]
        labels = LabelSet.of(labels)
        names = labels.names
        probs = self.softmax(labels.scorer(self, template)(self.embed_audio(items, sample_rate, pooling)))
        out = []
        for item, p in zip(items, probs):
            top = int(p.argmax())
            out.append(Classification(item_name(item), names[top], float(p[top]),
                                      {lab_: float(v) for lab_, v in zip(names, p)}))
        return out

    # --- labels by example --------------------------------------------------------------

    def enrol(self, name: str, examples: Sequence[AudioInput], text: str | None = None,
              text_weight: float | None = None, background: Sequence[AudioInput] | None = None,
              pack=None, scoring: str | None = None, sample_rate: int | None = None):
        """Enrol label `name` from example recordings -> a `LabelPack` (new, or `pack` grown).

        See `clap_rt.enrol.enrol`: sound windows kept as prototypes, `text` mixed in with
        `text_weight`, leave-one-out thresholds against `background` (default: made in code).
        """
        from .enrol import enrol
        return enrol(self, name, examples, text=text, text_weight=text_weight, background=background,
                     pack=pack, scoring=scoring, sample_rate=sample_rate)

    def search(self, query: str, embeddings: np.ndarray, k: int = 10) -> list[tuple[int, float]]:
        """Text -> the k rows of `embeddings` (N, dim) with the highest cosine, best first."""
        q = self.embed_text([query])[0]
        sims = embeddings @ q
        order = np.argsort(-sims, kind="stable")[:k]
        return [(int(i), float(sims[i])) for i in order]
