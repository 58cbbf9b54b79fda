"""Log-mel frontend: audio -> (n_mels, T) dB frames, offline, batched and streaming.

One recipe (`clap_rt.config.FrontendConfig`) shared by training, export and the streaming
runtime; the frontend stays outside every network. The C++ extension `clap_rt._frontend`
(csrc/) does the work when it is built; the numpy code below is the executable
specification and the fallback (with one warning) when it is not.

Recipe, per frame t (samples at `fe.sample_rate`):
    x_pad   = reflect-pad n_fft//2 on both sides (if fe.center)
    frame_t = x_pad[t*hop : t*hop + n_fft] * hann_periodic(win_length) centred in n_fft
    S_t     = |rfft(frame_t)| ** power                       # (n_fft//2+1,)
    M_t     = mel_filterbank(fe) @ S_t                       # (n_mels,), built for fe.filterbank_rate
    dB_t    = 10 * log10(max(amin, M_t))                      # ref 1.0
    optional: dB = max(dB, dB.max() - top_db) over the whole clip (offline only)
Everything is computed in float64 and returned as float32: a float32 FFT is off by up to
0.16 dB in bands ~130 dB below a loud sine, which the parity target (1e-3 dB) does not allow.
"""
from __future__ import annotations

import importlib
import warnings
from typing import Optional

import numpy as np

from clap_rt.config import FrontendConfig, frames_for
from clap_rt.errors import UserError

__all__ = ["FrontendInputError", "mel_filterbank", "log_mel", "log_mel_reference", "StreamingLogMel"]


class FrontendInputError(UserError, ValueError):
    """Bad audio or config given to the frontend (a ValueError; the CLI exits with status 2)."""


# --- config and input checks -------------------------------------------------------------

def _check_config(fe: FrontendConfig) -> None:
    """One rule for the recipe: the fields only Python holds (the names mel_scale and mel_norm
    stand for, top_db's None) are checked here, the numbers by the C++ core's
    FrontendOptions::Validate, whose message (fields named as in FrontendConfig) is reported
    as the one-line FrontendInputError. Without the built extension (the numpy fallback) the
    numbers go unchecked."""
    def bad(field: str, expected: str) -> FrontendInputError:
        return FrontendInputError(f"FrontendConfig.{field}: expected {expected}, got {getattr(fe, field)!r}")

    if fe.mel_scale not in ("slaney", "htk"):
        raise bad("mel_scale", "'slaney' or 'htk'")
    if fe.mel_norm not in ("slaney", None):
        raise bad("mel_norm", "'slaney' or None")
    if fe.top_db is not None and not fe.top_db >= 0:
        raise bad("top_db", "None or a number >= 0")
    ext = _extension()
    if ext is not None:
        try:
            _cpp_options(fe, ext).validate()
        except ValueError as e:
            raise FrontendInputError(str(e).replace("FrontendOptions.", "FrontendConfig.", 1)) from None


def min_samples(fe: FrontendConfig) -> int:
    """Shortest signal the recipe accepts: reflect padding needs n_fft//2 + 1 samples."""
    return fe.n_fft // 2 + 1 if fe.center else 1


def _as_samples(audio, name: str, ndims: tuple = (1, 2)) -> np.ndarray:
    """Validate and convert samples to a C-contiguous float32 array (int16 is scaled by 1/32768)."""
    x = np.asarray(audio)
    if x.dtype == np.int16:
        x = x.astype(np.float32) / np.float32(32768.0)
    elif x.dtype in (np.float32, np.float64):
        x = np.ascontiguousarray(x, dtype=np.float32)
    else:
        raise FrontendInputError(f"{name}: expected float32, float64 or int16 samples, got dtype {x.dtype}")
    if x.ndim not in ndims:
        shapes = " or ".join({1: "(n,)", 2: "(B, n)"}[d] for d in ndims)
        raise FrontendInputError(f"{name}: expected shape {shapes}, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise FrontendInputError(f"{name}: expected finite samples, found NaN/Inf")
    return x


def _as_audio(audio, fe: FrontendConfig) -> np.ndarray:
    x = _as_samples(audio, "audio")
    if x.shape[-1] == 0 or x.size == 0:
        raise FrontendInputError(f"audio: expected at least one sample, got an empty array of shape {x.shape}")
    if x.shape[-1] < min_samples(fe):
        raise FrontendInputError(f"audio: expected at least {min_samples(fe)} samples for centred reflect "
                                 f"padding (n_fft={fe.n_fft}), got {x.shape[-1]}")
    return x


# --- the specification -----------------------------------------------------------------

def _hz_to_mel(hz: np.ndarray, htk: bool) -> np.ndarray:
    hz = np.asarray(hz, dtype=np.float64)
    if htk:
        return 2595.0 * np.log10(1.0 + hz / 700.0)
    # Slaney: linear below 1 kHz (200/3 Hz per mel), logarithmic above (27 mels per factor 6.4)
    f_sp, min_log_hz, logstep = 200.0 / 3, 1000.0, np.log(6.4) / 27.0
    min_log_mel = min_log_hz / f_sp
    log_part = min_log_mel + np.log(np.maximum(hz, min_log_hz) / min_log_hz) / logstep
    return np.where(hz >= min_log_hz, log_part, hz / f_sp)


def _mel_to_hz(mel: np.ndarray, htk: bool) -> np.ndarray:
    mel = np.asarray(mel, dtype=np.float64)
    if htk:
        return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)
    f_sp, min_log_hz, logstep = 200.0 / 3, 1000.0, np.log(6.4) / 27.0
    min_log_mel = min_log_hz / f_sp
    return np.where(mel >= min_log_mel, min_log_hz * np.exp(logstep * (mel - min_log_mel)), f_sp * mel)


