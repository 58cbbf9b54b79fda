"""Incremental audio tower for streaming: each hop computes the new time columns, not the window.

A stream scores window k = frames [k*H, k*H + W). Re-encoding it runs the whole CNN on W
frames, though most of them were in the previous window. `IncrementalTower` keeps, per stage
of the CNN, the activations of the *stream* (the tower run along the whole signal, zero padded
only where the stream starts) and assembles each window from them:

- Stages. `SfxCNN` is a chain of time-local stages: 3x3 conv + BatchNorm (eval: a per-channel
  affine map) + ReLU, which reads columns t-1..t+1, and 2x2 max-pool (floor), which reads
  columns 2t, 2t+1. The frequency axis is always whole; only time is cut. `prepare` is per
  bin (no per-window normalisation when `level_ref_db` is None), and streamed frames have no
  per-clip floor (`StreamingLogMel` refuses `top_db`).
- Time stride. After the pools a column of stage l covers `2**pools` frames (8 for the
  bundled model: 0.186 s); a window start that is a multiple of it puts the window's pooling
  grid on the stream's, so hops are multiples of the stride (`aligned_hop_frames`).
- Edges, exactly. Re-encoding zero-pads each window at both ends of time. A column whose
  inputs reach that padding differs from the stream's column (measured on the demo: using the
  stream's columns everywhere gives cosines of 0.61-0.89 to re-encoding, so this is not a
  rounding matter). Per stage, the columns within `left` of the window's start and from
  `right` on are "edge bands": they are recomputed for every window from the previous stage's
  window values, padded as re-encoding pads; the columns between are the stream's, computed
  once. The result equals re-encoding up to float32 summation order (tests: cosine >= 1 - 1e-6).
- Cost. The bands widen with depth (bundled model, per side: 1-2 columns in block 1, 4 of the
  10 columns of block 4), so at a 24-frame hop (0.557 s) a window costs 0.57 of a
  re-encoding's convolution FLOPs (`macs` counts them; 0.61 in eager PyTorch, which runs both
  bands as one batch of two): the bands are most of it, the stream's new columns the rest.
- Skipped windows. A window whose frames do not follow the previous one's (skipped windows,
  a new stream, or a window less than a hop after the last, as a stream's end-aligned tail
  window can be) starts the stream's columns afresh at its first frame: zero padding there is
  the window's own, and no later window's interior reaches it, so this too is exact. On the
  onnx runner a window a few hops after the last starts afresh as well, on the first-window
  graph, which costs less than continuing in PyTorch.

The state (`IncrementalTower`) belongs to one stream and is reset with it.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F

from .model import SfxCNN


# Engines whose model stays on the CPU, where the incremental tower runs too (on the same runtime).
CPU_ENGINES = ("torch", "onnx")
RUNNERS = CPU_ENGINES
# Weight of the newest window in the running mean of a window's compute time (first / steady).
COST_SMOOTHING = 0.1


def incremental_support(model) -> Optional[str]:
    """None when `model` (a `clap_rt.model.CLAP`) has an audio tower `IncrementalTower` can
    run, else the reason it cannot (one phrase)."""
    tower = getattr(model, "audio", None)
    if not isinstance(tower, SfxCNN):
        if tower is None:
            return "the model has no PyTorch audio tower"
        return f"the {type(tower).__name__} audio tower is re-encoded every window (only the CNN tower is incremental)"
    if tower.level_ref_db is not None:
        return "audio.sfx_cnn.level_ref_db normalises each window by its own peak, so windows are re-encoded"
    return None


def stream_support(clap) -> Optional[str]:
    """`incremental_support` for a loaded `Clap`, which must also run on a CPU engine (on a GPU
    re-encoding a window takes a fraction of a millisecond)."""
    engine = getattr(getattr(clap, "engine", None), "name", None)
    if engine is not None and engine not in CPU_ENGINES:
        return f"the {engine} engine re-encodes every window on the GPU"
    return incremental_support(getattr(clap, "model", None))


def tower_for(clap, window_frames: int, hop_frames: int, threads: Optional[int] = None) -> "IncrementalTower":
    """The incremental tower of a loaded `Clap` that passes `stream_support`, on the runtime of
    its engine (onnxruntime with `threads` intra-op threads, default the engine's, for the onnx
    engine; else PyTorch). With the engine picked by `--backend auto`, a static-int8 steady
    step shipped in the model folder for this window and hop is a candidate (kept where it is
    faster here). The graphs are built once per window, hop and thread count and shared by the
    model's streams (`clap.stream_graphs`)."""
    engine = getattr(clap, "engine", None)
    runner = getattr(engine, "name", "torch")
    if runner != "onnx":
        threads = None
    elif threads is None:
        threads = engine.session.get_session_options().intra_op_num_threads or None
    shared, key = getattr(clap, "stream_graphs", {}), (window_frames, hop_frames, threads)
    int8_path = None
    if (key not in shared and runner == "onnx" and getattr(clap, "backend", None) == "auto"
            and getattr(clap, "model_dir", None)):     # the name hashes the weights: only for a graph to build
        from .engine.incremental_graph import int8_graph_name
        candidate = Path(clap.model_dir) / int8_graph_name(clap.model, window_frames, hop_frames)
        int8_path = candidate if candidate.exists() else None
    tower = IncrementalTower(clap.model, window_frames, runner=runner, threads=threads, hop_frames=hop_frames,
                             int8_path=int8_path, graph=shared.get(key))
    if tower.graph is not None:
        shared[key] = tower.graph
    return tower


