"""The streaming runtime: audio chunks in, one scored window every hop out.

    stream = ClapStream(clap, ["siren", "glass breaking"], input_rate=48000, hop=0.5)
    stream.accept_waveform(chunk)          # any size, at input_rate
    while stream.windows_ready:
        scored = stream.score(stream.pop_window())   # ScoredWindow: times + per-label scores
    stream.input_finished()                # end of input: the last frames and a tail window
    stream.reset()                         # a new stream, same labels

The stream owns its state: a soxr streaming resampler (when the input rate differs from the
model's), a `StreamingLogMel`, and a frame buffer holding only the frames the next window
still needs. Window k is frames [k*H, k*H + W) of the frame sequence of the whole signal
(H = hop in frames, W = window in frames), so it equals slicing the offline `log_mel` of the
same audio. With `incremental` (the default where the model's audio tower allows it), the
tower keeps its activations along time between windows (`clap_rt.incremental`): a window costs
the new columns and the window's edges, not a re-encoding, and the hop is rounded to the
tower's time stride (`notice` says so). `run_stream` is the loop between a source and the
stream that keeps real time: when compute falls behind, whole windows are skipped and
counted, never queued.
"""
from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

import numpy as np

from .config import FrontendConfig, frames_for
from .detect import DEFAULT_BACKGROUND, open_set_scores
from .errors import UserError
from .frontend import StreamingLogMel, min_samples
from .labelset import LabelSet


def window_geometry(fe: FrontendConfig, hop: float, window: Optional[float] = None) -> tuple[int, int]:
    """(window_frames, hop_frames) for `hop` and `window` seconds (None: the model's clip).

    The hop is rounded to whole frontend frames; the window of the model's own length has
    exactly the frames of one offline clip (`fe.n_frames`).
    """
    if not hop > 0:
        raise UserError(f"--hop: expected a number of seconds > 0, got {hop}")
    if window is None:
        w = fe.n_frames
    else:
        if not 0 < window <= fe.clip_seconds:
            raise UserError(f"--window: expected seconds in (0, {fe.clip_seconds}] (the model's window), got {window}")
        w = frames_for(int(round(window * fe.sample_rate)), fe)
    h = max(1, int(round(hop * fe.sample_rate / fe.hop_length)))
    if h > w:
        raise UserError(f"--hop: expected at most the window length ({(w - 1) * fe.hop_length / fe.sample_rate:.2f} s), "
                        f"got {hop} s")
    return w, h


@dataclass
class Window:
    """Log-mel frames of one window and where it lies in the stream (seconds at the model rate).

    Frame t is centred on sample t*hop_length, so a window of frames [f0, f0+W) spans
    [start, end] = [f0, f0+W-1] * hop_length / sample_rate (the model's clip length).
    """
    index: int
    start: float
    end: float
    hop: float            # seconds of new audio since the previous window
    mel: np.ndarray       # (n_mels, W) float32 dB
    frame: Optional[int] = None   # stream frame of mel[:, 0]; None: a short stream's filled window


@dataclass
class ScoredWindow:
    """A window's scores: `start` / `end` / `hop` in seconds of stream time."""
    index: int
    start: float
    end: float
    hop: float
    scores: np.ndarray    # (L,) open-set probabilities of the labels
    embedding: Optional[np.ndarray] = None   # (D,) unit-norm audio embedding, when kept

    @property
    def new_start(self) -> float:
        """Start of the audio that entered with this window (its last hop)."""
        return max(self.start, self.end - self.hop)


