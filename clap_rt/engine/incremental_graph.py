"""The incremental audio tower's windows as onnxruntime graphs: the steady step and the first window.

In a stream whose windows follow each other by the hop, every window does the same work on
the same shapes: the hop's new frames and each stage's held columns in, the embedding and the
next held columns out (as silero-vad and streaming ASR models pass their state). That step is
traced once from `clap_rt.incremental.IncrementalTower.step` (fixed shapes, slices fixed)
and exported to ONNX, cached per weights, window and hop; onnxruntime then fuses it as it
fuses the whole tower. A window that starts the columns afresh (a stream's first, and every
one after skipped windows: most of them in a stream that cannot keep up) is a fixed step too:
all W frames in, the embedding and the held columns out, traced and cached the same way (in
eager PyTorch it costs about three steady steps).

A model folder may ship a static-int8 copy of the step (`int8_graph_name`, written by
`python -m export.stream_int8` only where its scores agree with fp32 on held-out streams);
given one, the graph times both on this machine and keeps the faster.
"""
from __future__ import annotations

import warnings

import numpy as np
import torch
import torch.nn as nn

from ..cache import cache_dir
from .auto import median_seconds
from .graph import OPSET, audio_fingerprint, dedupe_weights
from .onnx_engine import ort_session

# dB of the frames the state is first filled with when the graph is traced (any value works:
# only shapes are recorded).
_TRACE_DB = -100.0
TIMED_STEPS = 5                 # per graph (and precision), after one warm-up


def int8_graph_name(model, window_frames: int, hop_frames: int) -> str:
    """File name of the static-int8 steady step of `model`'s audio tower in a model folder:
    tied to the weights, window and hop it was calibrated for."""
    return f"stream-int8-{audio_fingerprint(model)}-w{window_frames}-h{hop_frames}.onnx"


class SteadyGraph:
    """The steady-state step of `tower` (an `IncrementalTower` with `hop_frames`) on onnxruntime."""

    def __init__(self, tower, threads: int | None = None, int8_path=None):
        from ..checkpoints import atomic_write_bytes
        W, H = tower.window_frames, tower.hop_frames
        self.stages = tower._stages     # the towers sharing this graph share them too
        n_mels = tower.tower.band_offset_db.shape[0]
        tower.reset()
        tower._origin = 0
        first_mel = torch.full((1, n_mels, W), _TRACE_DB)
        first = _Step(tower, (list(tower._start), list(tower._done)), 0).eval()
        with torch.no_grad():
            first(first_mel)
        self.first_counters = (list(tower._start), list(tower._done))
        self.first_shapes, self.first_macs = _shapes(tower), tower.macs
        new_mel = torch.full((1, n_mels, H), _TRACE_DB)
        self.session = self.first_session = None
        self.precision, self.step_ms = "fp32", {}
        self.recorded = None            # a list: every step's feeds are appended (calibration)
        for k in range(1, 4):           # windows H apart until the held columns keep their shapes
            self.shapes = _shapes(tower)
            before = (list(tower._start), list(tower._done))
            held = [c.contiguous() for c in tower._cols if c is not None]
            step = _Step(tower, before, k * H).eval()   # eval: the exporter restores this mode on the model after
            with torch.no_grad():
                step(new_mel, *held)
            if _shapes(tower) == self.shapes:
                break
        else:
            return                      # no steady state (a window within the edge bands): PyTorch only
        self.macs = tower.macs
        self.advance = [(a - b, c - d) for a, b, c, d in zip(tower._start, before[0], tower._done, before[1])]
        folder = cache_dir() / "onnx"
        fingerprint = audio_fingerprint(tower.model)
        self.path = folder / f"incremental-{fingerprint}-w{W}-h{H}.onnx"
        self.first_path = folder / f"incremental-first-{fingerprint}-w{W}-h{H}.onnx"
        for path, traced, feeds, shapes in ((self.path, step, (new_mel, *held), self.shapes),
                                            (self.first_path, first, (first_mel,), self.first_shapes)):
            if not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                atomic_write_bytes(path, _export(traced, feeds, sum(s is not None for s in shapes)))
        self.session = ort_session(self.path, threads)
        self.first_session = ort_session(self.first_path, threads)
        self.inputs = [i.name for i in self.session.get_inputs()]
        # Timed on the traced feeds (which also warms both up): the stream weighs a restart
        # against steady windows by these (`IncrementalTower.catch_up_windows`).
        feeds = dict(zip(self.inputs, [new_mel.numpy()] + [c.numpy() for c in held]))
        self.step_ms["fp32"] = _ms(self.session, feeds)
        self.first_ms = _ms(self.first_session, {"mel_db": first_mel.numpy()})
        if int8_path is not None:
            self._keep_faster(ort_session(int8_path, threads), feeds)

    def _keep_faster(self, int8, feeds: dict) -> None:
        """Time the int8 step on the traced feeds; keep it if it is faster than fp32."""
        if [i.name for i in int8.get_inputs()] != self.inputs:
            return                      # not this step's graph: fp32
        self.step_ms["int8"] = _ms(int8, feeds)
        if self.step_ms["int8"] < self.step_ms["fp32"]:
            self.session, self.precision = int8, "int8"

    def fits(self, tower, seen: int) -> bool:
        """Whether the next window of `tower` (of which `seen` frames were seen) is a steady one."""
        return (self.session is not None and seen == tower.window_frames - tower.hop_frames
                and _shapes(tower) == self.shapes)

    def fits_first(self, tower) -> bool:
        """Whether `tower` holds nothing, so that its next window is a first one."""
        return self.first_session is not None and _shapes(tower) == [None] * len(tower._cols)

    def step(self, tower, mel: np.ndarray) -> np.ndarray:
        """mel: (n_mels, W) frames of a steady window -> (D,) embedding; advances `tower`."""
        new = np.ascontiguousarray(mel[None, :, tower.window_frames - tower.hop_frames:], np.float32)
        held = [np.ascontiguousarray(c.numpy()) for c in tower._cols if c is not None]
        feeds = dict(zip(self.inputs, [new] + held))
        if self.recorded is not None:
            self.recorded.append(feeds)
        out = self.session.run(None, feeds)
        counters = ([s + a for s, (a, _) in zip(tower._start, self.advance)],
                    [d + a for d, (_, a) in zip(tower._done, self.advance)])
        _hold(tower, out[1:], self.shapes, counters, self.macs)
        return out[0][0]

    def first(self, tower, mel: np.ndarray) -> np.ndarray:
        """mel: (n_mels, W) frames of a window `tower` (holding nothing) starts at -> (D,) embedding;
        fills `tower` with the columns the next windows read."""
        out = self.first_session.run(None, {"mel_db": np.ascontiguousarray(mel[None], np.float32)})
        _hold(tower, out[1:], self.first_shapes, self.first_counters, self.first_macs)
        return out[0][0]


