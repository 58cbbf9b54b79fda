"""One steady-state window of the incremental audio tower as an onnxruntime graph.

In a stream whose windows follow each other by the hop, every window does the same work on
the same shapes: the hop's new frames and each stage's held columns in, the embedding and the
next held columns out (as silero-vad and streaming ASR models pass their state). That step is
traced once from `clap_rt.incremental.IncrementalTower.step` (fixed shapes, slices fixed)
and exported to ONNX, cached per weights, window and hop; onnxruntime then fuses it as it
fuses the whole tower. A stream's first window, and one after a gap, run in PyTorch.

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
from .graph import OPSET, audio_fingerprint
from .onnx_engine import ort_session

# dB of the frames the state is first filled with when the graph is traced (any value works:
# only shapes are recorded).
_TRACE_DB = -100.0
TIMED_STEPS = 5                 # per precision, after one warm-up, when an int8 step is offered


def int8_graph_name(model, window_frames: int, hop_frames: int) -> str:
    """File name of the static-int8 steady step of `model`'s audio tower in a model folder:
    tied to the weights, window and hop it was calibrated for."""
    return f"stream-int8-{audio_fingerprint(model)}-w{window_frames}-h{hop_frames}.onnx"


class SteadyGraph:
    """The steady-state step of `tower` (an `IncrementalTower` with `hop_frames`) on onnxruntime."""

    def __init__(self, tower, threads: int | None = None, int8_path=None):
        from ..checkpoints import atomic_write_bytes
        W, H = tower.window_frames, tower.hop_frames
        n_mels = tower.tower.band_offset_db.shape[0]
        tower.reset()
        tower._origin = 0
        tower.step(torch.full((1, n_mels, W), _TRACE_DB), 0)         # a first window
        new_mel = torch.full((1, n_mels, H), _TRACE_DB)
        self.session = None
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
        path = cache_dir() / "onnx" / f"incremental-{audio_fingerprint(tower.model)}-w{W}-h{H}.onnx"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(path, _export(step, new_mel, held))
        self.path = path
        self.session = ort_session(path, threads)
        self.inputs = [i.name for i in self.session.get_inputs()]
        if int8_path is not None:
            self._keep_faster(ort_session(int8_path, threads), new_mel, held)

    def _keep_faster(self, int8, new_mel: torch.Tensor, held: list) -> None:
        """Time the fp32 and int8 steps on the traced feeds; keep the int8 one if it is faster."""
        if [i.name for i in int8.get_inputs()] != self.inputs:
            return                      # not this step's graph: fp32
        feeds = dict(zip(self.inputs, [new_mel.numpy()] + [c.numpy() for c in held]))
        for name, graph in (("fp32", self.session), ("int8", int8)):
            self.step_ms[name] = 1e3 * median_seconds(lambda: graph.run(None, feeds), TIMED_STEPS)
        if self.step_ms["int8"] < self.step_ms["fp32"]:
            self.session, self.precision = int8, "int8"

    def fits(self, tower, seen: int) -> bool:
        """Whether the next window of `tower` (of which `seen` frames were seen) is a steady one."""
        return (self.session is not None and seen == tower.window_frames - tower.hop_frames
                and _shapes(tower) == self.shapes)

    def step(self, tower, mel: np.ndarray) -> np.ndarray:
        """mel: (n_mels, W) frames of a steady window -> (D,) embedding; advances `tower`."""
        new = np.ascontiguousarray(mel[None, :, tower.window_frames - tower.hop_frames:], np.float32)
        held = [np.ascontiguousarray(c.numpy()) for c in tower._cols if c is not None]
        feeds = dict(zip(self.inputs, [new] + held))
        if self.recorded is not None:
            self.recorded.append(feeds)
        out = self.session.run(None, feeds)
        nxt = iter(out[1:])
        tower._cols = [None if s is None else torch.from_numpy(next(nxt)) for s in self.shapes]
        for l, (ds, dd) in enumerate(self.advance):
            tower._start[l] += ds
            tower._done[l] += dd
            tower._off[l] = 0
        tower.macs = self.macs
        return out[0][0]


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


def _export(step: _Step, new_mel: torch.Tensor, held: list) -> bytes:
    import io
    buf = io.BytesIO()
    names = [f"held{i}" for i in range(len(held))]
    with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")         # tracer warnings: the Python branches are the step's, fixed
        torch.onnx.export(step, (new_mel, *held), buf, input_names=["mel_db"] + names,
                          output_names=["embedding"] + [f"next_{n}" for n in names], opset_version=OPSET,
                          do_constant_folding=True, dynamo=False)
    return buf.getvalue()
