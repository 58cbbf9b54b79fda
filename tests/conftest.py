"""Shared fixtures: a tiny random clap_rt model folder and generated audio files (tests/fakes.py)."""
from __future__ import annotations

import os

import numpy as np
import pytest
import soundfile as sf
import torch

from fakes import tone

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def tiny_config():
    """clap-rt-small's recipe with tiny towers: fast enough for every test."""
    from clap_rt.config import small_default
    cfg = small_default()
    cfg.name = "tiny-test"
    cfg.audio.sfx_cnn.channels = (8, 16, 16, 32)
    cfg.audio.sfx_cnn.aisfx_input = False
    cfg.text.hf_config = dict(cfg.text.hf_config, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                              intermediate_size=64)
    cfg.text.pretrained = ""
    cfg.projection.dim = 16
    return cfg


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A saved random tiny model (MiniLM's WordPiece vocabulary, 32-wide BERT, 8-32 channel CNN)."""
    from clap_rt.checkpoints import pretrained_tokenizer_dir, save_model
    from clap_rt.config import small_default
    from clap_rt.model import CLAP
    from clap_rt.tokenizer import TextTokenizer
    torch.manual_seed(0)
    cfg = tiny_config()
    model = CLAP(cfg).eval()
    tok = TextTokenizer.from_dir(pretrained_tokenizer_dir(small_default()), cfg.text)
    out = tmp_path_factory.mktemp("tiny_model")
    save_model(model, out, tok)
    return out


@pytest.fixture(scope="session")
def audio_dir(tmp_path_factory):
    """A folder of small wav files: two tones, a noise burst, a long clip, a stereo clip."""
    d = tmp_path_factory.mktemp("audio")
    rng = np.random.default_rng(0)
    sf.write(d / "low.wav", tone(220, 1.0), 44100)
    sf.write(d / "high.wav", tone(3000, 1.5, sr=22050), 22050)
    sf.write(d / "noise.flac", (0.1 * rng.standard_normal(44100)).astype(np.float32), 44100)
    sf.write(d / "long.wav", tone(440, 5.0) + 0.05 * rng.standard_normal(5 * 44100).astype(np.float32), 44100)
    return d