class ClapStream:
    """Continuous zero-shot scoring of an audio stream with a `Clap` model.

    clap: anything with `frontend` (FrontendConfig), `embed_mel((B, n_mels, T)) -> (B, D)`,
    `label_embeddings(texts, template) -> (N, D)`, `logit_scale` and `config.short_clips` (how a
    stream shorter than one window fills it); with enrolled labels, also `model_id`.
    labels: the user's labels, names or a `LabelSet` mixing them with enrolled labels;
    background: prompts the labels compete with (open set).
    input_rate: Hz of the audio given to `accept_waveform`.
    hop / window: seconds between windows / window length (None: the model's).
    incremental: keep the audio tower's activations between windows (None: where the tower
    supports it, see `clap_rt.incremental.stream_support`); the hop is then a multiple of
    the tower's time stride and `notice` holds one line saying how a requested hop was rounded.
    tower_threads: intra-op threads of the incremental tower's graphs (None: the engine's; 1
    where several streams' steps run side by side, as `clap-rt serve` runs them).
    """

    def __init__(self, clap, labels: Sequence[str] | LabelSet, input_rate: int, hop: float = 0.5,
                 window: Optional[float] = None, background: Sequence[str] = DEFAULT_BACKGROUND,
                 template: Optional[str] = None, frontend_backend: str = "auto",
                 incremental: Optional[bool] = None, tower_threads: Optional[int] = None):
        self.clap = clap
        self.fe: FrontendConfig = clap.frontend
        self.short_clips = clap.config.short_clips
        self.label_set = LabelSet.of(labels)
        self.labels = self.label_set.names
        self.background = [b for b in background if b not in self.labels]
        if input_rate <= 0:
            raise UserError(f"--rate: expected a sample rate in Hz > 0, got {input_rate}")
        self.input_rate = int(input_rate)
        self.window_frames, self.hop_frames = window_geometry(self.fe, hop, window)
        self.notice: Optional[str] = None
        self._tower = self._incremental_tower(incremental, hop, tower_threads)
        self.hop_seconds = self.hop_frames * self.fe.hop_length / self.fe.sample_rate
        # Label scores (text and enrolled) and the background prompts' (B, D); made once.
        self._scorer = self.label_set.scorer(clap, template)
        self._background = (clap.label_embeddings(self.background, template) if self.background
                            else np.zeros((0, self._scorer.matrix.shape[1]), np.float32))
        self._frontend = StreamingLogMel(self.fe, backend=frontend_backend)
        self.reset()

    def _incremental_tower(self, incremental: Optional[bool], hop: float, threads: Optional[int]):
        """The tower's streaming state, an `IncrementalTower` (None: re-encode every window);
        rounds the hop for it."""
        if incremental is False:
            return None
        from .incremental import aligned_hop_frames, stream_support, time_stride, tower_for   # imports torch
        reason = stream_support(self.clap)
        if reason is not None:
            if incremental:
                raise UserError(f"incremental encoding: {reason}")
            return None
        stride = time_stride(self.clap.model.audio)
        h = aligned_hop_frames(self.hop_frames, stride, self.window_frames)
        if h > self.window_frames:
            if incremental:
                raise UserError(f"incremental encoding: the window ({self.window_frames} frames) is shorter "
                                f"than the audio tower's time stride ({stride} frames)")
            return None
        if h != self.hop_frames:
            sec = self.fe.hop_length / self.fe.sample_rate
            self.notice = (f"hop {hop} s rounded to {h * sec:.3f} s ({h} frames): incremental encoding needs a "
                           f"multiple of the audio tower's time stride ({stride} frames, {stride * sec:.3f} s)")
            self.hop_frames = h
        return tower_for(self.clap, self.window_frames, h, threads)

    @property
    def incremental(self) -> bool:
        """Whether windows are encoded incrementally (else each is re-encoded)."""
        return self._tower is not None

    @property
    def catch_up_windows(self) -> int:
        """Ready windows worth scoring in turn rather than skipping to the newest (see
        `IncrementalTower.catch_up_windows`); 1 when windows are re-encoded."""
        return self._tower.catch_up_windows if self._tower is not None else 1

    @property
    def tower_state(self):
        """The `IncrementalTower` holding the audio tower's activations (None: re-encoding)."""
        return self._tower

    def reset(self) -> None:
        """Forget all audio: a new stream starts at time 0."""
        self._resampler = None
        if self.input_rate != self.fe.sample_rate:
            try:
                import soxr
            except ImportError as e:
                raise RuntimeError("resampling requires the soxr package (pip install soxr)") from e
            self._resampler = soxr.ResampleStream(self.input_rate, self.fe.sample_rate, 1,
                                                  dtype="float32", quality="HQ")
        self._frontend.reset()
        if self._tower is not None:
            self._tower.reset()
        self._frames = np.zeros((self.fe.n_mels, 0), np.float32)  # frames [_first, _first + k)
        self._first = 0            # index of the oldest buffered frame
        self._next = 0             # index of the next window
        self._tail_done = False    # the end-aligned window after input_finished was emitted
        self._finished = False
        self.samples_in = 0        # input samples accepted (at input_rate)
        self._model_samples = 0    # samples given to the frontend (at the model rate)

    # --- audio in ------------------------------------------------------------------------

    def accept_waveform(self, samples: np.ndarray) -> None:
        """samples: (k,) float32 mono at `input_rate`; any k >= 0."""
        if self._finished:
            raise RuntimeError("accept_waveform: input already finished; call reset() to start a new stream")
        x = np.ascontiguousarray(samples, dtype=np.float32)
        self.samples_in += x.shape[0]
        if self._resampler is not None:
            x = self._resampler.resample_chunk(x)
        self._frontend.accept_waveform(x)
        self._model_samples += x.shape[0]
        self._collect()

    def input_finished(self) -> None:
        """End of input: flush the resampler and the frontend's right edge."""
        if self._finished:
            return
        if self._resampler is not None:
            tail = self._resampler.resample_chunk(np.zeros(0, np.float32), last=True)
            self._frontend.accept_waveform(tail)
            self._model_samples += tail.shape[0]
        self._finished = True
        if self.samples_in == 0:
            return                                    # nothing was ever given: no windows
        # A clip shorter than the STFT's reflect padding is scored as the offline path scores
        # it (any length >= 1 sample): followed by silence up to the frontend's minimum.
        short = min_samples(self.fe) - self._model_samples
        if short > 0:
            self._frontend.accept_waveform(np.zeros(short, np.float32))
        self._frontend.input_finished()
        self._collect()

    def _collect(self) -> None:
        if self._frontend.num_frames_ready:
            self._frames = np.concatenate([self._frames, self._frontend.pop_frames()], axis=1)

    @property
    def seconds_in(self) -> float:
        return self.samples_in / self.input_rate

    @property
    def frames_buffered(self) -> int:
        """Frames held for the windows to come (bounded by window + pending hops)."""
        return self._frames.shape[1]

    # --- windows -------------------------------------------------------------------------

    @property
    def _frames_total(self) -> int:
        return self._first + self._frames.shape[1]

    def _full_windows(self) -> int:
        return max(0, (self._frames_total - self.window_frames) // self.hop_frames + 1 - self._next)

    def _tail_pending(self) -> bool:
        # After the end, frames past the last full window get one window aligned to the end,
        # so the last seconds of a file are scored too.
        if not self._finished or self._tail_done or self._frames_total == 0:
            return False
        return self._frames_total > self._covered()

    def _covered(self) -> int:
        """Frames up to the end of the last window given out."""
        return (self._next - 1) * self.hop_frames + self.window_frames if self._next else 0

    @property
    def windows_ready(self) -> int:
        """Windows whose frames have all arrived (plus the tail window once input finished)."""
        full = self._full_windows()
        return full if full else int(self._tail_pending())

    def _fill_window(self, mel: np.ndarray) -> np.ndarray:
        """(n_mels, k < W) frames -> (n_mels, W), as `fit_windows` fills a short file for this
        model (its `short_clips`): the frames repeated, or centred among frames of silence."""
        W = self.window_frames
        if self.short_clips == "centre":
            out = np.full((mel.shape[0], W), 10 * np.log10(self.fe.amin), np.float32)
            start = (W - mel.shape[1]) // 2
            out[:, start:start + mel.shape[1]] = mel
            return out
        return np.tile(mel, (1, -(-W // mel.shape[1])))[:, :W]

    def pop_window(self) -> Window:
        """The oldest ready window (raises if none is ready)."""
        W, fe = self.window_frames, self.fe
        if self._full_windows():
            f0 = self._next * self.hop_frames
            mel = self._frames[:, f0 - self._first:f0 - self._first + W]
            new_frames = self.hop_frames if self._next else W
        elif self._tail_pending():
            f0 = max(0, self._frames_total - W)
            mel = self._frames[:, f0 - self._first:]
            if mel.shape[1] < W:     # a stream shorter than one window fills it as a short file does
                mel = self._fill_window(mel)
            new_frames = self._frames_total - self._covered()
            self._tail_done = True
        else:
            raise RuntimeError("pop_window: no window is ready; check windows_ready first")
        self._next += 1
        sec = fe.hop_length / fe.sample_rate
        last = min(f0 + W, self._frames_total) - 1
        win = Window(self._next - 1, f0 * sec, last * sec, new_frames * sec, np.ascontiguousarray(mel),
                     f0 if self._frames_total >= W else None)
        self._trim()
        return win

    def skip_windows(self, n: int) -> None:
        """Drop the n oldest ready windows unscored (the caller counts them)."""
        if not 0 <= n <= self.windows_ready:
            raise ValueError(f"skip_windows: expected 0 <= n <= {self.windows_ready} (windows ready), got {n}")
        for _ in range(n):
            self.pop_window()

    def _trim(self) -> None:
        # The next window starts at frame next*H; an end-aligned tail window may start anywhere
        # after the last given window's first frame, so frames from there on are kept.
        keep_from = (self._next - 1) * self.hop_frames + 1
        drop = min(max(0, keep_from - self._first), self._frames.shape[1])
        self._frames = self._frames[:, drop:]
        self._first += drop

    # --- scores --------------------------------------------------------------------------

    def score_mel(self, mel: np.ndarray) -> np.ndarray:
        """(B, n_mels, W) dB frames -> (B, L) open-set label probabilities."""
        return self.score_embeddings(self.clap.embed_mel(mel))

    def score_embeddings(self, audio: np.ndarray) -> np.ndarray:
        """(B, D) unit-norm audio embeddings of windows -> (B, L) open-set label probabilities
        (a service embeds the windows of many streams in one engine call)."""
        sims = np.concatenate([self._scorer(audio), audio @ self._background.T], axis=1)   # (B, L + B_bg)
        return open_set_scores(sims, self.clap.logit_scale, len(self.labels))

    def embed_window(self, window: Window) -> np.ndarray:
        """One window from `pop_window` -> its (D,) unit-norm embedding (incrementally when
        the stream is)."""
        if self._tower is not None and window.frame is not None:
            return self._tower.embed(window.mel, window.frame)
        return self.clap.embed_mel(window.mel[None])[0]

    def score(self, window: Window) -> ScoredWindow:
        """One window from `pop_window` -> its (L,) label scores, with its times."""
        emb = self.embed_window(window)
        scores = self.score_embeddings(emb[None])[0]
        return ScoredWindow(window.index, window.start, window.end, window.hop, scores, emb)


# --- the loop between a source and the stream ------------------------------------------------

# Per-window compute times kept for the percentiles: the latest ~1.5 h of windows at 0.5 s hops,
# so an always-on stream's statistics stay the same size whatever its age.
COMPUTE_KEPT = 10_000


@dataclass
class StreamStats:
    """What happened during a run: counts, per-window compute (s) and audio seconds."""
    windows: int = 0
    skipped: int = 0
    dropped_chunks: int = 0
    overflows: int = 0
    audio_seconds: float = 0.0
    frontend_seconds: float = 0.0
    compute: deque = field(default_factory=lambda: deque(maxlen=COMPUTE_KEPT))  # s per scored window, the latest
    compute_seconds: float = 0.0                  # s over every scored window
    max_queue: int = 0
    max_frames_buffered: int = 0

    def add_compute(self, seconds: float) -> None:
        """One scored window's compute time."""
        self.compute.append(seconds)
        self.compute_seconds += seconds

    def summary(self) -> dict:
        """Counts, compute per scored window p50 / p95 (ms, over the latest COMPUTE_KEPT windows)
        and the real-time factor (over all)."""
        c = np.asarray(self.compute) if self.compute else np.zeros(1)
        total = self.compute_seconds + self.frontend_seconds
        return {
            "windows": self.windows, "skipped": self.skipped, "dropped_chunks": self.dropped_chunks,
            "overflows": self.overflows, "audio_seconds": round(self.audio_seconds, 3),
            "compute_p50_ms": round(1e3 * float(np.percentile(c, 50)), 3),
            "compute_p95_ms": round(1e3 * float(np.percentile(c, 95)), 3),
            # frontend + model time per second of audio (skipped windows are not computed)
            "real_time_factor": round(total / self.audio_seconds, 5) if self.audio_seconds else None,
        }

    def summary_line(self) -> str:
        s = self.summary()
        rtf = "n/a" if s["real_time_factor"] is None else f"{s['real_time_factor']:.4f}"
        return (f"windows {s['windows']}, skipped {s['skipped']}, dropped chunks {s['dropped_chunks']}, "
                f"input overflows {s['overflows']}, compute per hop p50 {s['compute_p50_ms']:.1f} ms / "
                f"p95 {s['compute_p95_ms']:.1f} ms, real-time factor {rtf} over {s['audio_seconds']:.1f} s")


def run_stream(source, stream: ClapStream, on_window: Callable[[ScoredWindow], None],
               live: bool = True, max_pending: int = 1, stop: Optional[Callable[[], bool]] = None,
               stats: Optional[StreamStats] = None) -> StreamStats:
    """Feed `source` into `stream` until the source ends or `stop()` is true.

    source: a `clap_rt.sources` source: `read(timeout) -> Chunk | None` (None: nothing yet),
    `ended`, `capacity` (its queue's size) and the counters `dropped`, `overflows`, `max_qsize`.
    live: drain the queued chunks before each window (at most the queue's `capacity`, so a
    producer faster than the frontend cannot hold the loop in the drain while frames pile up)
    and keep at most `max_pending` ready windows, skipping the older ones, so the output never
    lags more than a window behind; False (`--fast`): score every window. An incremental stream
    that is up to `stream.catch_up_windows` windows behind scores them in turn instead: that
    costs no more than the restart a skip causes, and keeps the stream in its steady state.
    """
    stats = stats or StreamStats()

    def feed(chunk) -> None:
        t0 = time.perf_counter()
        stream.accept_waveform(chunk)
        stats.frontend_seconds += time.perf_counter() - t0
        stats.audio_seconds = stream.seconds_in

    def score_one() -> None:
        t0 = time.perf_counter()
        scored = stream.score(stream.pop_window())
        stats.add_compute(time.perf_counter() - t0)
        stats.windows += 1
        on_window(scored)

    ended = False
    while not ended and not (stop and stop()):
        chunk = source.read(timeout=0.05)
        fed = 0
        while chunk is not None:
            feed(chunk)
            fed += 1
            # live: take what is already queued so the decision is on the newest audio
            chunk = source.read(timeout=0.0) if live and fed < source.capacity else None
        ended = source.ended
        stats.max_queue = max(stats.max_queue, source.max_qsize)
        stats.max_frames_buffered = max(stats.max_frames_buffered, stream.frames_buffered)
        if ended:
            stream.input_finished()
            stats.max_frames_buffered = max(stats.max_frames_buffered, stream.frames_buffered)
        if live and stream.windows_ready > max(max_pending, stream.catch_up_windows):
            extra = stream.windows_ready - max_pending
            stream.skip_windows(extra)
            stats.skipped += extra
        if live and not ended:
            if stream.windows_ready:
                score_one()        # one at a time: new audio may arrive meanwhile
        else:
            while stream.windows_ready:
                score_one()
    stats.dropped_chunks = source.dropped
    stats.overflows = source.overflows
    return stats
