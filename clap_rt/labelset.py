"""Labels to score: text labels and enrolled ones (from label packs), in one list.

    labels = LabelSet.parse("siren, @labels.clap")      # "@FILE" expands to the pack's labels
    labels = LabelSet(["siren", *LabelPack.load("labels.clap")])
    scores = labels.scorer(clap)(audio_emb)              # (N, D) -> (N, L) cosine-scale scores

Every label gets one score per audio embedding on the scale of a text label's cosine (text:
`a . t`; enrolled: `prototypes.label_scores`), so all of them share one softmax in `classify`
and one open-set competition with the background prompts in `ClapStream`.
"""
from __future__ import annotations

from typing import Iterable, Optional, Sequence, Union

import numpy as np

from .errors import UserError
from .labelpack import EnrolledLabel, LabelPack

Entry = Union[str, EnrolledLabel, LabelPack]


class LabelSet:
    """Text labels (str) and enrolled labels (EnrolledLabel; a LabelPack adds all of its own),
    in the order given. Names must be unique."""

    def __init__(self, entries: Iterable[Entry] = (), source: str = "labels"):
        self.entries: list[Union[str, EnrolledLabel]] = []
        self.packs: list[LabelPack] = []
        self._pack_of: dict[str, LabelPack] = {}
        for entry in entries:
            if isinstance(entry, LabelPack):
                self.packs.append(entry)
                for label in entry:
                    self._pack_of[label.name] = entry
                    self.entries.append(label)
            elif isinstance(entry, (str, EnrolledLabel)):
                self.entries.append(entry)
            else:
                raise TypeError(f"labels: expected str, EnrolledLabel or LabelPack entries, got {type(entry).__name__}")
        names = self.names
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            where = sorted({self._pack_of[n].where for n in dupes if n in self._pack_of})
            raise UserError(f"{source}: duplicate labels {dupes}" + (f" (also in {', '.join(where)})" if where else ""))
        if not self.entries:
            raise UserError(f"{source}: expected at least one label")

    @classmethod
    def parse(cls, text: str, source: str = "--labels") -> "LabelSet":
        """'siren, @labels.clap' -> text label "siren" and the labels of the pack labels.clap
        (a path relative to the working folder)."""
        from .zeroshot import parse_labels
        items: list[Entry] = []
        for item in parse_labels(text, source):
            if item.startswith("@"):
                path = item[1:].strip()
                if not path:
                    raise UserError(f"{source}: '@' expects a label pack file after it, e.g. @labels.clap")
                items.append(LabelPack.load(path))
            else:
                items.append(item)
        return cls(items, source)

    @classmethod
    def of(cls, labels: Union["LabelSet", Sequence[Entry]]) -> "LabelSet":
        """A LabelSet as is; a list of names / enrolled labels / packs as a LabelSet."""
        return labels if isinstance(labels, LabelSet) else cls(labels)

    @property
    def names(self) -> list[str]:
        return [e if isinstance(e, str) else e.name for e in self.entries]

    @property
    def enrolled(self) -> list[EnrolledLabel]:
        return [e for e in self.entries if isinstance(e, EnrolledLabel)]

    def __len__(self) -> int:
        return len(self.entries)

    def check_model(self, clap) -> None:
        """UserError naming the pack made by another model than `clap`'s, if any."""
        for pack in self.packs:
            pack.check_model(clap)

    def thresholds(self) -> dict[str, tuple[float, float]]:
        """{name: (on, off)} of the enrolled labels whose thresholds were fitted."""
        return {e.name: (e.on, e.off) for e in self.enrolled if e.on is not None and e.off is not None}

    def event_thresholds(self, default_on: float, default_off: float):
        """A `detect.Thresholds` for an EventDetector over these labels: the enrolled labels'
        own, (default_on, default_off) for the others."""
        from .detect import Thresholds
        pairs = self.thresholds()
        return Thresholds({k: v[0] for k, v in pairs.items()}, {k: v[1] for k, v in pairs.items()},
                          default_on=default_on, default_off=default_off)

    def embedding_table(self, clap, template: Optional[str] = None) -> np.ndarray:
        """(L, D) float32 rows whose dot product with an audio embedding is each label's score
        (an exported label table): a text label's embedding, an enrolled label's
        (1 - w) * v + w * t. A label scored by the nearest of several vectors has no such row."""
        many = [e.name for e in self.enrolled if len(e.vectors) != 1]
        if many:
            raise UserError(f"labels {many}: scored by their nearest prototype, which one row per label cannot "
                            f"hold; enrol them with --scoring logistic or mean")
        s = self.scorer(clap, template)
        table = (1 - s.weights[:, None]) * s.matrix[s.starts] + s.weights[:, None] * s.matrix[s.text_rows]
        return table.astype(np.float32)

    def scorer(self, clap, template: Optional[str] = None) -> "LabelScorer":
        """The scoring function for `clap`'s embeddings; text labels use `template` (None: the
        model's templates). A pack made by another model is refused here."""
        if self.packs:
            self.check_model(clap)
        texts = [e for e in self.entries if isinstance(e, str)]
        text_emb = clap.label_embeddings(texts, template) if texts else None
        return LabelScorer(self.entries, text_emb)


class LabelScorer:
    """(N, D) unit-norm audio embeddings -> (N, L) label scores, in one matrix product.

    The matrix holds, label by label, a text label's embedding or an enrolled label's scoring
    vectors (a contiguous run of rows, reduced by max), then the enrolled labels' descriptions.
    """

    def __init__(self, entries: Sequence[Union[str, EnrolledLabel]], text_emb: Optional[np.ndarray]):
        rows, starts, weights = [], [], []
        n_text = 0
        for e in entries:
            starts.append(sum(len(r) for r in rows))
            if isinstance(e, str):
                rows.append(text_emb[n_text][None])
                n_text += 1
            else:
                rows.append(np.asarray(e.vectors, np.float32))
            weights.append(0.0 if isinstance(e, str) else e.weight)
        n_vectors = sum(len(r) for r in rows)
        described = [e for e in entries if not isinstance(e, str) and e.weight > 0]
        row_of = {id(e): n_vectors + i for i, e in enumerate(described)}
        text_rows = [row_of.get(id(e), 0) for e in entries]     # 0: any column, weighed by 0
        rows += [e.text_embedding[None].astype(np.float32) for e in described]
        self.matrix = np.ascontiguousarray(np.concatenate(rows), np.float32)     # (R, D)
        self.starts = np.asarray(starts)
        self.n_vectors = n_vectors
        self.text_rows = np.asarray(text_rows)
        self.weights = np.asarray(weights, np.float32)
        self.any_text = bool(described)

    def __call__(self, audio: np.ndarray) -> np.ndarray:
        sims = np.asarray(audio, np.float32) @ self.matrix.T                     # (N, R)
        scores = np.maximum.reduceat(sims[:, :self.n_vectors], self.starts, axis=1)
        if self.any_text:
            scores = (1 - self.weights) * scores + self.weights * sims[:, self.text_rows]
        return scores
