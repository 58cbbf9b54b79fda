"""Text -> token ids for the text tower, from local files only (never a hub)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import torch

from .config import TextEncoderConfig

TOKENIZER_FILE = "tokenizer.json"
# GPT-2 byte-level BPE (vocab.json + merges.txt), shipped for msclap's towers and the captioners.
GPT2_ASSETS = Path(__file__).resolve().parent / "assets" / "gpt2"


class TextTokenizer:
    """Wraps a `tokenizers.Tokenizer`; pads on the right and returns a mask.

    The text tower pools with the mask ("last" reads the final attended token), so the pad
    id never matters: unlike msclap, a "!" in a label cannot move the pooled position.
    """

    def __init__(self, backend, cfg: TextEncoderConfig):
        self.backend = backend
        self.cfg = cfg
        backend.no_padding()
        backend.enable_truncation(cfg.max_length)
        self.pad_id = 0

    @classmethod
    def from_dir(cls, path: str | os.PathLike, cfg: TextEncoderConfig) -> "TextTokenizer":
        """Load `tokenizer.json`, or GPT-2 `vocab.json` + `merges.txt`, or WordPiece `vocab.txt`."""
        path = Path(path)
        try:
            from tokenizers import Tokenizer
        except ImportError as e:
            raise RuntimeError("text tokenisation requires the tokenizers package (pip install tokenizers)") from e
        if (path / TOKENIZER_FILE).exists():
            return cls(Tokenizer.from_file(str(path / TOKENIZER_FILE)), cfg)
        import transformers
        if (path / "vocab.json").exists() and (path / "merges.txt").exists():
            fast = transformers.GPT2TokenizerFast.from_pretrained(str(path), local_files_only=True)
        elif (path / "vocab.txt").exists():
            fast = transformers.BertTokenizerFast.from_pretrained(str(path), local_files_only=True,
                                                                  do_lower_case=cfg.lowercase)
        else:
            raise FileNotFoundError(f"{path}: expected tokenizer.json, vocab.json + merges.txt, or vocab.txt")
        return cls(fast.backend_tokenizer, cfg)

    def save(self, path: str | os.PathLike) -> None:
        self.backend.save(str(Path(path) / TOKENIZER_FILE))

    def __call__(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """texts -> (input_ids, attention_mask), both (B, L) int64, right-padded."""
        if isinstance(texts, str):
            texts = [texts]
        texts = [(t.lower() if self.cfg.lowercase else t) + self.cfg.text_suffix for t in texts]
        encs = self.backend.encode_batch(texts)
        length = max(1, max(len(e.ids) for e in encs))
        ids = torch.full((len(encs), length), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(encs), length), dtype=torch.long)
        for i, e in enumerate(encs):
            ids[i, :len(e.ids)] = torch.tensor(e.ids, dtype=torch.long)
            mask[i, :len(e.ids)] = 1
        return ids, mask
