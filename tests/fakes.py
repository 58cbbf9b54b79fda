"""What several test files share: generated audio, a fake embedder for the streaming tests,
a toy CLAP (tiny CNN + tiny BERT, synthetic sounds) for the train/ tests, and a tiny
transformers CLAP folder for the converter and bad-input tests."""
from __future__ import annotations

import json
import time
import types
from pathlib import Path

import numpy as np

from clap_rt.config import FrontendConfig
from clap_rt.frontend import mel_filterbank


# --- audio -----------------------------------------------------------------------------------

def tone(freq: float, seconds: float, sr: int = 44100, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


# --- a tone-band embedder for the streaming tests --------------------------------------------

# 16 kHz, 1 s windows, 10 ms frames: small enough for fast tests.
FE = FrontendConfig(sample_rate=16000, clip_seconds=1.0, n_fft=512, win_length=512, hop_length=160,
                    n_mels=32, fmin=0.0, fmax=8000.0, mel_scale="htk", mel_norm="slaney")


class FakeClap:
    """Maps "a tone at f Hz somewhere in the window" to the direction of the label for f.

    A label's presence is how far its mel band rises above the frame's median band (max over
    time, like a max-pooling audio tower); background prompts share one axis that is high
    when no label band is present. So decisions depend on the runtime, not on a model.
    """

    def __init__(self, bands: dict, fe: FrontendConfig = FE, delay: float = 0.0, logit_scale: float = 20.0,
                 event_thresholds: tuple = (0.5, 0.35)):
        self.frontend = fe
        self.sample_rate = fe.sample_rate
        self.config = types.SimpleNamespace(name="fake-tone-bands", event_thresholds=event_thresholds,
                                            short_clips="repeat")
        self.labels = list(bands)
        fb = mel_filterbank(fe)
        centres = (np.arange(fb.shape[1]) * fe.sample_rate / fe.n_fft) @ fb.T / fb.sum(axis=1)
        self.bins = [int(np.argmin(np.abs(centres - f))) for f in bands.values()]
        self.delay = delay
        self.logit_scale = logit_scale
        self.calls = 0

    def label_embeddings(self, texts, template=None) -> np.ndarray:
        d = len(self.labels) + 1
        out = np.zeros((len(texts), d), np.float32)
        for i, t in enumerate(texts):
            out[i, self.labels.index(t) if t in self.labels else d - 1] = 1.0
        return out

    def presence(self, mel: np.ndarray) -> np.ndarray:
        """(B, n_mels, T) -> (B, L) in [0, 1]."""
        rise = mel[:, self.bins, :] - np.median(mel, axis=1, keepdims=True)   # (B, L, T)
        return np.clip((rise.max(axis=2) - 10.0) / 10.0, 0.0, 1.0)

    def embed_mel(self, mel: np.ndarray) -> np.ndarray:
        self.calls += 1
        if self.delay:
            time.sleep(self.delay)
        p = self.presence(np.asarray(mel, np.float64))
        e = np.concatenate([p, 1.0 - p.max(axis=1, keepdims=True) + 0.05], axis=1)
        return (e / np.linalg.norm(e, axis=1, keepdims=True)).astype(np.float32)


def soundscape(events, seconds: float, rate: int = 16000, noise: float = 0.01, seed: int = 0) -> np.ndarray:
    """Noise with tones: events = [(freq_hz, onset_s, offset_s), ...] -> (n,) float32."""
    rng = np.random.default_rng(seed)
    x = noise * rng.standard_normal(int(seconds * rate))
    t = np.arange(x.shape[0]) / rate
    for f, on, off in events:
        m = (t >= on) & (t < off)
        x[m] += 0.3 * np.sin(2 * np.pi * f * t[m])
    return x.astype(np.float32)


# --- a toy CLAP on synthetic sounds for the train/ tests -------------------------------------

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


# --- a transformers CLAP folder for the converter and bad-input tests ------------------------

def tiny_hf_folder(path):
    """A random-init transformers ClapModel (3 Swin stages, shifted windows in two of them)
    + feature extractor + a word-level tokenizer, saved as transformers would."""
    import torch
    import transformers
    from tokenizers import Tokenizer, models, pre_tokenizers
    torch.manual_seed(0)
    audio = dict(spec_size=64, num_mel_bins=16, window_size=4, patch_size=4, patch_stride=[4, 4],
                 patch_embeds_hidden_size=8, depths=[2, 2, 2], num_attention_heads=[2, 2, 4], hidden_size=32)
    text = dict(vocab_size=99, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
                max_position_embeddings=40)
    ref = transformers.ClapModel(transformers.ClapConfig(audio_config=audio, text_config=text, projection_dim=12))
    ref.eval()
    with torch.no_grad():                     # zero biases / unit norms would hide naming mistakes
        for p in ref.parameters():
            p.add_(0.05 * torch.randn_like(p))
        bn = ref.audio_model.audio_encoder.batch_norm
        bn.running_mean.normal_()
        bn.running_var.uniform_(0.5, 2.0)
    ref.save_pretrained(path)
    transformers.ClapFeatureExtractor(feature_size=16, sampling_rate=8000, hop_length=80, max_length_s=2,
                                      fft_window_size=256, frequency_min=0, frequency_max=4000).save_pretrained(path)
    vocab = {w: i for i, w in enumerate(["<s>", "<pad>", "</s>", "<unk>", "a", "dog", "barks", "siren"])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.save(str(path / "tokenizer.json"))
    return ref
