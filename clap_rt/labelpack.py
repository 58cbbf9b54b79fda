"""Label packs: labels enrolled from examples, saved as one safetensors file (`labels.clap`).

Tensors (float32 unless noted; D = the model's embedding size, P prototypes, L labels):

    prototypes        (P, D)  unit-norm embeddings of the examples' sound windows
    prototype_label   (P,)    int32, the label each prototype belongs to
    prototype_example (P,)    int32, the example (within its label) it came from
    vectors           (V, D)  each label's scoring vectors (`clap_rt.prototypes`)
    vector_label      (V,)    int32
    text              (L, D)  each label's description embedding (zeros without one)
    background        (B, D)  the background windows its thresholds were fitted against

The header's metadata holds one JSON document under "clap_rt.labels": the format and version,
the model that made the embeddings (name and `checkpoints.model_fingerprint`), the scoring, the
background (where it came from, the prompts), and per label its name, description, text weight,
on / off thresholds (with how they were fitted) and examples (file, seconds, windows kept).
A pack made by another model is refused on use (`check_model`): its embeddings mean nothing there.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Iterator, Optional

import numpy as np

from .errors import UserError

FORMAT = "clap_rt.labels"
VERSION = 1
METADATA_KEY = "clap_rt.labels"
EXPECTED = "expected a label pack written by `clap-rt enrol`"


@dataclass(eq=False)
class EnrolledLabel:
    """One label known by examples. prototypes (P, D) with example_ids (P,); vectors (K, D) as
    `prototypes.scoring_vectors` made them; text_embedding (D,) or None; on / off: its
    hysteresis thresholds on the open-set score (None until fitted)."""
    name: str
    prototypes: np.ndarray
    example_ids: np.ndarray
    examples: list = field(default_factory=list)      # [{"source", "seconds", "windows"}]
    text: Optional[str] = None
    text_embedding: Optional[np.ndarray] = None
    text_weight: float = 0.0
    vectors: Optional[np.ndarray] = None
    on: Optional[float] = None
    off: Optional[float] = None
    note: str = ""

    @property
    def weight(self) -> float:
        """The text weight that applies: 0 without a description."""
        return self.text_weight if self.text_embedding is not None else 0.0

    def to_json(self) -> dict:
        return {"name": self.name, "text": self.text, "text_weight": self.text_weight,
                "on": self.on, "off": self.off, "note": self.note, "examples": self.examples}


@dataclass(eq=False)
class LabelPack:
    """Enrolled labels and what they were made with; `path` is the file it was read from."""
    model_name: str
    fingerprint: str
    scoring: str
    background: np.ndarray                            # (B, D)
    background_source: str
    background_prompts: list
    labels: list = field(default_factory=list)        # [EnrolledLabel]
    path: Optional[str] = None

    def __iter__(self) -> Iterator[EnrolledLabel]:
        return iter(self.labels)

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def names(self) -> list[str]:
        return [label.name for label in self.labels]

    def get(self, name: str) -> Optional[EnrolledLabel]:
        return next((label for label in self.labels if label.name == name), None)

    @property
    def where(self) -> str:
        """How messages name the pack."""
        return self.path or "label pack"

    def check_model(self, clap) -> None:
        """UserError naming the pack unless `clap` (anything with `model_id` and `config.name`)
        is the model that made it."""
        if clap.model_id != self.fingerprint:
            raise UserError(f"{self.where}: label pack made by model {self.model_name!r} (fingerprint "
                            f"{self.fingerprint}), not by this model {clap.config.name!r} (fingerprint "
                            f"{clap.model_id}); enrol the labels again with this model")

    # --- the file ------------------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        from safetensors.numpy import save
        labels = self.labels
        dim = self.background.shape[1]
        ids = [np.full(len(lab.prototypes), i, np.int32) for i, lab in enumerate(labels)]
        vids = [np.full(len(lab.vectors), i, np.int32) for i, lab in enumerate(labels)]

        def stack(parts, width=dim, dtype=np.float32):
            return (np.concatenate(parts).astype(dtype) if parts else np.zeros((0, width) if width else 0, dtype))

        tensors = {
            "prototypes": stack([lab.prototypes for lab in labels]),
            "prototype_label": stack(ids, 0, np.int32),
            "prototype_example": stack([lab.example_ids for lab in labels], 0, np.int32),
            "vectors": stack([lab.vectors for lab in labels]),
            "vector_label": stack(vids, 0, np.int32),
            "text": np.stack([lab.text_embedding if lab.text_embedding is not None else np.zeros(dim, np.float32)
                              for lab in labels]).astype(np.float32) if labels else np.zeros((0, dim), np.float32),
            "background": self.background.astype(np.float32),
        }
        doc = {"format": FORMAT, "version": VERSION,
               "model": {"name": self.model_name, "fingerprint": self.fingerprint},
               "scoring": self.scoring,
               "background": {"source": self.background_source, "windows": int(len(self.background)),
                              "prompts": list(self.background_prompts)},
               "labels": [lab.to_json() for lab in labels]}
        return save({k: np.ascontiguousarray(v) for k, v in tensors.items()},
                    metadata={METADATA_KEY: json.dumps(doc)})

    def save(self, path: str | os.PathLike) -> None:
        """Write the pack to `path` atomically."""
        from .checkpoints import atomic_write_bytes
        atomic_write_bytes(path, self.to_bytes())
        self.path = str(path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "LabelPack":
        """Read a pack; a missing, foreign or damaged file is a UserError naming it."""
        path = str(path)
        if not os.path.isfile(path):
            raise UserError(f"{path}: label pack not found; {EXPECTED}")
        from safetensors import SafetensorError
        from safetensors.numpy import load
        with open(path, "rb") as f:
            data = f.read()
        try:
            tensors = load(data)
            doc = json.loads(_metadata(data)[METADATA_KEY])
        except (SafetensorError, ValueError, KeyError, AttributeError) as e:
            why = "no label metadata" if isinstance(e, KeyError) else str(e).splitlines()[0] if str(e) else type(e).__name__
            raise UserError(f"{path}: not a label pack ({why}); {EXPECTED}")
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise UserError(f"{path}: not a label pack (format {doc.get('format')!r}); {EXPECTED}")
        if doc.get("version") != VERSION:
            raise UserError(f"{path}: label pack version {doc.get('version')!r}; expected {VERSION}")
        try:
            return cls._from(doc, tensors, path)
        except (KeyError, IndexError, TypeError, ValueError) as e:
            raise UserError(f"{path}: damaged label pack ({type(e).__name__}: {e}); {EXPECTED}")

    @classmethod
    def _from(cls, doc: dict, t: dict, path: str) -> "LabelPack":
        entries = doc["labels"]
        n = len(entries)
        if t["text"].shape[0] != n or (n and (t["prototype_label"].max() >= n or t["vector_label"].max() >= n)):
            raise ValueError(f"tensors for {t['text'].shape[0]} labels, metadata for {n}")
        labels = []
        for i, e in enumerate(entries):
            keep, vkeep = t["prototype_label"] == i, t["vector_label"] == i
            has_text = e.get("text") is not None
            labels.append(EnrolledLabel(
                name=str(e["name"]), prototypes=t["prototypes"][keep], example_ids=t["prototype_example"][keep],
                examples=list(e.get("examples", [])), text=e.get("text"),
                text_embedding=t["text"][i] if has_text else None, text_weight=float(e["text_weight"]),
                vectors=t["vectors"][vkeep], on=e.get("on"), off=e.get("off"), note=e.get("note", "")))
        model, bg = doc["model"], doc["background"]
        return cls(model_name=str(model["name"]), fingerprint=str(model["fingerprint"]), scoring=str(doc["scoring"]),
                   background=t["background"], background_source=str(bg["source"]),
                   background_prompts=list(bg["prompts"]), labels=labels, path=path)


def _metadata(data: bytes) -> dict:
    """The safetensors header's __metadata__ (a str -> str mapping)."""
    n = int.from_bytes(data[:8], "little")
    return json.loads(data[8:8 + n]).get("__metadata__") or {}
