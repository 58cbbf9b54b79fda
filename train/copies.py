"""Altered copies of training clips, made on the waveform before the features are cached.

The audio tower's features depend on level, noise and where a hit sits in its window; the
corpus is studio-clean, peaks 10-15 dB below field recordings in its General MIDI renders, and
its short files fill windows repeated. Copies show the model the other cases (docs/experiments.md
has what each option changed).
"""
from __future__ import annotations

import numpy as np

from train.config import CopiesConfig
from train.corpus.audio import frame_db
from train.corpus.manifest import key_hash
from train.corpus.noise import coloured_noise

# Peak level of a copy, drawn per copy (dBFS): without copies at other levels the projection
# learns "quiet" as part of "hi-hat".
LEVEL_RANGE_DB = (-30.0, -1.0)
# Noise in copies: without it the model scores pink noise + hum at 6 dB SNR as background and
# misses every event of bench/stream.py.
NOISE_SNR_DB = (0.0, 20.0)


def copies_tag(plan: CopiesConfig) -> list[str]:
    """Parts of the feature cache's folder name for the copies of `plan`."""
    named = (("copies", plan.copies), ("noise", plan.copy_noise), ("place", plan.copy_place))
    return [f"{name}{value:g}" for name, value in named if value]


def clip_copies(audio: np.ndarray, key: str, plan: CopiesConfig, sample_rate: int = 44100,
                window: int = 88_200) -> list[np.ndarray]:
    """`plan.copies` versions of a (T,) clip, drawn by a generator seeded with `key` (the same
    copies on every run): each with probability `copy_place` set alone into a window of
    `window` samples (see `place_in_window`), with probability `copy_noise` mixed with coloured
    noise at NOISE_SNR_DB, then its peak set to a level drawn from LEVEL_RANGE_DB (dBFS)."""
    rng = np.random.default_rng(key_hash(key))
    out = []
    for _ in range(plan.copies):
        version = audio
        if plan.copy_place and rng.random() < plan.copy_place:
            version = place_in_window(version, window, rng)
        if plan.copy_noise and rng.random() < plan.copy_noise:
            # SNR against the clip's loud part (10 ms frames within 20 dB of its peak frame), so
            # a short hit padded with silence is not drowned by its own padding's share.
            db = frame_db(version)
            signal = np.mean(10 ** (db[db >= db.max() - 20] / 10)) if len(db) else np.mean(version ** 2)
            snr = rng.uniform(*NOISE_SNR_DB)
            version = version + np.sqrt(signal / 10 ** (snr / 10)) * coloured_noise(
                len(version), rng.uniform(0.0, 2.0), rng).astype(np.float32)
        peak_db = 20 * np.log10(max(float(np.abs(version).max()), 1e-6))
        out.append((version * 10 ** ((rng.uniform(*LEVEL_RANGE_DB) - peak_db) / 20)).astype(np.float32))
    return out


def place_in_window(audio: np.ndarray, window: int, rng: np.random.Generator) -> np.ndarray:
    """(T,) clip -> (window,): the clip once, starting at a random offset in silence, cut at the
    window's end (at most half of it, or of the window, lost). A stream window holds one hit
    wherever it fell, with background around it, whereas `fit_windows` repeats a short file
    to fill the window: copies placed this way show the model what the detector sees."""
    n = min(len(audio), window)
    start = int(rng.integers(0, window - n // 2 + 1))
    out = np.zeros(window, dtype=np.float32)
    piece = audio[:window - start]
    out[start:start + len(piece)] = piece
    return out
