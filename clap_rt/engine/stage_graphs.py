"""The incremental tower's convolution stages as onnxruntime graphs.

`clap_rt.incremental` runs a CNN tower one stage at a time on a few time columns. With the
onnx backend each 3x3 conv stage (BatchNorm folded in, then ReLU) is its own small graph,
input `x` (batch, C_in, time, freq) with batch and time dynamic, output (batch, C_out,
time - 2, freq): time is padded by the caller (window edges), frequency inside the graph as in
the tower. onnxruntime's kernels beat PyTorch's eager ones on these small inputs (1.1-1.6x per
call, one thread). Graphs are exported once per set of weights into the cache folder.
"""
from __future__ import annotations

import hashlib
import io
import warnings

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..cache import cache_dir
from .graph import OPSET
from .onnx_engine import ort_session


class _StageConv(nn.Module):
    def __init__(self, weight: torch.Tensor, bias: torch.Tensor):
        super().__init__()
        self.register_buffer("weight", weight.detach().clone())
        self.register_buffer("bias", bias.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(F.conv2d(x, self.weight, self.bias, padding=(0, 1)))


def _export(weight: torch.Tensor, bias: torch.Tensor) -> bytes:
    x = torch.zeros(2, weight.shape[1], 5, 12)
    buf = io.BytesIO()
    with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        torch.onnx.export(_StageConv(weight, bias).eval(), (x,), buf, input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "batch", 2: "time", 3: "freq"}}, opset_version=OPSET,
                          do_constant_folding=True, dynamo=False)
    return buf.getvalue()


class StageSessions:
    """One onnxruntime session per conv stage; `run(i, x)` maps (B, C_in, t, F) float32 torch
    columns through conv stage i -> (B, C_out, t - 2, F)."""

    def __init__(self, convs: list[tuple[torch.Tensor, torch.Tensor]], threads: int | None = None):
        from ..checkpoints import atomic_write_bytes
        self.sessions = []
        for w, b in convs:
            h = hashlib.sha256(f"torch={torch.__version__};opset={OPSET}".encode())
            for t in (w, b):
                h.update(t.detach().cpu().contiguous().numpy().tobytes())
            path = cache_dir() / "onnx" / f"stage-{h.hexdigest()[:20]}.onnx"
            if not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                atomic_write_bytes(path, _export(w, b))
            self.sessions.append(ort_session(path, threads))

    def run(self, i: int, x: torch.Tensor) -> torch.Tensor:
        y = self.sessions[i].run(None, {"x": np.ascontiguousarray(x.numpy())})[0]
        return torch.from_numpy(y)
