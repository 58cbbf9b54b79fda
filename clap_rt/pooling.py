"""How the windows of one clip become one clip embedding.

A clip longer than the model window is cut into several windows (`audio.fit_windows`). Their
embeddings are combined in one of two ways:

- "loudest" (the default): the embedding of the window with the most mel power. A 3 s drum
  sample gives a window on the hit and one on its fading tail; averaged in, the tail dilutes
  the sound that names the clip. Chosen on the left-out-soundfont validation (bundled recipe:
  zero-shot top-1 54.7% against 53.4% for the mean; README, *Loudest window*).
- "mean": the re-normalised mean of all window embeddings (steady sounds, ambiences).

Enrolment (`clap_rt.enrol`) keeps every window that holds the sound (`sound_windows`): the
windows within SOUND_WINDOW_DB of the loudest, not the silence or the faded tail around it.
"""
from __future__ import annotations

from typing import Callable, Iterable

import numpy as np

POOLINGS = ("loudest", "mean")
# A window this far (dB of mean mel power) below the clip's loudest holds the clip's silence or
# fading tail rather than its sound; a 1 s hit in a 3 s file leaves such windows around it.
SOUND_WINDOW_DB = 10.0


def window_power(mel_db: np.ndarray) -> np.ndarray:
    """(W, n_mels, T) dB log-mel windows -> (W,) mean mel power of each window (linear units)."""
    m = np.asarray(mel_db, dtype=np.float64)
    return np.mean(10.0 ** (m / 10.0), axis=(1, 2))


def selected_windows(mel_db: np.ndarray, pooling: str = "loudest") -> np.ndarray:
    """(W, n_mels, T) dB windows of one clip -> indices of the windows whose embeddings make
    the clip's (`pooling`: one of POOLINGS), so that callers encode only those."""
    if pooling == "loudest":
        return np.array([int(np.argmax(window_power(mel_db)))])
    if pooling == "mean":
        return np.arange(len(mel_db))
    raise ValueError(f"pooling: expected one of {', '.join(POOLINGS)}, got {pooling!r}")


def pool_windows(window_emb: np.ndarray, mel_db: np.ndarray, pooling: str = "loudest") -> np.ndarray:
    """(W, D) unit-norm window embeddings of one clip and its (W, n_mels, T) dB windows ->
    (D,) unit-norm clip embedding: the re-normalised mean of the `selected_windows`."""
    return _unit(window_emb[selected_windows(mel_db, pooling)].mean(axis=0))


def pool_batches(mel_batches: Iterable[np.ndarray], embed: Callable[[np.ndarray], np.ndarray],
                 pooling: str = "loudest") -> np.ndarray:
    """(B, n_mels, T) dB window batches of one clip, in order, and `embed` ((B, n_mels, T) ->
    (B, D) unit-norm) -> (D,) unit-norm clip embedding, that of `pool_windows` over all the
    windows, holding one batch at a time: a file of any length in bounded memory."""
    if pooling not in POOLINGS:
        raise ValueError(f"pooling: expected one of {', '.join(POOLINGS)}, got {pooling!r}")
    loudest, loudest_power, total = None, -np.inf, None
    for mel in mel_batches:
        if pooling == "loudest":         # the first window of the highest power, as np.argmax
            power = window_power(mel)
            i = int(np.argmax(power))
            if power[i] > loudest_power:
                loudest, loudest_power = mel[i:i + 1].copy(), power[i]
        else:
            e = embed(mel).sum(axis=0)
            total = e if total is None else total + e
    if pooling == "loudest":
        total = embed(loudest)[0]
    return _unit(total)


def _unit(e: np.ndarray) -> np.ndarray:
    return (e / max(float(np.linalg.norm(e)), 1e-12)).astype(np.float32)


def sound_windows(mel_db: np.ndarray, within_db: float = SOUND_WINDOW_DB) -> np.ndarray:
    """(W, n_mels, T) dB windows of one clip -> sorted indices of the windows whose mean mel
    power is within `within_db` dB of the loudest window's (at least that one)."""
    power_db = 10.0 * np.log10(np.maximum(window_power(mel_db), 1e-30))
    return np.flatnonzero(power_db >= power_db.max() - within_db)
