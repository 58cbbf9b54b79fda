"""The default-model recipe end to end on a tiny synthetic corpus (real pretrained parts)."""
from __future__ import annotations

import json

import numpy as np
import soundfile as sf
import torch

import train.default_model as recipe
from clap_rt.checkpoints import load_model
from conftest import tone

CLASSES = {
    "low tone": ["a low tone", "a deep hum", "low pitched tone"],
    "noise": ["white noise", "hissing noise", "static noise"],
    "beep": ["a high beep", "a high pitched beep", "short high tone"],
}


def make_corpus(root, rng):
    """4 train, 2 val and 2 test clips per class; each split has its own source items."""
    rows = []
    for label, caps in CLASSES.items():
        for split, n in (("train", 4), ("val", 2), ("test", 2)):
            for i in range(n):
                if label == "low tone":
                    x = tone(rng.uniform(90, 160), 1.5)
                elif label == "noise":
                    x = (0.2 * rng.standard_normal(int(1.5 * 44100))).astype(np.float32)
                else:
                    x = tone(rng.uniform(3000, 5000), 1.5)
                path = f"clips/{label.replace(' ', '_')}_{split}_{i}.wav"
                (root / "clips").mkdir(exist_ok=True)
                sf.write(root / path, x, 44100)
                rows.append({"path": path, "caption": caps[i % 3], "captions": caps, "label": label,
                             "source": f"synth-{split}", "item": f"{label}-{split}-{i}", "split": split})
    (root / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_recipe_trains_projections_and_last_text_layer(tmp_path, monkeypatch):
    monkeypatch.setattr(recipe, "CACHE", tmp_path / "cache")
    torch.manual_seed(0)
    make_corpus(tmp_path, np.random.default_rng(0))
    out = tmp_path / "model"
    # --text-layers 1 runs the cached-state text path, which main() checks against the full
    # text tower (cosine >= 0.9999) before training.
    rc = recipe.main(["fit", str(tmp_path), "-o", str(out), "--steps", "60", "--batch", "3",
                      "--text-layers", "1", "--threads", "2"])
    assert rc == 0
    model, _ = load_model(out)
    meta = json.loads((out / "config.json").read_text())["meta"]
    assert meta["text_layers_trained"] == 1 and meta["pooling"] == "meanmax"
    test = meta["scores"]["test"]
    assert test["labels"] == 3 and test["clips"] == 6
    assert test["top1"] >= 5 / 6, f"held-out synthetic top-1 {test['top1']:.3f}"
    # Only the trained MiniLM layer is stored; the frozen ones come from the package.
    from safetensors import safe_open
    with safe_open(str(out / "model.safetensors"), "pt") as f:
        text_keys = [k for k in f.keys() if k.startswith("text.body.")]
    assert text_keys and all(k.startswith("text.body.encoder.layer.5.") for k in text_keys), text_keys[:3]
