"""train.caption: the splits keep benchmark and validation clips out of training, and a tiny
captioner learns to tell three sounds apart from their embeddings."""
from __future__ import annotations

import json

import numpy as np
import torch

from train.caption import caption_splits, encode, parse_args, train_captioner, vocabulary
from train.corpus.sfx import EVERYDAY_VAL


def row(path, source, split, caption="a dog barking"):
    return {"path": path, "caption": caption, "captions": [caption, "dog sound"], "label": "dog",
            "source": source, "item": path, "split": split}


def test_splits_keep_benchmark_and_validation_packages_out(tmp_path):
    rows = [row("a.wav", "pkg", "train"), row("b.wav", EVERYDAY_VAL[0], "train"), row("c.wav", "pkg", "val"),
            row("d.wav", "held", "test"), row("e.wav", "held", "test"), row("f.wav", "pkg", "train")]
    (tmp_path / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "benchmark.jsonl").write_text(json.dumps(row("d.wav", "held", "test")) + "\n"
                                              + json.dumps(row("f.wav", "pkg", "train")) + "\n")
    s = caption_splits(tmp_path / "manifest.jsonl")
    assert [r["path"] for r in s["train"]] == ["a.wav"]
    assert [r["path"] for r in s["val"]] == ["b.wav"]
    assert [r["path"] for r in s["benchmark"]] == ["d.wav", "f.wav"]


def test_encode_appends_the_stop_token_within_max_tokens():
    vocab = vocabulary(["a dog barking"])
    assert vocab[-1] == 50256
    (seq,) = encode(["a dog barking"], vocab, max_tokens=3)
    assert len(seq) == 3 and seq[-1] == len(vocab) - 1


def test_tiny_captioner_learns_three_sounds():
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((3, 16)).astype(np.float32)
    names = ["a dog barking", "rain falling on a roof", "a car horn honking"]
    emb = np.concatenate([c + 0.1 * rng.standard_normal((20, 16)).astype(np.float32) for c in centres])
    caps = [[names[i // 20]] for i in range(60)]
    args = parse_args(["--manifest", "-", "--steps", "120", "--batch", "16", "--eval-every", "60", "--width", "32",
                       "--layers", "1", "--heads", "2", "--mapper-layers", "1", "--prefix-length", "2",
                       "--max-tokens", "10", "--lr", "3e-3", "--dropout", "0"])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)            # as the CLI trains; a tiny model loses time to a second thread
    try:
        captioner, history = train_captioner(emb, caps, centres, [[n] for n in names], args, log=lambda s: None)
    finally:
        torch.set_num_threads(threads)
    assert [h["step"] for h in history] == [60, 120]
    assert captioner.caption(centres) == names
    assert captioner.caption(centres, beam=3) == names