def _mel_filterbank64(fe: FrontendConfig) -> np.ndarray:
    """(n_mels, n_fft//2+1) float64 triangular filters on the mel scale."""
    htk = fe.mel_scale == "htk"
    rate = fe.filterbank_rate
    bin_hz = np.arange(fe.n_fft // 2 + 1) * (rate / fe.n_fft)  # (n_bins,)
    edges_hz = _mel_to_hz(np.linspace(_hz_to_mel(fe.fmin, htk), _hz_to_mel(fe.fmax, htk), fe.n_mels + 2), htk)
    widths = np.diff(edges_hz)  # (n_mels+1,)
    rising = (bin_hz[None, :] - edges_hz[:-2, None]) / widths[:-1, None]  # (n_mels, n_bins)
    falling = (edges_hz[2:, None] - bin_hz[None, :]) / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(rising, falling))
    if fe.mel_norm == "slaney":  # constant energy per filter: divide by the triangle's width in Hz
        weights *= (2.0 / (edges_hz[2:] - edges_hz[:-2]))[:, None]
    return weights


def mel_filterbank(fe: FrontendConfig) -> np.ndarray:
    """Mel filterbank of `fe`, (n_mels, n_fft//2+1) float32.

    Built for `fe.filterbank_rate` Hz; equals librosa.filters.mel(sr=fe.filterbank_rate,
    n_fft, n_mels, fmin, fmax, htk=fe.mel_scale == "htk", norm=fe.mel_norm).
    """
    _check_config(fe)
    return _mel_filterbank64(fe).astype(np.float32)


def _window64(fe: FrontendConfig) -> np.ndarray:
    """Periodic Hann of win_length, zero-padded (centred) to n_fft: (n_fft,) float64."""
    hann = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(fe.win_length) / fe.win_length)
    window = np.zeros(fe.n_fft)
    left = (fe.n_fft - fe.win_length) // 2
    window[left:left + fe.win_length] = hann
    return window


def _frames_to_db(frames: np.ndarray, window: np.ndarray, filterbank: np.ndarray,
                  fe: FrontendConfig) -> np.ndarray:
    """(..., T, n_fft) float64 frames -> (..., n_mels, T) float32 dB (no top_db)."""
    spectrum = np.fft.rfft(frames * window, axis=-1)  # (..., T, n_bins) complex128
    power = spectrum.real ** 2 + spectrum.imag ** 2
    if fe.power != 2.0:
        power = power ** (fe.power / 2.0)
    mel = power @ filterbank.T  # (..., T, n_mels)
    db = 10.0 * np.log10(np.maximum(fe.amin, mel))
    return np.swapaxes(db, -1, -2).astype(np.float32)


def _clamp_top_db(db: np.ndarray, fe: FrontendConfig) -> np.ndarray:
    """Per clip: max(dB, max over the clip - top_db). (..., n_mels, T) -> same."""
    if fe.top_db is None:
        return db
    peak = db.max(axis=(-2, -1), keepdims=True)
    return np.maximum(db, peak - np.float32(fe.top_db))