def time_stride(tower: SfxCNN) -> int:
    """Frames per column of the tower's last stage (2 ** number of time pools)."""
    return 2 ** sum(block.pool > 1 for block in tower.blocks)


def aligned_hop_frames(hop_frames: int, stride: int, window_frames: int) -> int:
    """The multiple of `stride` nearest `hop_frames` (at least one stride, at most the window)."""
    h = stride * max(1, int(round(hop_frames / stride)))
    while h > window_frames and h > stride:
        h -= stride
    return h


@dataclass(frozen=True)
class _Stage:
    """A 3x3 conv with its eval BatchNorm folded in (weight, bias), then ReLU; or, with
    weight None, a 2x2 max-pool."""
    weight: Optional[torch.Tensor]      # (C_out, C_in, 3, 3)
    bias: Optional[torch.Tensor]        # (C_out,)

    @property
    def conv(self) -> bool:
        return self.weight is not None


@dataclass(frozen=True)
class _Bands:
    """One stage's columns in a window: n in all; [0, left) and [right, n) are edge bands
    recomputed per window, [left, right) are the stream's (empty when left == right == n)."""
    n: int
    left: int
    right: int


def _folded(conv: torch.nn.Conv2d, bn: torch.nn.BatchNorm2d) -> _Stage:
    # Eval BatchNorm is a per-channel affine map: folded into the conv it saves an op per call
    # and changes only float rounding.
    with torch.no_grad():
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)                 # (C_out,)
        return _Stage((conv.weight * scale[:, None, None, None]).contiguous(), bn.bias - bn.running_mean * scale)


def _stages(tower: SfxCNN) -> list[_Stage]:
    out = []
    for block in tower.blocks:
        out += [_folded(block.conv1, block.bn1), _folded(block.conv2, block.bn2)]
        if block.pool > 1:
            if block.pool != 2:
                raise ValueError(f"incremental tower: expected 2x2 pooling, got {block.pool}")
            out.append(_Stage(None, None))
    return out


