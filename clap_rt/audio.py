"""Audio in: decode, mono mix, resample, and a deterministic fit to the model window."""
from __future__ import annotations

import os
from typing import BinaryIO

import numpy as np

from .errors import UserError

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".mp3", ".aiff", ".aif", ".au", ".w64", ".opus")


def to_mono(audio: np.ndarray) -> np.ndarray:
    """(n,) or (n, channels) -> (n,) float32, channels averaged."""
    audio = np.asarray(audio)
    if audio.ndim == 2:
        audio = audio.mean(axis=1)
    elif audio.ndim != 1:
        raise ValueError(f"audio: expected (n,) or (n, channels), got shape {audio.shape}")
    return audio.astype(np.float32, copy=False)


def resample(audio: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Resample (n,) float32 with soxr (high quality); identity when the rates match."""
    if sr_in == sr_out:
        return audio.astype(np.float32, copy=False)
    try:
        import soxr
    except ImportError as e:
        raise RuntimeError("resampling requires the soxr package (pip install soxr)") from e
    return soxr.resample(audio, sr_in, sr_out, quality="HQ").astype(np.float32, copy=False)


def load_audio(source: str | os.PathLike | BinaryIO, sample_rate: int, name: str | None = None) -> np.ndarray:
    """Decode a sound file -> (n,) float32 mono at `sample_rate` Hz, in [-1, 1].

    `source` is a path, or a binary file object (e.g. io.BytesIO of a file held in memory);
    the UserErrors name `name`, by default the path (or "audio data").
    """
    import soundfile as sf
    if isinstance(source, (str, os.PathLike)):
        if not os.path.isfile(source):
            raise UserError(f"{source}: file not found")
        source = str(source)
    name = name or (source if isinstance(source, str) else "audio data")
    try:
        data, sr = sf.read(source, dtype="float32", always_2d=True)   # (n, channels)
    except (sf.LibsndfileError, RuntimeError, TypeError) as e:
        raise UserError(f"{name}: cannot decode audio ({str(e).splitlines()[0]}); expected a "
                        f"sound file readable by libsndfile (wav, flac, ogg, mp3)")
    if data.shape[0] == 0:
        raise UserError(f"{name}: empty audio; expected at least one sample")
    if not np.isfinite(data).all():
        raise UserError(f"{name}: audio contains NaN or Inf samples")
    return resample(to_mono(data), sr, sample_rate)


# How a clip shorter than the model window fills it (see fit_windows; ModelConfig.short_clips).
SHORT_CLIPS = ("repeat", "centre")


def fit_windows(audio: np.ndarray, window: int, hop: int | None = None, short: str = "repeat") -> np.ndarray:
    """Cut (n,) audio into fixed windows -> (W, window) float32. Deterministic, no random crop.

    A clip shorter than the window gives one window: with `short="repeat"` the clip repeated
    (then zero-padded) to fill it, with `short="centre"` the clip once in the middle of silence,
    as a stream window holds a single hit. Long clips give windows every `hop` samples
    (default window // 2) plus one window aligned to the end, so every sample is covered and
    the same file always yields the same windows.
    """
    if short not in SHORT_CLIPS:
        raise ValueError(f"short: expected one of {SHORT_CLIPS}, got {short!r}")
    n = audio.shape[0]
    if n == 0:
        raise ValueError("audio: expected at least one sample")
    if n <= window:
        out = np.zeros(window, dtype=np.float32)
        if short == "centre":
            start = (window - n) // 2
            out[start:start + n] = audio
        else:
            reps = window // n
            out[: reps * n] = np.tile(audio, reps)
        return out[None]
    hop = hop or window // 2
    starts = list(range(0, n - window + 1, hop))
    if starts[-1] != n - window:
        starts.append(n - window)
    return np.stack([audio[s:s + window] for s in starts]).astype(np.float32, copy=False)


def find_audio_files(paths: list[str]) -> list[str]:
    """Expand folders (recursively, sorted) into audio files; plain files are kept as given."""
    out: list[str] = []
    for p in paths:
        if os.path.isdir(p):
            for root, dirs, files in os.walk(p):
                dirs.sort()
                out += [os.path.join(root, f) for f in sorted(files) if f.lower().endswith(AUDIO_EXTENSIONS)]
        else:
            out.append(p)
    return out