def log_mel_reference(audio, fe: FrontendConfig) -> np.ndarray:
    """Numpy executable specification of the frontend.

    audio: (n,) or (B, n) samples at fe.sample_rate (float32/float64, or int16 scaled by 1/32768).
    Returns (n_mels, T) or (B, n_mels, T) float32 dB, T = frames_for(n, fe). top_db, if set,
    clamps each clip relative to its own maximum.
    """
    _check_config(fe)
    x = _as_audio(audio, fe).astype(np.float64)
    if fe.center:
        pad = fe.n_fft // 2
        x = np.pad(x, [(0, 0)] * (x.ndim - 1) + [(pad, pad)], mode="reflect")
    if x.shape[-1] < fe.n_fft:  # not centred and shorter than one frame
        return np.zeros(x.shape[:-1] + (fe.n_mels, 0), np.float32)
    frames = np.lib.stride_tricks.sliding_window_view(x, fe.n_fft, axis=-1)[..., ::fe.hop_length, :]
    db = _frames_to_db(frames, _window64(fe), _mel_filterbank64(fe), fe)  # (..., n_mels, T)
    return _clamp_top_db(db, fe)


# --- backend selection -------------------------------------------------------------------

_WARNED = False


def _extension():
    """The C++ module, or None (warning once) when it is not built."""
    global _WARNED
    try:
        ext = importlib.import_module("clap_rt._frontend")
    except ImportError as e:
        if not _WARNED:
            _WARNED = True
            warnings.warn(f"clap_rt._frontend (C++ frontend) is not built ({e}); using the slower numpy "
                          "reference. Build it with `pip install -e .` (needs libfftw3-dev).", RuntimeWarning,
                          stacklevel=3)
        return None
    return ext


def _cpp_options(fe: FrontendConfig, ext):
    """C++ FrontendOptions filled from the one Python definition of the recipe."""
    opts = ext.FrontendOptions()
    opts.sample_rate = fe.sample_rate
    opts.filterbank_rate = fe.filterbank_rate
    opts.n_fft = fe.n_fft
    opts.win_length = fe.win_length
    opts.hop_length = fe.hop_length
    opts.n_mels = fe.n_mels
    opts.fmin = fe.fmin
    opts.fmax = fe.fmax
    opts.htk = fe.mel_scale == "htk"
    opts.slaney_norm = fe.mel_norm == "slaney"
    opts.power = fe.power
    opts.amin = fe.amin
    opts.top_db = -1.0 if fe.top_db is None else fe.top_db
    opts.center = fe.center
    return opts


_CACHE: dict = {}


def _cpp_log_mel(fe: FrontendConfig, ext):
    """One C++ LogMel per recipe: plans and filterbanks are made once."""
    key = tuple(sorted(vars(fe).items()))
    if key not in _CACHE:
        _CACHE[key] = ext.LogMel(_cpp_options(fe, ext))
    return _CACHE[key]


def log_mel(audio, fe: FrontendConfig, threads: int = 1) -> np.ndarray:
    """Log-mel frames of a clip or a batch.

    audio: (n,) or (B, n) samples at fe.sample_rate (float32/float64, or int16 scaled by 1/32768).
    threads: worker threads for the C++ path (frames of all clips are split between them).
    Returns (n_mels, T) or (B, n_mels, T) float32 dB, T = frames_for(n, fe).
    """
    _check_config(fe)
    if threads < 1:
        raise FrontendInputError(f"threads: expected an integer >= 1, got {threads}")
    ext = _extension()
    if ext is None:
        return log_mel_reference(audio, fe)
    x = _as_audio(audio, fe)
    return _cpp_log_mel(fe, ext).compute(x, threads)


# --- streaming ---------------------------------------------------------------------------

