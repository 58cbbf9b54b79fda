"""Fakes shared by the streaming tests: a deterministic tone-band embedder and a tiny model."""
from __future__ import annotations

import time
import types

import numpy as np

from clap_rt.config import FrontendConfig
from clap_rt.frontend import mel_filterbank

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


def test_fake_embedder_sees_only_its_band():
    from clap_rt.frontend import log_mel
    clap = FakeClap({"beep": 1000.0, "whistle": 3000.0})
    mel = log_mel(soundscape([(1000.0, 0.2, 0.6)], 1.0), FE)[None]
    p = clap.presence(mel.astype(np.float64))[0]
    assert p[0] == 1.0 and p[1] == 0.0, f"presence {p}"
