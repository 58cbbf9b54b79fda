"""Audio in: decode, mono mix, resample, and a deterministic fit to the model window."""
from __future__ import annotations

import os
from typing import BinaryIO, Iterable, Iterator

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
    return _soxr().resample(audio, sr_in, sr_out, quality="HQ").astype(np.float32, copy=False)


def _soxr():
    try:
        import soxr
    except ImportError as e:
        raise RuntimeError("resampling requires the soxr package (pip install soxr)") from e
    return soxr


# Seconds of audio decoded at a time: long files are read, resampled and windowed block by
# block, so memory does not grow with their length.
BLOCK_SECONDS = 10.0
# Samples (all channels) read at a time at most: a damaged header's sample rate (hundreds of
# MHz) would otherwise size a read buffer of gigabytes. 10 s of 8 channels at 48 kHz fit.
MAX_BLOCK_SAMPLES = 1 << 22


def _open_sound(source: str | os.PathLike | BinaryIO, name: str | None):
    """-> (an open soundfile.SoundFile, the name its errors use)."""
    import soundfile as sf
    if isinstance(source, (str, os.PathLike)):
        if not os.path.isfile(source):
            raise UserError(f"{source}: file not found")
        source = str(source)
    name = name or (source if isinstance(source, str) else "audio data")
    try:
        return sf.SoundFile(source), name
    except (sf.LibsndfileError, RuntimeError, TypeError) as e:
        raise UserError(f"{name}: cannot decode audio ({str(e).splitlines()[0]}); expected a "
                        f"sound file readable by libsndfile (wav, flac, ogg, mp3)")


def read_blocks(source: str | os.PathLike | BinaryIO, sample_rate: int, name: str | None = None,
                block_seconds: float = BLOCK_SECONDS, finite: bool = True) -> Iterator[np.ndarray]:
    """Decode a sound file block by block -> (k,) float32 mono blocks at `sample_rate` Hz.

    The blocks joined equal the whole file resampled at once (soxr's streaming resampler gives
    the same samples); at most about `block_seconds` of audio is held at a time. `source` and
    `name` as for `load_audio`; every decoding problem is a UserError naming it, raised by the
    block where it is found (a file cut short decodes up to the damage, then fails).
    finite: NaN / Inf samples are a UserError; False: they are passed on (a stream zeroes them).
    """
    import soundfile as sf
    f, name = _open_sound(source, name)
    with f:
        sr_in = f.samplerate
        resampler = None
        if sr_in != sample_rate:      # soxr's streaming resampler: the samples of resample()
            resampler = _soxr().ResampleStream(sr_in, sample_rate, 1, dtype="float32", quality="HQ")
        block = max(1, min(int(round(block_seconds * sr_in)), MAX_BLOCK_SAMPLES // f.channels))
        n_in = n_out = 0
        while True:
            try:
                data = f.read(block, dtype="float32", always_2d=True)     # (k, channels)
            except (sf.LibsndfileError, RuntimeError) as e:
                raise UserError(f"{name}: cannot decode audio after {n_in} samples "
                                f"({str(e).splitlines()[0]}); the file may be damaged")
            last = data.shape[0] < block
            if finite and not np.isfinite(data).all():
                raise UserError(f"{name}: audio contains NaN or Inf samples")
            n_in += data.shape[0]
            x = to_mono(data)
            if resampler is not None:
                x = resampler.resample_chunk(x, last=last)
            n_out += x.shape[0]
            if x.shape[0]:
                yield x
            if last:
                break
    if n_in == 0:
        raise UserError(f"{name}: empty audio; expected at least one sample")
    if n_out == 0:
        need = -(-sr_in // (2 * sample_rate))        # soxr rounds the output length
        raise UserError(f"{name}: too short: {n_in} sample(s) at {sr_in} Hz resample to none at "
                        f"{sample_rate} Hz; expected at least {need} samples")


def load_audio(source: str | os.PathLike | BinaryIO, sample_rate: int, name: str | None = None) -> np.ndarray:
    """Decode a sound file -> (n,) float32 mono at `sample_rate` Hz, in [-1, 1], n >= 1.

    `source` is a path, or a binary file object (e.g. io.BytesIO of a file held in memory);
    the UserErrors name `name`, by default the path (or "audio data"). For long files,
    `read_blocks` gives the same samples without holding them all.
    """
    return np.concatenate(list(read_blocks(source, sample_rate, name)))


# How a clip shorter than the model window fills it (see fit_windows; ModelConfig.short_clips).
SHORT_CLIPS = ("repeat", "centre")


def fit_windows(audio: np.ndarray, window: int, hop: int | None = None, short: str = "repeat") -> np.ndarray:
    """Cut (n,) audio into fixed windows -> (W, window) float32. Deterministic, no random crop.

    A clip shorter than the window gives one window: with `short="repeat"` the clip repeated
    (then zero-padded) to fill it, with `short="centre"` the clip once in the middle of silence,
    as a stream window holds a single hit. Long clips give windows every `hop` samples
    (default window // 2) plus one window aligned to the end, so every sample is covered and
    the same file always yields the same windows. `iter_windows` gives them one at a time.
    """
    return np.stack(list(iter_windows([audio], window, hop, short)))


def iter_windows(blocks: Iterable[np.ndarray], window: int, hop: int | None = None,
                 short: str = "repeat") -> Iterator[np.ndarray]:
    """The windows of `fit_windows` of the (k,) blocks joined, in order, each (window,) float32,
    holding at most one window and one block of the audio at a time."""
    if short not in SHORT_CLIPS:
        raise ValueError(f"short: expected one of {SHORT_CLIPS}, got {short!r}")
    hop = hop or max(1, window // 2)
    if window < 1 or hop < 1:
        raise ValueError(f"window, hop: expected integers >= 1, got {window}, {hop}")
    buf, first = np.zeros(0, np.float32), 0      # buf holds samples [first, n)
    n, start, last_start = 0, 0, None
    for b in blocks:
        buf = np.concatenate([buf, np.asarray(b, np.float32)])
        n += b.shape[0]
        while start + window <= n:
            last_start = start
            yield buf[start - first:start - first + window].copy()
            start += hop
        # Kept: the next window's samples and the last `window` (the end-aligned window's).
        keep = max(0, min(start, n - window))
        buf, first = buf[keep - first:], keep
    if n == 0:
        raise ValueError("audio: expected at least one sample")
    if n < window:
        out = np.zeros(window, dtype=np.float32)
        if short == "centre":
            out[(window - n) // 2:(window - n) // 2 + n] = buf
        else:
            reps = window // n
            out[: reps * n] = np.tile(buf, reps)
        yield out
    elif last_start != n - window:
        yield buf[n - window - first:].copy()


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