class _NumpyOnlineLogMel:
    """Numpy streaming frontend, same contract as the C++ OnlineLogMel.

    Frame t starts at raw sample s = t*hop - pad (pad = n_fft//2 if centred). Before
    input_finished a frame is ready once all its samples (and, at the start, the reflected
    ones x[1..pad]) have arrived; at input_finished the right edge is reflected.
    """

    def __init__(self, fe: FrontendConfig):
        self.fe = fe
        self._pad = fe.n_fft // 2 if fe.center else 0
        self._window = _window64(fe)
        self._filterbank = _mel_filterbank64(fe)
        self.reset()

    def reset(self) -> None:
        self._buf = np.zeros(0, np.float64)   # raw samples from index self._buf_start on
        self._buf_start = 0
        self._received = 0
        self._finished = False
        self._next = 0                        # next frame to compute
        self._ready: list = []                # (n_mels, k) float32 blocks not yet popped

    def _frames_available(self) -> int:
        fe, n = self.fe, self._received
        if self._finished:
            return frames_for(n, fe)
        if fe.center and n <= self._pad:
            return 0
        return max(0, (n - fe.n_fft + self._pad) // fe.hop_length + 1)

    def _compute(self) -> None:
        stop = self._frames_available()
        if stop <= self._next:
            return
        fe, n = self.fe, self._received
        starts = np.arange(self._next, stop) * fe.hop_length - self._pad
        idx = starts[:, None] + np.arange(fe.n_fft)[None, :]  # (k, n_fft) raw sample indices
        idx = np.abs(idx)                                     # left reflection: x[-i] = x[i]
        if self._finished:
            idx = np.where(idx >= n, 2 * (n - 1) - idx, idx)  # right reflection about x[n-1]
        self._ready.append(_frames_to_db(self._buf[idx - self._buf_start], self._window, self._filterbank, fe))
        self._next = stop
        # keep what later frames may still read: the right reflection reaches 2 samples back
        keep_from = max(0, self._next * fe.hop_length - self._pad - 2)
        if keep_from > self._buf_start:
            self._buf = self._buf[keep_from - self._buf_start:]
            self._buf_start = keep_from

    def accept_waveform(self, samples: np.ndarray) -> None:
        if self._finished:
            raise RuntimeError("accept_waveform: input already finished; call reset() to start a new stream")
        self._buf = np.concatenate([self._buf, samples.astype(np.float64)])
        self._received += samples.shape[0]
        self._compute()

    def input_finished(self) -> None:
        if self._finished:
            return
        if self._received < min_samples(self.fe):
            raise FrontendInputError(f"audio stream: expected at least {min_samples(self.fe)} samples for "
                                     f"centred reflect padding (n_fft={self.fe.n_fft}), got {self._received}")
        self._finished = True
        self._compute()

    @property
    def num_frames_ready(self) -> int:
        return sum(b.shape[1] for b in self._ready)

    def pop_frames(self, n: int) -> np.ndarray:
        ready = np.concatenate(self._ready, axis=1) if self._ready else np.zeros((self.fe.n_mels, 0), np.float32)
        out, rest = ready[:, :n], ready[:, n:]
        self._ready = [rest] if rest.shape[1] else []
        return np.ascontiguousarray(out)


class StreamingLogMel:
    """Incremental log-mel: its frames equal `log_mel` of the whole signal (top_db must be None).

    accept_waveform(samples) any number of times (any chunk size, empty chunks allowed), then
    input_finished() to flush the frames that reach into the right-edge reflect padding.
    pop_frames(n) returns (n_mels, n) float32 dB frames in order; reset() starts a new stream.
    backend: "auto" (C++ when built, numpy otherwise), "cpp" or "numpy".
    """

    def __init__(self, fe: FrontendConfig, backend: str = "auto"):
        _check_config(fe)
        if fe.top_db is not None:
            # top_db clamps against the maximum of the *whole* clip: a frame emitted now could
            # still change when a louder frame arrives later, so it cannot be streamed exactly.
            raise FrontendInputError(f"FrontendConfig.top_db: expected None for streaming (the clamp is "
                                     f"relative to the whole clip's maximum), got {fe.top_db!r}")
        if backend not in ("auto", "cpp", "numpy"):
            raise FrontendInputError(f"backend: expected 'auto', 'cpp' or 'numpy', got {backend!r}")
        self.fe = fe
        ext = None if backend == "numpy" else _extension()
        if backend == "cpp" and ext is None:
            raise RuntimeError("StreamingLogMel(backend='cpp') requires the built extension clap_rt._frontend "
                               "(pip install -e ., needs libfftw3-dev)")
        self._impl = _NumpyOnlineLogMel(fe) if ext is None else ext.OnlineLogMel(_cpp_options(fe, ext))

    @property
    def backend(self) -> str:
        return "numpy" if isinstance(self._impl, _NumpyOnlineLogMel) else "cpp"

    def accept_waveform(self, samples) -> None:
        """samples: (k,) at fe.sample_rate, float32/float64 or int16; k may be 0."""
        self._impl.accept_waveform(_as_samples(samples, "samples", ndims=(1,)))

    def input_finished(self) -> None:
        """No more input: the frames overlapping the end become ready (reflect padding)."""
        try:
            self._impl.input_finished()
        except ValueError as e:  # too short a stream: make the C++ error a FrontendInputError too
            raise FrontendInputError(str(e)) from None

    @property
    def num_frames_ready(self) -> int:
        return self._impl.num_frames_ready

    def pop_frames(self, n: Optional[int] = None) -> np.ndarray:
        """Remove and return the oldest n ready frames (all if None): (n_mels, n) float32 dB."""
        ready = self._impl.num_frames_ready
        n = ready if n is None else n
        if not 0 <= n <= ready:
            raise FrontendInputError(f"pop_frames: expected 0 <= n <= {ready} (frames ready), got {n}")
        return self._impl.pop_frames(n)

    def reset(self) -> None:
        """Forget all input and frames; the object is ready for a new stream."""
        self._impl.reset()