def _hold(tower, arrays: list, shapes: list, counters: tuple, macs: int) -> None:
    """Give `tower` the held columns a graph returned (one per present stage of `shapes`) and
    their (start, done) counters."""
    nxt = iter(arrays)
    tower._cols = [None if s is None else torch.from_numpy(next(nxt)) for s in shapes]
    tower._start, tower._done = list(counters[0]), list(counters[1])
    tower._off = [0] * len(tower._cols)
    tower.macs = macs


def _ms(session, feeds: dict) -> float:
    return 1e3 * median_seconds(lambda: session.run(None, feeds), TIMED_STEPS)


def _shapes(tower) -> list:
    return [None if c is None else tuple(c.shape) for c in tower._cols]


class _Step(nn.Module):
    """forward(new_mel, *held) -> (embedding, *next held): the window of `tower` at frame
    `first_frame`, its counters restored to `counters` (start, done) first so that each call
    traces the same step."""

    def __init__(self, tower, counters, first_frame: int):
        super().__init__()
        self.tower = tower
        self.model = tower.model            # a submodule: the tracer takes its weights as parameters
        self.counters = counters
        self.first_frame = first_frame
        self.present = [c is not None for c in tower._cols]

    def forward(self, new_mel: torch.Tensor, *held: torch.Tensor):
        t = self.tower
        t._start, t._done = list(self.counters[0]), list(self.counters[1])
        it = iter(held)
        t._cols = [next(it) if p else None for p in self.present]
        t._off = [0] * len(t._cols)
        t.macs = 0
        e = t.step(new_mel, self.first_frame)
        return (e, *[c for c in t._cols if c is not None])


def _export(step: _Step, feeds: tuple, n_out: int) -> bytes:
    """ONNX of `step` on `feeds` (new_mel, *held): inputs mel_db, held0..; outputs embedding and
    the `n_out` next held columns next_held0.."""
    import io
    buf = io.BytesIO()
    with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")         # tracer warnings: the Python branches are the step's, fixed
        torch.onnx.export(step, feeds, buf, input_names=["mel_db"] + [f"held{i}" for i in range(len(feeds) - 1)],
                          output_names=["embedding"] + [f"next_held{i}" for i in range(n_out)], opset_version=OPSET,
                          do_constant_folding=True, dynamo=False)
    import onnx
    proto = onnx.load_from_string(buf.getvalue())
    dedupe_weights(proto)          # one copy of each layer's weights: a third of the file and of the memory
    return proto.SerializeToString()