def _window_bands(stages: list[_Stage], window_frames: int) -> list[_Bands]:
    """Per stage (stage 0: the prepared frames) where a window's columns differ from the stream's."""
    bands = [_Bands(window_frames, 0, window_frames)]
    for st in stages:
        b = bands[-1]
        if st.conv:                     # reads t-1, t, t+1: one more column on each side
            n, lo, hi = b.n, b.left + 1, b.right - 1
        else:                           # reads 2t, 2t+1; floor drops an odd last column
            n, lo, hi = b.n // 2, -(-b.left // 2), b.right // 2
        bands.append(_Bands(n, lo, hi) if lo < hi else _Bands(n, n, n))
    return bands


class IncrementalTower:
    """The streaming state of one `SfxCNN` tower for windows of `window_frames`.

    model: a `clap_rt.model.CLAP` whose tower passes `incremental_support` (eval mode, CPU);
    its weights are read once, here. hop_frames: the stream's hop (a multiple of the stride;
    None: any). runner: "torch" runs eager PyTorch; "onnx" runs each window that continues the
    last one by `hop_frames` as one onnxruntime graph (`clap_rt.engine.incremental_graph`: the
    new frames and the held columns in, the embedding and the next held columns out; `threads`
    intra-op threads; `int8_path`: a static-int8 copy of that graph, kept if faster; `graph`:
    those graphs as another tower of the same model, window and hop built them), every
    other window (a stream's first, one after skipped windows) starts the columns afresh on
    another graph (W frames in, the embedding and the held columns out).
    `embed(mel, first_frame)` gives the window's unit-norm joint embedding, equal to
    `model.encode_audio` of the same frames. `first_frame` is the window's first frame in the
    stream; windows must start on multiples of the tower's stride from the first one.
    `macs` holds the multiply-accumulates of the last `embed` (convolutions only),
    `window_macs` those of re-encoding one window.
    """

    def __init__(self, model, window_frames: int, runner: str = "torch", threads: Optional[int] = None,
                 hop_frames: Optional[int] = None, int8_path=None, graph=None):
        reason = incremental_support(model)
        if reason is not None:
            raise ValueError(f"incremental tower: {reason}")
        self.model = model.eval()
        self.tower: SfxCNN = model.audio
        self.window_frames = int(window_frames)
        self.stride = time_stride(self.tower)
        # BatchNorm-folded copies of the conv weights (19 MB for the bundled model): a shared graph carries them
        self._stages = graph.stages if graph is not None else _stages(self.tower)
        if runner not in RUNNERS:
            raise ValueError(f"incremental tower: runner {runner!r}; expected one of {', '.join(RUNNERS)}")
        self.runner = runner
        if hop_frames is not None and (hop_frames <= 0 or hop_frames % self.stride):
            raise ValueError(f"incremental tower: hop_frames {hop_frames}; expected a multiple of {self.stride}")
        if runner == "onnx" and hop_frames is None:
            raise ValueError("incremental tower: the onnx runner needs hop_frames")
        self.hop_frames = hop_frames
        self._bands = _window_bands(self._stages, self.window_frames)
        self._scale = [1]                       # frames per column at each stage
        for st in self._stages:
            self._scale.append(self._scale[-1] * (1 if st.conv else 2))
        self.window_macs = self._count_window_macs()
        # Held columns as plain tensors (concatenated, sliced) rather than buffers written in
        # place, so that a window's computation is a pure function a graph can be traced from.
        self._functional = runner == "onnx"
        self._graph = None
        self._seconds: dict = {}                # running mean compute time of "first" / "steady" windows
        self.reset()
        if runner == "onnx":
            from .engine.incremental_graph import SteadyGraph
            self._graph = graph or SteadyGraph(self, threads, int8_path)
            self.reset()
            if self._graph.session is not None:     # timed as it was built: the costs to start from
                self._seconds = {"first": self._graph.first_ms / 1e3,
                                 "steady": self._graph.step_ms[self._graph.precision] / 1e3}

    def reset(self) -> None:
        """Forget the stream: the next window starts the columns afresh."""
        self._origin: Optional[int] = None      # stream frame of column 0 at every stage
        n = len(self._stages) + 1
        # Per stage, the stream's columns [_start, _done) lie in _cols[l][:, :, _off:_off + _done - _start]:
        # a buffer written in place, its kept columns moved to the front when it is full.
        self._cols: list[Optional[torch.Tensor]] = [None] * n     # (1, C, capacity, F)
        self._start, self._done, self._off = [0] * n, [0] * n, [0] * n
        self._resume_at = 0                     # the first frame a continuing window may start at
        self.macs = 0

    @property
    def graph(self):
        """The onnx runner's step graphs (a `clap_rt.engine.incremental_graph.SteadyGraph`, which
        holds no stream state: other towers of the same model, window and hop may share it); None
        on the torch runner."""
        return self._graph

    @property
    def precision(self) -> str:
        """"int8" where the steady windows run the shipped int8 step, else "fp32"."""
        return self._graph.precision if self._graph is not None else "fp32"

    @property
    def columns_held(self) -> list[int]:
        """The stream's columns held per stage (0: prepared frames): bounded by the window."""
        return [d - s for d, s in zip(self._done, self._start)]

    # --- one stage on a slice of columns --------------------------------------------------

    def _apply(self, st: _Stage, x: torch.Tensor, pad_left: bool, pad_right: bool) -> torch.Tensor:
        """(1, C, t, F) columns -> the stage's output columns that read only x and the padding
        asked for (conv: t - 2 + pads; pool: t // 2)."""
        if not st.conv:
            return F.max_pool2d(x, 2)
        return self._conv(st, F.pad(x, (0, 0, int(pad_left), int(pad_right))))    # zeros in time only

    def _conv(self, st: _Stage, x: torch.Tensor) -> torch.Tensor:
        """(B, C, t, F) time-padded columns -> (B, C_out, t - 2, F), frequency padded as in the tower."""
        y = F.relu(F.conv2d(x, st.weight, st.bias, padding=(0, 1)))
        self.macs += st.weight[0].numel() * y.shape[1] * y.shape[2] * y.shape[3] * y.shape[0]
        return y

    def _conv_pair(self, st: _Stage, left: torch.Tensor, right: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Both edge bands in one call, (1, C, t_left / t_right, F) time-padded columns -> their
        outputs: the shorter is lengthened with zeros on its outer side and the columns that
        read them dropped. (Batch 2 also keeps PyTorch on its oneDNN kernels, which it leaves
        for small batch-1 inputs.)"""
        tl, tr = left.shape[2], right.shape[2]
        t = max(tl, tr)
        y = self._conv(st, torch.cat([F.pad(left, (0, 0, 0, t - tl)), F.pad(right, (0, 0, t - tr, 0))]))
        return y[:1, :, :tl - 2], y[1:, :, t - tr:]

    # --- the stream's columns ---------------------------------------------------------------

    def _stream_cols(self, l: int, lo: int, hi: int) -> torch.Tensor:
        o = self._off[l] - self._start[l]
        return self._cols[l][:, :, o + lo:o + hi]

    def _advance(self, frames: torch.Tensor) -> None:
        """Append prepared frames (1, 1, k, F) to stage 0 and compute every stage's new columns."""
        self._append(0, frames)
        for l, st in enumerate(self._stages, start=1):
            done, avail = self._done[l], self._done[l - 1]
            if st.conv:     # column c reads c-1..c+1; column -1 is the stream's zero padding
                target = avail - 1
                if target > done:
                    lo = max(done - 1, 0)
                    self._append(l, self._apply(st, self._stream_cols(l - 1, lo, target + 1), done == 0, False))
            else:
                target = avail // 2
                if target > done:
                    self._append(l, self._apply(st, self._stream_cols(l - 1, 2 * done, 2 * target), False, False))

    def _append(self, l: int, cols: torch.Tensor) -> None:
        k, n, buf = cols.shape[2], self._done[l] - self._start[l], self._cols[l]
        if self._functional:
            self._cols[l] = cols if n == 0 else torch.cat([self._stream_cols(l, self._start[l], self._done[l]), cols], 2)
            self._start[l], self._off[l] = self._done[l] - n, 0
            self._done[l] += k
            return
        if buf is None or n + k > buf.shape[2]:
            new = cols.new_empty(cols.shape[:2] + (2 * (self._bands[l].n + n + k), cols.shape[3]))
            if buf is not None:
                new[:, :, :n] = buf[:, :, self._off[l]:self._off[l] + n]
            self._cols[l], self._off[l] = new, 0
        elif self._off[l] + n + k > buf.shape[2]:
            buf[:, :, :n] = buf[:, :, self._off[l]:self._off[l] + n].clone()
            self._off[l] = 0
        o = self._off[l] + n
        self._cols[l][:, :, o:o + k] = cols
        self._done[l] += k

    def _trim(self, next_first: int) -> None:
        """Drop the columns neither the stream's next columns nor a window from `next_first` on read."""
        for l in range(len(self._cols)):
            keep = (next_first - self._origin) // self._scale[l] + self._bands[l].left
            if l < len(self._stages):
                nxt = self._stages[l]
                keep = min(keep, self._done[l + 1] - 1 if nxt.conv else 2 * self._done[l + 1])
            drop = max(0, keep - self._start[l])
            if drop:
                drop = min(drop, self._done[l] - self._start[l])
                self._start[l] += drop
                if self._functional:
                    self._cols[l] = self._cols[l][:, :, self._off[l] + drop:] if self._start[l] < self._done[l] else None
                    self._off[l] = 0
                else:
                    self._off[l] += drop

    # --- one window -------------------------------------------------------------------------

    @torch.inference_mode()
    def embed(self, mel: np.ndarray, first_frame: int) -> np.ndarray:
        """mel: (n_mels, W) float32 dB frames of the window starting at stream frame
        `first_frame` -> (D,) float32 unit-norm embedding."""
        W = self.window_frames
        if mel.shape[-1] != W:
            raise ValueError(f"incremental tower: expected a window of {W} frames, got {mel.shape[-1]}")
        self.macs = 0
        o = self._origin
        end = None if o is None else o + self._done[0]                   # stream frames seen so far
        # The last window trimmed the held columns to those of windows a hop or more after it:
        # one that starts sooner (a stream's end-aligned tail window) needs columns gone.
        graph = self._graph
        restart = (o is None or first_frame < self._resume_at or (first_frame - o) % self.stride
                   or not first_frame <= end <= first_frame + W)
        # A window a few hops after the last (skipped windows) could continue in PyTorch, but
        # starting afresh on the first-window graph costs less (bundled model: 20 ms against
        # 28-33 ms), and is as exact.
        restart = restart or (graph is not None and graph.first_session is not None
                              and end - first_frame < W - self.hop_frames)
        if restart:
            self.reset()                # not the continuation of the last window: start afresh here
            self._origin, end = first_frame, first_frame
        self._resume_at = first_frame + (self.hop_frames or self.stride)
        steady = self.hop_frames is not None and end - first_frame == W - self.hop_frames
        kind = "first" if restart else "steady" if steady else None
        t0 = time.perf_counter()
        if graph is not None and graph.fits(self, end - first_frame):
            e = graph.step(self, mel)
        elif graph is not None and graph.fits_first(self):
            e = graph.first(self, mel)
        else:
            e = self.step(torch.from_numpy(np.ascontiguousarray(mel[:, end - first_frame:], np.float32))[None],
                          first_frame)[0].float().numpy()
        if kind is not None:
            took, last = time.perf_counter() - t0, self._seconds.get(kind)
            self._seconds[kind] = took if last is None else last + COST_SMOOTHING * (took - last)
        return e

    @property
    def window_seconds(self) -> dict:
        """Running mean compute time (s) of this stream's "first" windows (starting the columns
        afresh) and "steady" ones (a hop after the last); a kind not yet measured is absent."""
        return dict(self._seconds)

    @property
    def catch_up_windows(self) -> int:
        """How many consecutive windows, scored in turn, take about as long as starting afresh
        on the newest of them (running means of this stream's first and steady windows, from
        the graphs' timings where the onnx runner built them); 1 until both were measured. A
        stream that falls this many windows behind catches up rather than skip: skipping
        restarts the columns, and a restart that costs more than a hop's time leaves the stream
        behind again, so it would keep skipping."""
        first, steady = self._seconds.get("first"), self._seconds.get("steady")
        if first is None or steady is None or steady <= 0:
            return 1
        return max(1, math.ceil(first / steady))

    def step(self, new_mel: torch.Tensor, first_frame: int) -> torch.Tensor:
        """The frames of the window at `first_frame` not seen yet, (1, n_mels, k) dB -> (1, D)
        unit-norm embedding; advances the held columns."""
        self._advance(self.tower.prepare(new_mel))                        # (1, 1, k, F) prepared
        feats = self._window_cols(first_frame)                            # (1, C, n_last, F')
        e = self.model.audio_projection(self.tower.pool(feats))
        self._trim(first_frame + (self.hop_frames or self.stride))
        return F.normalize(e, dim=-1)

    def _window_cols(self, first_frame: int) -> torch.Tensor:
        """The window's columns at the last stage: edge bands recomputed, the rest the stream's."""
        left = right = None             # the current stage's edge bands, (1, C, k, F)
        for l, st in enumerate(self._stages, start=1):
            b = self._bands[l]
            n_in = self._bands[l - 1].n

            def cols(lo: int, hi: int) -> torch.Tensor:
                return self._local(l - 1, first_frame, left, right, lo, hi)

            if st.conv:
                x_left = F.pad(cols(0, min(n_in, b.left + 1)), (0, 0, 1, int(b.left + 1 > n_in)))
                if b.right < b.n:
                    x_right = F.pad(cols(max(b.right - 1, 0), n_in), (0, 0, int(b.right == 0), 1))
                    if self._functional:    # a graph runs each band on its own, no columns wasted
                        new_left, new_right = self._conv(st, x_left), self._conv(st, x_right)
                    else:
                        new_left, new_right = self._conv_pair(st, x_left, x_right)
                else:
                    new_left, new_right = self._conv(st, x_left), None
            else:
                new_left = self._apply(st, cols(0, 2 * b.left), False, False)
                new_right = self._apply(st, cols(2 * b.right, 2 * b.n), False, False) if b.right < b.n else None
            left, right = new_left, new_right
        last = len(self._stages)
        return self._local(last, first_frame, left, right, 0, self._bands[last].n)

    def _local(self, l: int, first_frame: int, left: Optional[torch.Tensor], right: Optional[torch.Tensor],
               lo: int, hi: int) -> torch.Tensor:
        """Window columns [lo, hi) of stage l: the edge bands `left` / `right` where the window
        differs from the stream, the stream's columns between."""
        b = self._bands[l]
        a = (first_frame - self._origin) // self._scale[l]               # the window's column 0
        parts = []
        if lo < b.left:
            parts.append(left[:, :, lo:min(hi, b.left)])
        if max(lo, b.left) < min(hi, b.right):
            parts.append(self._stream_cols(l, a + max(lo, b.left), a + min(hi, b.right)))
        if hi > b.right:
            parts.append(right[:, :, max(lo, b.right) - b.right:hi - b.right])
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim=2)

    def _count_window_macs(self) -> int:
        macs, n, f = 0, self.window_frames, self.tower.band_offset_db.shape[0]
        for st in self._stages:
            if not st.conv:
                n, f = n // 2, f // 2
            else:
                macs += st.weight[0].numel() * st.weight.shape[0] * n * f
        return macs
