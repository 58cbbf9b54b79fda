"""Synthetic background clips: coloured noise captioned "background noise", made by our code.

Without them the corpus has no audio of *nothing happening*: every training clip holds a
named sound, so on a noisy but empty scene the model picks the nearest named sound (a low hum
read as a kick drum) and the detector's background prompts ("background noise", "silence")
never win. No recorded audio is involved: the clips are random noise, white to brown.

Also a program, run by the corpus builder as a FileTask command (like espeak-ng) from the
repository root:

    python -m train.corpus.noise SEED > clip.wav
"""
from __future__ import annotations

import io
import sys

import numpy as np

from .audio import SAMPLE_RATE

SLOPE_RANGE = (0.0, 2.0)           # power ~ 1/f^slope: white (0) .. pink (1) .. brown (2)
LEVEL_RANGE_DBFS = (-45.0, -15.0)  # RMS; quieter clips would be dropped as near-silent
SECONDS_RANGE = (2.0, 4.0)


def coloured_noise(n: int, slope: float, rng: np.random.Generator) -> np.ndarray:
    """(n,) unit-RMS noise whose power falls as 1/f^slope (0: white, 1: pink, 2: brown)."""
    spec = np.fft.rfft(rng.standard_normal(n))
    spec[1:] /= np.arange(1, len(spec)) ** (slope / 2)
    spec[0] = 0
    x = np.fft.irfft(spec, n)
    return x / (np.sqrt(np.mean(x ** 2)) + 1e-12)


def background_noise(n: int, rate: int, rng: np.random.Generator, level: float = 0.02) -> np.ndarray:
    """(n,) float32 pink noise (1/f power) plus a 50 Hz hum with harmonics, RMS `level`: the
    background of the streaming benchmark's scenes."""
    t = np.arange(n) / rate
    x = coloured_noise(n, 1.0, rng) + 0.3 * sum(np.sin(2 * np.pi * 50 * k * t) / k for k in (1, 2, 3))
    return (level * x / np.sqrt(np.mean(x ** 2))).astype(np.float32)


def background_clip(seed: int) -> np.ndarray:
    """(T,) float32 at SAMPLE_RATE: noise of a random colour, level and length, fixed by `seed`."""
    rng = np.random.default_rng(seed)
    n = int(rng.uniform(*SECONDS_RANGE) * SAMPLE_RATE)
    level = 10 ** (rng.uniform(*LEVEL_RANGE_DBFS) / 20)
    return (level * coloured_noise(n, rng.uniform(*SLOPE_RANGE), rng)).astype(np.float32)


if __name__ == "__main__":
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, background_clip(int(sys.argv[1])), SAMPLE_RATE, format="WAV", subtype="FLOAT")
    sys.stdout.buffer.write(buf.getvalue())
