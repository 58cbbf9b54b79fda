"""Turning decoded audio into corpus clips: mono 44.1 kHz, silence trimmed, 1-10 s pieces.

Decoding is `clap_rt.audio.load_audio(source, SAMPLE_RATE)`, as for every other audio file.
"""
from __future__ import annotations

import os

import numpy as np

SAMPLE_RATE = 44_100  # Hz, of every clip the corpus writes (and the GM renderings, the noise)
MIN_SECONDS, MAX_SECONDS = 1.0, 10.0
_FRAME = SAMPLE_RATE // 100  # 10 ms analysis frames
_SILENT_DBFS = -55.0  # a clip whose loudest 10 ms frame is below this is dropped as near-silent
_TRIM_BELOW_PEAK_DB = 45.0  # frames this far under the loudest frame count as silence at the ends
_MIN_SOUND_SECONDS = 0.05  # less sound than this is a click, not an event


def frame_db(audio: np.ndarray) -> np.ndarray:
    """(T,) -> (T // 10 ms,) RMS level of each 10 ms frame in dBFS."""
    n = len(audio) // _FRAME
    frames = audio[: n * _FRAME].reshape(n, _FRAME)
    return 10 * np.log10(np.mean(frames * frames, axis=1) + 1e-12)


def trim(audio: np.ndarray) -> np.ndarray | None:
    """Cut leading/trailing silence (20 ms kept either side); None when the audio is near-silent."""
    if len(audio) < _FRAME:
        return None
    db = frame_db(audio)
    peak = db.max()
    if peak < _SILENT_DBFS:
        return None
    loud = np.flatnonzero(db > max(peak - _TRIM_BELOW_PEAK_DB, _SILENT_DBFS - 10))
    if (loud[-1] - loud[0] + 1) * _FRAME < _MIN_SOUND_SECONDS * SAMPLE_RATE:
        return None
    start = max(0, (loud[0] - 2) * _FRAME)
    end = min(len(audio), (loud[-1] + 3) * _FRAME)
    return audio[start:end]


def make_clips(audio: np.ndarray, max_pieces: int) -> list[np.ndarray]:
    """(T,) mono 44.1 kHz -> up to `max_pieces` clips of 1-10 s each.

    Long audio is cut into equal pieces of at most 10 s, each trimmed again; short sounds (a drum
    hit) are padded with trailing silence to 1 s rather than dropped.
    """
    audio = trim(audio)
    if audio is None:
        return []
    max_len = int(MAX_SECONDS * SAMPLE_RATE)
    n_pieces = -(-len(audio) // max_len)
    bounds = np.linspace(0, len(audio), n_pieces + 1).astype(int)
    clips = []
    for a, b in zip(bounds[:-1], bounds[1:]):
        piece = trim(audio[a:b]) if n_pieces > 1 else audio
        if piece is None:
            continue
        if len(piece) < MIN_SECONDS * SAMPLE_RATE:
            if n_pieces > 1:
                continue  # a short tail of a long recording: not an event of its own
            piece = np.pad(piece, (0, int(MIN_SECONDS * SAMPLE_RATE) - len(piece)))
        clips.append(piece)
        if len(clips) == max_pieces:
            break
    return clips


def write_clip(path: str, audio: np.ndarray) -> float:
    """Write (T,) float audio as 16-bit mono 44.1 kHz WAV (peak-limited to 0.99); returns seconds."""
    import soundfile as sf

    peak = float(np.abs(audio).max())
    if peak > 0.99:
        audio = audio * (0.99 / peak)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    sf.write(path, audio, SAMPLE_RATE, subtype="PCM_16")
    return len(audio) / SAMPLE_RATE
