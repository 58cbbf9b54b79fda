"""A toy CLAP (tiny CNN + tiny BERT) on synthetic sounds, shared by the train/ tests.

Also the headline test: a short run of `train.train.main` separates the synthetic classes.
"""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

SR = 8000
TEMPLATE = "the sound of {}"
CLASSES = {
    "low tone": ["low tone", "a low tone", "a deep hum", "a low pitched sine tone"],
    "high beep": ["high beep", "a high beep", "high pitched beeping", "short high beeps"],
    "white noise": ["white noise", "a hiss of static", "noisy hiss", "broadband white noise"],
    "chirp": ["chirp", "a rising chirp", "a chirp sweeping up", "a whistle going up in pitch"],
    "clicks": ["clicks", "a series of clicks", "clicking", "rapid ticking clicks"],
}


def synth(label: str, rng: np.random.Generator) -> np.ndarray:
    """One synthetic clip of `label`, 0.6-1.4 s at 8 kHz, random level and parameters."""
    n = int(SR * rng.uniform(0.6, 1.4))
    t = np.arange(n) / SR
    if label == "low tone":
        x = np.sin(2 * np.pi * rng.uniform(120, 400) * t)
    elif label == "high beep":
        rate = rng.uniform(3, 8)
        x = np.sin(2 * np.pi * rng.uniform(2000, 3500) * t) * (np.sin(2 * np.pi * rate * t) > 0)
    elif label == "white noise":
        x = rng.standard_normal(n) * 0.5
    elif label == "chirp":
        f0, f1 = rng.uniform(200, 600), rng.uniform(2500, 3800)
        x = np.sin(2 * np.pi * (f0 * t + (f1 - f0) * t ** 2 / (2 * t[-1])))
    else:
        x = np.zeros(n)
        period = int(SR / rng.uniform(5, 15))
        x[::period] = 1.0
        x = np.convolve(x, np.hanning(16), mode="same")
    x = x * 10 ** (rng.uniform(-20, 0) / 20) + rng.standard_normal(n) * 1e-3
    return (0.5 * x / max(1e-9, np.abs(x).max())).astype(np.float32)


def write_dataset(root: Path, per_class_train: int = 24, per_class_test: int = 8, seed: int = 0) -> Path:
    """Wav files + manifest.jsonl (splits train / test) under root; returns the manifest."""
    import soundfile as sf
    rng = np.random.default_rng(seed)
    (root / "wav").mkdir(parents=True, exist_ok=True)
    rows = []
    for split, n in (("train", per_class_train), ("test", per_class_test)):
        for label, caps in CLASSES.items():
            for i in range(n):
                rel = f"wav/{split}-{label.replace(' ', '_')}-{i}.wav"
                sf.write(root / rel, synth(label, rng), SR)
                rows.append({"path": rel, "caption": caps[0], "captions": caps, "split": split,
                             "label": label, "source": "synthetic"})
    manifest = root / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return manifest


def write_tokenizer(folder: Path) -> int:
    """A WordLevel tokenizer over the toy vocabulary as folder/tokenizer.json; returns vocab size."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers
    words = sorted({w for caps in CLASSES.values() for c in caps for w in c.lower().split()}
                   | set(TEMPLATE.replace("{}", "").split()) | {"and"})
    vocab = {"[PAD]": 0, "[UNK]": 1, **{w: i + 2 for i, w in enumerate(words)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    folder.mkdir(parents=True, exist_ok=True)
    tok.save(str(folder / "tokenizer.json"))
    return len(vocab)


def toy_model_config(vocab_size: int, dim: int = 32):
    from clap_rt.config import (AudioEncoderConfig, FrontendConfig, ModelConfig, ProjectionConfig,
                                SfxCNNConfig, TextEncoderConfig)
    return ModelConfig(
        name="toy",
        frontend=FrontendConfig(sample_rate=SR, clip_seconds=1.0, n_fft=256, win_length=256, hop_length=128,
                                n_mels=32, fmin=0.0, fmax=4000.0),
        audio=AudioEncoderConfig(kind="sfx_cnn", sfx_cnn=SfxCNNConfig(channels=(8, 16, 32, 32), aisfx_input=False)),
        text=TextEncoderConfig(kind="bert", hf_config=dict(
            vocab_size=vocab_size, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
            intermediate_size=64, max_position_embeddings=32, type_vocab_size=1, pad_token_id=0,
            hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0), pooling="mean", max_length=16),
        projection=ProjectionConfig(kind="msclap", dim=dim, dropout=0.0),
        prompt_template=TEMPLATE,
    )


def make_toy(root: Path, **kw) -> dict:
    """Dataset, tokenizer and model-config files for the toy; returns their paths."""
    manifest = write_dataset(root / "data", **kw)
    vocab = write_tokenizer(root / "tok")
    cfg_path = root / "toy_model.json"
    cfg_path.write_text(json.dumps(toy_model_config(vocab).to_dict()))
    return {"manifest": str(manifest), "tokenizer": str(root / "tok"), "model_config": str(cfg_path),
            "cache": str(root / "cache")}


def toy_args(paths: dict, out: Path, *extra: str) -> list:
    return ["--manifest", paths["manifest"], "--model-config", paths["model_config"],
            "--tokenizer", paths["tokenizer"], "--cache-dir", paths["cache"], "--out-dir", str(out),
            "--eval-split", "test", "--no-progress", "--torch-threads", "1", *extra]


def test_toy_training_separates_synthetic_classes(tmp_path):
    from train.train import main
    paths = make_toy(tmp_path)
    t0 = time.time()
    rc = main(toy_args(paths, tmp_path / "run", "--steps", "150", "--batch-size", "32", "--lr", "3e-3",
                       "--warmup-steps", "10", "--log-every", "10", "--checkpoint-every", "0", "--no-amp"))
    seconds = time.time() - t0
    assert rc == 0
    result = json.loads((tmp_path / "run" / "eval.json").read_text())
    top1 = result["eval"]["top1"]
    print(f"toy run: {seconds:.1f} s, eval {result['eval']}")
    assert result["eval"]["classes"] == 5 and result["eval"]["clips"] == 40
    assert top1 >= 0.90, f"held-out zero-shot top-1 {top1:.3f} < 0.90 after {seconds:.1f} s"
    assert (tmp_path / "run" / "confusion.png").stat().st_size > 1000
    assert seconds < 120, f"toy run took {seconds:.1f} s"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs an NVIDIA GPU")
def test_toy_training_under_torchrun_on_cuda_with_amp(tmp_path):
    """The GPU path of the same run: torchrun launcher, --device cuda, fp16 autocast + GradScaler."""
    paths = make_toy(tmp_path)
    run = tmp_path / "run"
    args = toy_args(paths, run, "--steps", "150", "--batch-size", "32", "--lr", "3e-3", "--warmup-steps", "10",
                    "--log-every", "10", "--checkpoint-every", "50", "--device", "cuda", "--amp")
    p = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "1",
                        "-m", "train.train", *args], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    assert json.loads((run / "train_config.json").read_text())["device"] == "cuda"
    result = json.loads((run / "eval.json").read_text())
    print(f"cuda toy run: eval {result['eval']}, last step {result['train']}")
    assert result["eval"]["top1"] >= 0.90, f"held-out zero-shot top-1 {result['eval']['top1']:.3f} < 0.90 on cuda"
