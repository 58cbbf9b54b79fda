"""The default background of enrolment: windows of "nothing special" made in code.

A label enrolled from examples gets its thresholds from how it scores its own examples against
how it scores audio without it (`clap_rt.enrol`). Without recordings of the user's scene
(`--background FILES`), that audio is this fixed set, the same on every machine: digital
silence; white, pink and brown noise at -50, -35 and -20 dBFS RMS; 50 Hz and 60 Hz mains hum
with harmonics over faint pink noise. The stream's background prompts ("background noise",
"silence", ...) still compete with every label at run time; these windows set where a label's
score sits when the scene holds none of its sound.
"""
from __future__ import annotations

import numpy as np

NOISE_LEVELS_DBFS = (-50.0, -35.0, -20.0)
NOISE_COLOURS = {"white": 0.0, "pink": 1.0, "brown": 2.0}     # power spectrum ~ 1 / f^exponent
HUM_HZ = (50.0, 60.0)
HUM_LEVEL_DBFS = -30.0
SEED = 0
DESCRIPTION = ("default: silence; white, pink and brown noise at -50, -35, -20 dBFS; "
               "50 / 60 Hz hum at -30 dBFS")


def coloured_noise(n: int, exponent: float, rng: np.random.Generator) -> np.ndarray:
    """(n,) float64 noise of unit RMS whose power spectrum falls as 1 / f^exponent."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n)
    f[0] = f[1]                        # no infinite gain at DC
    x = np.fft.irfft(spec / f ** (exponent / 2), n)
    return x / np.sqrt(np.mean(x ** 2))


def default_background(n_samples: int, sample_rate: int) -> np.ndarray:
    """(W, n_samples) float32 windows of background audio at `sample_rate` Hz (see the module)."""
    rng = np.random.default_rng(SEED)
    t = np.arange(n_samples) / sample_rate
    out = [np.zeros(n_samples)]
    for exponent in NOISE_COLOURS.values():
        for level in NOISE_LEVELS_DBFS:
            out.append(10 ** (level / 20) * coloured_noise(n_samples, exponent, rng))
    for hz in HUM_HZ:
        hum = sum(np.sin(2 * np.pi * hz * k * t) / k for k in (1, 2, 3))
        hum = 10 ** (HUM_LEVEL_DBFS / 20) * hum / np.sqrt(np.mean(hum ** 2))
        out.append(hum + 10 ** (-55 / 20) * coloured_noise(n_samples, 1.0, rng))
    return np.clip(np.stack(out), -1.0, 1.0).astype(np.float32)
