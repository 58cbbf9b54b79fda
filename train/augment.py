"""Augmentation of cached log-mel windows, in the dB domain (no audio is re-decoded).

The cache holds dB frames, so every waveform augmentation is applied as its exact or
expected effect on mel power P = 10^(dB/10):
    gain g dB          -> dB + g                       (exact, above the amin floor)
    additive noise N   -> 10 log10(P + P_noise)        (expected power of independent sources)
    mixing clips a, b  -> 10 log10(P_a + P_b)          (same), caption "X and Y"
    time shift         -> circular roll of the frames
    SpecAugment        -> bands / frame ranges set to the window's mean dB
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from .config import AugmentConfig

LN10_OVER_10 = np.log(10.0) / 10.0


def power_sum_db(a_db: np.ndarray, b_db: np.ndarray) -> np.ndarray:
    """10 log10(10^(a/10) + 10^(b/10)), computed stably (logaddexp in natural-log units)."""
    return (np.logaddexp(a_db * LN10_OVER_10, b_db * LN10_OVER_10) / LN10_OVER_10).astype(np.float32)


def mean_power_db(mel_db: np.ndarray) -> float:
    """Mean mel power of a window, in dB."""
    m = mel_db.astype(np.float64) * LN10_OVER_10
    top = m.max()
    return float((top + np.log(np.mean(np.exp(m - top)))) / LN10_OVER_10)


def add_noise(mel_db: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """Add noise `snr_db` below the window's mean power; flat across bands, power fluctuating
    per frame and band as the squared magnitude of complex Gaussian noise (exponential)."""
    level = mean_power_db(mel_db) - snr_db
    noise_db = level + 10.0 * np.log10(rng.exponential(size=mel_db.shape) + 1e-12)
    return power_sum_db(mel_db, noise_db)


def spec_mask(mel_db: np.ndarray, n: int, width: int, axis: int, rng: np.random.Generator) -> np.ndarray:
    """Set `n` random ranges (each 0..width long) along `axis` (0: mel bands, 1: frames) to the mean."""
    out = mel_db.copy()
    size = out.shape[axis]
    fill = float(out.mean())
    for _ in range(n):
        w = int(rng.integers(0, min(width, size) + 1))
        s = int(rng.integers(0, size - w + 1))
        if axis == 0:
            out[s:s + w, :] = fill
        else:
            out[:, s:s + w] = fill
    return out


def join_captions(a: str, b: str) -> str:
    return a if a == b else f"{a} and {b}"


class Augmenter:
    """Callable (mel (n_mels, T) dB, caption, rng, partner) -> (mel, caption)."""

    def __init__(self, cfg: AugmentConfig):
        self.cfg = cfg

    def __call__(self, mel: np.ndarray, caption: str, rng: np.random.Generator,
                 partner: Callable[[np.random.Generator], tuple[np.ndarray, str]] | None = None):
        c = self.cfg
        if partner is not None and c.mix_prob > 0 and rng.random() < c.mix_prob:
            other, other_cap = partner(rng)
            # Random relative level within +-6 dB so neither source always dominates.
            mel = power_sum_db(mel, other + rng.uniform(-6.0, 6.0))
            caption = join_captions(caption, other_cap)
        if c.gain_db > 0:
            mel = mel + np.float32(rng.uniform(-c.gain_db, c.gain_db))
        if c.noise_prob > 0 and rng.random() < c.noise_prob:
            mel = add_noise(mel, float(rng.uniform(*c.noise_snr_db)), rng)
        if c.shift_prob > 0 and rng.random() < c.shift_prob:
            mel = np.roll(mel, int(rng.integers(1, mel.shape[1])), axis=1) if mel.shape[1] > 1 else mel
        if c.freq_masks:
            mel = spec_mask(mel, c.freq_masks, c.freq_mask_width, 0, rng)
        if c.time_masks:
            mel = spec_mask(mel, c.time_masks, c.time_mask_width, 1, rng)
        return mel.astype(np.float32, copy=False), caption
