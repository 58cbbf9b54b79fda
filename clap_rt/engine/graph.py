"""The audio graph every non-eager backend runs, and its ONNX export.

`AudioGraph` is the part of a CLAP model between the frontend and the joint space:
(B, n_mels, T) dB frames -> (B, dim) unit-norm embeddings. It holds the audio tower and
projection only (not the text tower), so a backend can copy it to a GPU or another dtype
without touching the model the text side uses.

ONNX export uses the TorchScript exporter (`dynamo=False`): it needs no onnxscript and
gives a plain opset-17 graph that onnxruntime and TensorRT 10.x both import.
"""
from __future__ import annotations

import hashlib
import io
import json
import warnings
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..cache import cache_dir

OPSET = 17
INPUT_NAME = "mel_db"
OUTPUT_NAME = "embedding"


def dedupe_weights(proto) -> int:
    """Keep one copy of an `onnx.ModelProto`'s weights with equal type, shape and bytes, the
    nodes reading the others rewired to it (the incremental step holds a layer's weights once
    per slice of columns it convolves, and its int8 copy quantises them alike); Constant nodes
    holding a tensor become initializers first. Returns the bytes saved."""
    for node in list(proto.graph.node):
        if node.op_type == "Constant" and len(node.attribute) == 1 and node.attribute[0].name == "value":
            tensor = node.attribute[0].t
            tensor.name = node.output[0]
            proto.graph.initializer.append(tensor)
            proto.graph.node.remove(node)
    first, rename, saved = {}, {}, 0
    for init in list(proto.graph.initializer):
        key = (init.data_type, tuple(init.dims), init.raw_data) if init.raw_data else None
        if key is None:
            continue
        if key in first:
            rename[init.name] = first[key]
            saved += len(init.raw_data)
            proto.graph.initializer.remove(init)
        else:
            first[key] = init.name
    for node in proto.graph.node:
        for i, name in enumerate(node.input):
            if name in rename:
                node.input[i] = rename[name]
    return saved


def stretch_matrix(t_in: int, t_out: int) -> torch.Tensor:
    """(t_in, t_out) matrix M with x @ M == bicubic align_corners resize of x's last axis.

    HTSAT stretches time with bicubic interpolation; TensorRT's Resize has no cubic mode, and
    a fixed-length resize along one axis is a linear map, so the graph does it as a MatMul.
    """
    eye = torch.eye(t_in, dtype=torch.float64)[None, None]              # (1, 1, t_in, t_in)
    # The second spatial axis keeps its size: align_corners samples it at its own points.
    cols = F.interpolate(eye, size=(t_out, t_in), mode="bicubic", align_corners=True)[0, 0]
    return cols.t().contiguous().float()                                  # (t_in, t_out)


class AudioGraph(nn.Module):
    """(B, n_mels, T) dB frames -> (B, dim) unit-norm joint embeddings.

    For an HTSAT tower that stretches the clip's `frontend.n_frames` frames, the stretch is
    done here as a MatMul with `stretch_matrix` (bicubic weights sum to one, so it commutes
    with HTSAT's per-bin BatchNorm), and the tower then sees exactly the frames it holds.
    """

    def __init__(self, model):
        super().__init__()
        self.audio = model.audio
        self.projection = model.audio_projection
        fe = model.config.frontend
        self.n_mels = fe.n_mels
        self.n_frames = fe.n_frames
        n_time = getattr(model.audio, "n_time", None)
        # Towers without a fixed image (the CNN) accept any T: the time axis stays dynamic.
        self.fixed_time = n_time is not None
        if n_time is not None and model.audio.stretch and self.n_frames != n_time:
            self.register_buffer("stretch", stretch_matrix(self.n_frames, n_time), persistent=False)
        else:
            self.stretch = None

    def forward(self, mel_db: torch.Tensor) -> torch.Tensor:
        if self.stretch is not None:
            mel_db = mel_db @ self.stretch                  # (B, F, T) -> (B, F, n_time)
        return F.normalize(self.projection(self.audio(mel_db)), dim=-1)   # (B, dim)


def example_input(model, batch: int = 2) -> torch.Tensor:
    """A (batch, n_mels, n_frames) float32 input of the model's clip size."""
    fe = model.config.frontend
    return torch.randn(batch, fe.n_mels, fe.n_frames, generator=torch.Generator().manual_seed(0)) * 20 - 40


def export_audio_onnx(model, opset: int = OPSET) -> bytes:
    """Serialise `AudioGraph(model)` to ONNX bytes: input `mel_db` (batch, n_mels, T),
    output `embedding` (batch, dim); the batch axis is dynamic, and T too for CNN towers."""
    graph = AudioGraph(model).eval()
    axes = {INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}}
    if not graph.fixed_time:
        axes[INPUT_NAME][2] = "frames"
    buf = io.BytesIO()
    with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
        # The towers' input checks are Python branches on shapes; tracing fixes them, as wanted.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        torch.onnx.export(graph, (example_input(model),), buf, input_names=[INPUT_NAME],
                          output_names=[OUTPUT_NAME], dynamic_axes=axes, opset_version=opset,
                          do_constant_folding=True, dynamo=False)
    return buf.getvalue()


def audio_fingerprint(model) -> str:
    """Hash of everything the audio graph depends on: config, audio weights, torch version."""
    h = hashlib.sha256()
    h.update(json.dumps(model.config.to_dict(), sort_keys=True).encode())
    h.update(f"torch={torch.__version__};opset={OPSET}".encode())
    for prefix in ("audio.", "audio_projection."):
        for k, v in sorted(model.state_dict().items()):
            if k.startswith(prefix):
                h.update(k.encode())
                h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:20]


def cached_audio_onnx(model) -> Path:
    """Path of the model's exported audio graph, exporting it once per fingerprint."""
    from ..checkpoints import atomic_write_bytes
    path = cache_dir() / "onnx" / f"audio-{audio_fingerprint(model)}.onnx"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, export_audio_onnx(model))
    return path
